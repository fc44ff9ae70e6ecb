"""`Engine`: Docker or Podman through their API, implementing every protocol of the seam.

Core modules receive an engine typed by the protocol they need (`protocols.py`) and never
import the docker SDK; unit tests hand them `fake.FakeEngine`, integration tests this class
on each real engine. Create one with `connect()` (connect.py); close it at the end.

Its calls are grouped by feature: identity, images and containers here; a one-shot run's in
`runs.py`; the runner container's in `runner.py`; the shared state and transports in
`base.py`; stream decoding in `streams.py`; error mapping in `errors.py`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from roscoe.engine.errors import call_failed, going_anyway, missing, pull_failed, state_changing
from roscoe.engine.runner import RunnerCalls
from roscoe.engine.runs import RunCalls
from roscoe.engine.wire import WireError, quoted

# A forced removal Podman refuses because the container changed state under it (a restart
# policy at work) is asked again this many times, this far apart.
REMOVE_RETRIES = 5
REMOVE_RETRY_S = 0.2


class Engine(RunCalls, RunnerCalls):
    """A connected engine. Create one with `connect()`; pass it down; close it at the end."""

    def describe(self) -> str:
        return (
            f"{self.info.kind} {self.info.version} at {self.endpoint.url} ({self.endpoint.source})"
        )

    # -- images ---------------------------------------------------------------------------
    def image_inspect(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when it is not present locally."""
        try:
            return dict(self._wire.call("GET", f"/images/{quoted(ref)}/json"))
        except (WireError, OSError) as exc:
            if missing(exc):
                return None
            raise call_failed(self.kind, f"could not inspect image {ref}", exc) from exc

    def pull_stream(self, repository: str, tag: str) -> Iterator[dict[str, Any]]:
        """The engine's pull events, decoded (roscoe.images.pull folds them into progress).

        Errors the engine answers at once (Docker: unknown manifest, unreachable registry)
        raise ImageError here; Podman sends the same inside the stream, which the caller checks.
        The SDK's pull has no read timeout, so a silent engine does not end it.
        """
        ref = f"{repository}@{tag}" if ":" in tag else f"{repository}:{tag}"
        try:
            events = self._sdk.pull(repository, tag=tag, stream=True, decode=True)
        except Exception as exc:  # the SDK's errors, and its transport's
            raise pull_failed(self.kind, ref, exc) from exc

        def guarded() -> Iterator[dict[str, Any]]:
            try:
                yield from events
            except Exception as exc:
                raise pull_failed(self.kind, ref, exc) from exc

        return guarded()

    # -- containers -----------------------------------------------------------------------
    # Over the wire like a run's calls: `server status`, `gc` and `doctor` then never load the
    # docker SDK either.
    def containers(self, labels: Mapping[str, str], all: bool = True) -> list[dict[str, Any]]:
        """Containers carrying every label given (key=value), in the engine's list form."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            found = self._wire.call(
                "GET", "/containers/json", params={"all": all, "filters": filters}
            )
        except (WireError, OSError) as exc:
            raise call_failed(self.kind, "could not list containers", exc) from exc
        return list(found or [])

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        """A container's inspect data by ID, ID prefix or name; None when there is none."""
        try:
            return dict(self._wire.call("GET", f"/containers/{quoted(ref)}/json"))
        except (WireError, OSError) as exc:
            if missing(exc):
                return None
            raise call_failed(self.kind, f"could not inspect container {ref}", exc) from exc

    def remove_container(self, ref: str, force: bool = True) -> bool:
        """Remove a container; False if it was already gone."""
        retries = REMOVE_RETRIES
        while True:
            try:
                self._wire.call(
                    "DELETE", f"/containers/{quoted(ref)}", params={"force": force, "v": True}
                )
                return True
            except (WireError, OSError) as exc:
                if going_anyway(exc):
                    return False
                if not (state_changing(exc) and retries):
                    raise call_failed(self.kind, f"could not remove container {ref}", exc) from exc
            retries -= 1
            time.sleep(REMOVE_RETRY_S)  # no event says "settled": ask again shortly
