"""The one test double of the engine: `FakeEngine` (engine.py) on its state (world.py).

Unit tests import it from here; nothing in roscoe itself does.
"""

from roscoe.engine.fake.engine import FakeEngine
from roscoe.engine.fake.world import CHANGES, Call, FakeOutput, Program, Published

__all__ = ["CHANGES", "Call", "FakeEngine", "FakeOutput", "Program", "Published"]
