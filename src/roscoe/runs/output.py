"""A run's output on its way through: saved to output.log (bounded) and handed on live."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from roscoe.runs.records import (
    hand_over,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger("roscoe.runs")

OnOutput = Callable[[str, bytes], None]

# The most output saved to output.log. Past it the output still streams to the caller (the
# terminal, the service's client) but the file stops growing, so a runaway script cannot fill
# the disk; the record says saved_output_truncated. Tens of MB are saved whole.
MAX_SAVED_OUTPUT = 256 << 20
TRUNCATED_NOTE = b"\n[roscoe: output truncated here; only the first %d bytes were saved]\n"


class OutputSink:
    """Saves output to output.log (0600, at most MAX_SAVED_OUTPUT bytes) and hands it all on;
    counts bytes; keeps none in memory.

    Each piece goes to the file with its own write(), before it is handed on: nothing waits in
    a buffer, so when roscoe is SIGKILLed the file holds all that reached the terminal.
    """

    def __init__(self, path: Path, on_output: OnOutput | None):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        hand_over(path)
        self._file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self._on_output = on_output
        self.bytes = 0
        self.truncated = False

    def write(self, name: str, data: bytes) -> None:
        room = MAX_SAVED_OUTPUT - self.bytes
        if room > 0:
            self._save(data[:room])
        if not self.truncated and len(data) > room:
            self.truncated = True
            self._save(TRUNCATED_NOTE % MAX_SAVED_OUTPUT)
        self.bytes += len(data)
        if self._on_output is not None:
            try:
                self._on_output(name, data)
            except Exception as exc:  # e.g. a closed pipe: keep saving, stop forwarding
                log.debug("on_output failed, output is still saved: %s", exc)
                self._on_output = None

    def _save(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may take less than it was given
            written = self._file.write(view)
            if not written:
                raise OSError(f"could not write to {self._file.name}")
            view = view[written:]

    def close(self) -> None:
        self._file.close()
