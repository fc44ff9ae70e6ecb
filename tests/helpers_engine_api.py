"""The Docker-compatible engine API over a unix socket, on the standard library only.

Tests of the machinery under roscoe (gVisor, rootless Podman) use it to send the exact
container settings roscoe sends, including those the docker SDK refuses (it allows no
`UsernsMode` but "host", so Podman's "keep-id" goes into the HostConfig by hand), and to read
back what the engine really did.
"""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

# Every container a test starts through this module carries it (never roscoe's own labels,
# so roscoe's gc and listings do not take these for runs).
TEST_LABEL = {"roscoe-test": "engine-api"}


class EngineAPIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved as the engine stored them
    inspect: dict[str, Any]  # GET /containers/{id}/json after the exit
    libpod_inspect: dict[str, Any] | None  # Podman's own inspect (OCIRuntime ...), else None


class EngineAPI:
    """Requests against one engine endpoint (unix:///path)."""

    def __init__(self, host: str, timeout: float = 120):
        if not host.startswith("unix://"):
            raise ValueError(f"only unix:// endpoints: {host}")
        self.host = host
        self.path = host.removeprefix("unix://")
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        conn = _UnixConnection(self.path, timeout or self.timeout)
        try:
            url = path + ("?" + urlencode(params) if params else "")
            headers = {"Host": "localhost"}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, url, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The decoded JSON answer; an error status raises EngineAPIError."""
        status, data = self.request(method, path, body, params, timeout)
        if status >= 400:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode("utf-8", "replace")
            raise EngineAPIError(status, message)
        return json.loads(data) if data else None

    def ping(self) -> bool:
        try:
            return self.request("GET", "/_ping", timeout=5) == (200, b"OK")
        except OSError:
            return False

    def info(self) -> dict[str, Any]:
        return dict(self.call("GET", "/info"))

    def is_podman(self) -> bool:
        version = self.call("GET", "/version")
        return any("Podman" in str(c.get("Name", "")) for c in version.get("Components") or [])

    def libpod_info(self) -> dict[str, Any]:
        """Podman's own /info: host.security.rootless, host.idMappings ..."""
        return dict(self.call("GET", "/v4.0.0/libpod/info"))

    def image_present(self, ref: str) -> bool:
        status, _ = self.request("GET", f"/images/{quote(ref, safe='')}/json")
        return status == 200

    def run(
        self,
        image: str,
        cmd: list[str],
        *,
        host_config: dict[str, Any] | None = None,
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> RunResult:
        """Create, start and wait for a container; its exit code, output and inspect data.

        Network "none" unless host_config says otherwise; always removed afterwards.
        """
        name = f"roscoe-test-api-{uuid.uuid4().hex[:10]}"
        body: dict[str, Any] = {
            "Image": image,
            "Cmd": cmd,
            "Labels": dict(TEST_LABEL),
            "Env": [f"{k}={v}" for k, v in (env or {}).items()],
            "HostConfig": {"NetworkMode": "none", **(host_config or {})},
        }
        if user is not None:
            body["User"] = user
        created = self.call("POST", "/containers/create", body, {"name": name})
        cid = str(created["Id"])
        try:
            self.call("POST", f"/containers/{cid}/start")
            waited = self.call("POST", f"/containers/{cid}/wait", timeout=timeout)
            _, raw = self.request(
                "GET", f"/containers/{cid}/logs", params={"stdout": 1, "stderr": 1}
            )
            inspect = dict(self.call("GET", f"/containers/{cid}/json"))
            libpod = None
            if self.is_podman():
                libpod = dict(self.call("GET", f"/v4.0.0/libpod/containers/{cid}/json"))
            return RunResult(int(waited["StatusCode"]), _demux(raw), inspect, libpod)
        finally:
            self.request("DELETE", f"/containers/{cid}", params={"force": 1, "v": 1})


def _demux(raw: bytes) -> str:
    """The text of a non-TTY log stream (8-byte frame headers: stream, 0, 0, 0, size)."""
    out = bytearray()
    i = 0
    while i + 8 <= len(raw) and raw[i] in (0, 1, 2) and raw[i + 1 : i + 4] == b"\0\0\0":
        size = int.from_bytes(raw[i + 4 : i + 8], "big")
        out += raw[i + 8 : i + 8 + size]
        i += 8 + size
    if i < len(raw):  # not framed (a TTY stream): take the rest as it is
        out += raw[i:]
    return out.decode("utf-8", "replace")
