"""`StrEnum`: members are strings (JSON and comparisons see the value) that print as their value.

The standard library's `enum.StrEnum` is Python 3.11+; roscoe runs on 3.10 too.
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """A str-valued Enum whose str() and format() are its value, as in Python 3.11."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str(self.value).__format__(spec)


__all__ = ["StrEnum"]
