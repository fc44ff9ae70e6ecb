"""roscoe: run scripts against exactly one folder, in a scoped container."""

__version__ = "0.1.0"
