"""Container engines: detection (detect.py) and the one seam every call goes through (client.py).

Import from here; the docker SDK itself is imported only when an engine is connected.
"""

from roscoe.engine.client import Engine, EngineInfo, connect, connect_url
from roscoe.engine.detect import Endpoint, Probe

__all__ = ["Endpoint", "Engine", "EngineInfo", "Probe", "connect", "connect_url"]
