"""Container engines behind one seam: the protocols each part of roscoe needs (protocols.py),
finding and connecting (detect.py, connect.py), the real `Engine` (engine.py) and the one
test double (fake/, imported only by tests).

Import from here; the docker SDK itself is imported only when a call needs it.
"""

from roscoe.engine.connect import connect, connect_url
from roscoe.engine.detect import Endpoint, Probe
from roscoe.engine.engine import Engine
from roscoe.engine.protocols import (
    ContainerEngine,
    DiagnosticsEngine,
    EngineFacts,
    EngineInfo,
    GcEngine,
    ImageEngine,
    RunEngine,
    RunnerEngine,
    RunState,
)

__all__ = [
    "ContainerEngine",
    "DiagnosticsEngine",
    "Endpoint",
    "Engine",
    "EngineFacts",
    "EngineInfo",
    "GcEngine",
    "ImageEngine",
    "Probe",
    "RunEngine",
    "RunState",
    "RunnerEngine",
    "connect",
    "connect_url",
]
