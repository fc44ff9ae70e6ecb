"""A live execution service in the runner image, started the way `roscoe server start` does.

The container is created from roscoe.runner.layout.RunnerConfig.container_spec() through the
Engine seam, with a unique name and a free port; readiness is /health answering, within a
deadline; its logs are printed at teardown (pytest shows them when a test fails); it is always
removed, with any run container it left behind in this test's workspace.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOTLESS, engine_kind, hand_to_cli_user
from helpers_infra import RootlessPodman, rootless_podman_settings
from roscoe.access.tokens import ensure_readable_by_service
from roscoe.config import paths
from roscoe.errors import RoscoeError
from roscoe.labels import LABEL_KIND, LABEL_MANAGED_BY, MANAGED_BY_VALUE
from roscoe.runner.layout import RunnerConfig
from roscoe.runner.token import ensure_token
from roscoe.runs.host import UNPRIVILEGED_UID

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workspace"
DEMO_CASE = "demo-case"
DEMO_SCRIPT = "create_file_inventory.py"
READY_DEADLINE_S = 60.0

# Scripts the tests add to their copy of the example workspace.
TEST_SCRIPTS = {
    "sleep.py": (
        "import sys, time\n"
        "print('sleeping', flush=True)\n"
        "time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)\n"
        "print('woke up')\n"
    ),
    "fail.py": "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n",
    "show_env.py": "import os\nprint(sorted(k for k in os.environ if k.startswith('API')))\n",
}


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage  # names are case-insensitive, as in HTTP
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveService:
    engine: Any
    engine_name: str
    container_id: str
    name: str
    port: int
    token: str
    workspace: Path
    runs_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = "default",  # "default": the service's own token
        headers: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Answer:
        sent = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return Answer(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def post_run(self, data: dict[str, Any], **kwargs: Any) -> Answer:
        return self.request("POST", "/runs", json.dumps(data).encode(), **kwargs)

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health", token=None, timeout=10).json()  # type: ignore[no-any-return]

    def logs(self) -> str:
        raw = b"".join(data for _, data in self.engine.stream_logs(self.container_id))
        return raw.decode("utf-8", errors="replace")

    def run_containers(self) -> list[dict[str, Any]]:
        """Run containers (any state) whose mounts come from this test's workspace."""
        found = self.engine.containers(
            {LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_KIND: "run"}, all=True
        )
        mine = []
        for container in found:
            try:
                details = self.engine.inspect_container(container["Id"]) or {}
            except RoscoeError:  # gone between the list and now (Podman answers 500)
                continue
            sources = [str(m.get("Source", "")) for m in details.get("Mounts") or []]
            if any(s.startswith(str(self.workspace)) for s in sources):
                mine.append(details)
        return mine

    def saved_run_ids(self) -> list[str]:
        # .hashes is the change-tracking cache, not a run
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and p.name[0] != ".")

    def wait_for(self, predicate: Callable[[], bool], what: str, deadline: float = 60) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- service log ---\n{self.logs()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_workspace(root: Path) -> Path:
    """A copy of examples/workspace plus the test scripts, writable by the runs' uid 1000."""
    workspace = root / "workspace"
    shutil.copytree(EXAMPLES, workspace)
    for name, text in TEST_SCRIPTS.items():
        (workspace / "Tools" / name).write_text(text)
    for folder, _dirs, files in os.walk(workspace):
        os.chmod(folder, 0o777)  # uid 1000 in the containers writes here
        for name in files:
            os.chmod(Path(folder) / name, 0o666)
    workspace.chmod(0o777)
    return workspace


def prepare_host(tmp_path: Path, rootless: RootlessPodman | None = None) -> tuple[Path, Path, Path]:
    """(workspace, runs dir, token file) the way `roscoe server start` must leave them (the
    rootless user's `server start`: everything is that user's)."""
    workspace = make_workspace(tmp_path)
    runs = paths.ensure_dir(paths.runs_dir())
    owner = (UNPRIVILEGED_UID, UNPRIVILEGED_UID) if os.getuid() == 0 else None
    if rootless is not None:
        owner = (rootless.uid, rootless.gid)
    if owner:
        os.chown(runs, *owner)  # the service runs as uid 1000 and writes the run records here
    token_file = paths.token_file()
    ensure_token(token_file, owner=owner)
    return workspace, runs, token_file


ServiceFactory = Callable[..., LiveService]


@pytest.fixture
def start_service(  # noqa: PLR0917 - pytest hands fixtures over by name
    engine: Any,
    engine_name: str,
    engine_host: str,
    runner_image: str,
    unique_name: str,
    tmp_path: Path,
) -> Iterator[ServiceFactory]:
    """start_service(concurrency=4, queue=16, shutdown_grace=10) -> a LiveService."""
    started: list[LiveService] = []
    # podman-rootless: the runner as its user's `server start` makes it (keep-id, its uid)
    rootless = rootless_podman_settings() if engine_name == ROOTLESS else None
    workspace, runs, token_file = prepare_host(tmp_path, rootless)
    access_dir = ensure_readable_by_service()  # the scoped tokens, as server start does
    if rootless is not None:
        hand_to_cli_user(paths.data_dir())

    def start(concurrency: int = 4, queue: int = 16, shutdown_grace: float = 10) -> LiveService:
        config = RunnerConfig(
            image=runner_image,
            name=f"{unique_name}-{len(started)}",
            port=free_port(),
            workspace=workspace,
            runs_dir=runs,
            token_file=token_file,
            engine_socket=engine_host.removeprefix("unix://"),
            engine_kind=engine_kind(engine_name),
            concurrency=concurrency,
            queue=queue,
            shutdown_grace=shutdown_grace,
            access_dir=access_dir,
            keep_id=rootless is not None,
            # as the user's `server start` hands on ROSCOE_REQUIRE_LIMITS (conftest's engine_env)
            run_limits=(
                {"ROSCOE_REQUIRE_LIMITS": os.environ["ROSCOE_REQUIRE_LIMITS"]}
                if rootless is not None and "ROSCOE_REQUIRE_LIMITS" in os.environ
                else {}
            ),
        )
        spec = config.container_spec()
        if rootless is not None:
            spec = replace(spec, user=f"{rootless.uid}:{rootless.gid}")
        created = engine.create_container(spec)
        live = LiveService(
            engine=engine,
            engine_name=engine_kind(engine_name),
            container_id=created,
            name=config.name,
            port=config.port,
            token=token_file.read_text().strip(),
            workspace=workspace,
            runs_dir=runs,
        )
        started.append(live)
        engine.start_container(live.container_id)
        _wait_ready(live)
        return live

    yield start

    for live in started:
        print(f"--- log of {live.name} ({engine_name}) ---\n{live.logs()}")
        engine.remove_container(live.container_id, force=True)
        for leftover in live.run_containers():
            engine.remove_container(leftover["Id"], force=True)


def _wait_ready(live: LiveService) -> None:
    end = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < end:
        try:
            if live.health().get("status") == "ok":
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass
        state = (live.engine.inspect_container(live.container_id) or {}).get("State") or {}
        if state.get("Status") in ("exited", "dead") and not state.get("Restarting"):
            break
        time.sleep(0.2)
    pytest.fail(
        f"the service in {live.name} did not become ready\n--- log ---\n{live.logs()}",
        pytrace=False,
    )
