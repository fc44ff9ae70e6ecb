"""The engine calls for the long-lived runner container (`protocols.RunnerEngine`), as a part
of `Engine`.

Create it (over the engine's API itself), start, stop, and read its logs (through the docker
SDK, `self._sdk`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from roscoe.engine.base import EngineBase
from roscoe.engine.errors import call_failed, image_missing, missing
from roscoe.engine.protocols import ContainerSpec
from roscoe.engine.streams import LogFrames, pump, shutdown
from roscoe.engine.wire import WireError, quoted


class RunnerCalls(EngineBase):
    """Mixed into Engine."""

    def create_container(self, spec: ContainerSpec) -> str:
        """Create a container from its spec, over the engine's API itself."""
        host_config: dict[str, Any] = {
            "Binds": [f"{source}:{inside}:{mode}" for source, (inside, mode) in spec.binds.items()],
            "NetworkMode": spec.network,
            "RestartPolicy": {"Name": spec.restart_policy},
            "GroupAdd": list(spec.group_add),
            "CapDrop": list(spec.cap_drop),
            "SecurityOpt": list(spec.security_opt),
            "ReadonlyRootfs": spec.read_only,
            "Tmpfs": dict(spec.tmpfs),
            "Init": False,
        }
        if spec.log_driver:
            host_config["LogConfig"] = {"Type": spec.log_driver, "Config": dict(spec.log_options)}
        if spec.userns:
            host_config["UsernsMode"] = spec.userns
        body: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{k}={v}" for k, v in spec.environment.items()],
            "Labels": dict(spec.labels),
            "HostConfig": host_config,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "OpenStdin": False,
            "Tty": False,
        }
        if spec.command:
            body["Cmd"] = list(spec.command)
        if spec.user:
            body["User"] = spec.user
        try:
            created = self._wire.call(
                "POST", "/containers/create", params={"name": spec.name or None}, body=body
            )
        except (WireError, OSError) as exc:
            if missing(exc):  # the container does not exist yet: only the image can be missing
                raise image_missing(spec.image, self.kind) from exc
            what = f"container {spec.name}" if spec.name else "a container"
            raise call_failed(self.kind, f"could not create {what}", exc) from exc
        return str(created["Id"])

    def start_container(self, ref: str) -> None:
        try:
            self._sdk.start(ref)
        except OSError as exc:
            raise call_failed(self.kind, f"could not start container {ref}", exc) from exc

    def stop_container(self, ref: str, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after `timeout` seconds; False if the container was gone."""
        try:
            self._sdk.stop(ref, timeout=max(0, round(timeout)))
        except OSError as exc:
            if missing(exc):
                return False
            raise call_failed(self.kind, f"could not stop container {ref}", exc) from exc
        return True

    def log_tail(self, ref: str, lines: int) -> bytes:
        """The last `lines` lines of a container's output, asked of the engine; b"" when the
        engine has none to give (the container is gone)."""
        try:
            return bytes(self._sdk.logs(ref, stdout=True, stderr=True, tail=lines, stream=False))
        except OSError:
            return b""

    def stream_logs(
        self,
        ref: str,
        *,
        tty: bool = False,
        follow: bool = False,
        tail: int | str = "all",
        since: int | None = None,
        timestamps: bool = False,
        read_timeout: float = 60.0,
        still_running: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[int, bytes]]:
        """A container's output as (stream, bytes) pieces: 1 stdout, 2 stderr; never slurped.

        The tail is asked of the engine. Silence never ends a followed stream: the SDK's read
        timeout would (docker-py #931), and Podman sends its response headers only with the
        first output (podman #23712), so the request waits without a read timeout, in a
        reader thread; every `read_timeout` seconds of silence `still_running()` (by default,
        the engine's own word on the container) is asked whether to keep waiting: Podman keeps
        the followed stream of a stopped container open, and a stream must not hang.
        """
        import queue
        import threading

        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "follow": int(follow),
            "timestamps": int(timestamps),
            "tail": str(tail),
        }
        if since is not None:
            params["since"] = since
        response = self._logs_response(ref, params)
        fp = response.raw._fp  # http.client's response
        decoder = None if tty else LogFrames()
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=64)

        def read() -> None:
            try:
                pump(fp.fp, fp.chunked, fp.length, pieces.put)
            except BaseException as exc:  # handed to the consumer, which decides
                pieces.put(exc)
            pieces.put(None)

        reader = threading.Thread(target=read, name="roscoe-logs", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=read_timeout if follow else None)
                except queue.Empty:
                    if (still_running or (lambda: self._running(ref)))():
                        continue
                    return
                if item is None:
                    return
                if isinstance(item, OSError):  # the engine's socket failed mid-stream
                    raise call_failed(self.kind, f"lost the logs of {ref}", item) from item
                if isinstance(item, BaseException):
                    raise item
                if decoder is None:
                    yield 1, item
                else:
                    yield from decoder.feed(item)
        finally:
            shutdown(response)

    def _logs_response(self, ref: str, params: Mapping[str, Any]) -> Any:
        """The streaming response of GET /containers/REF/logs, with no read timeout.

        Made with the SDK's own request helpers: its public logs() would apply the timeout.
        """
        sdk: Any = self._sdk
        try:
            response = sdk._get(
                sdk._url("/containers/{0}/logs", ref),
                params=params,
                stream=True,
                timeout=(30, None),
            )
            sdk._raise_for_status(response)
        except OSError as exc:
            raise call_failed(self.kind, f"could not read the logs of {ref}", exc) from exc
        return response

    def _running(self, ref: str) -> bool:
        """The engine says the container runs (or restarts); gone or unknown is no."""
        try:
            found = self._wire.call("GET", f"/containers/{quoted(ref)}/json")
        except (WireError, OSError):
            return False
        state = found.get("State") or {}
        return bool(state.get("Running")) or state.get("Status") in ("running", "restarting")
