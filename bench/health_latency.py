"""Latency of the execution service's GET /health, idle and with runs in flight.

Starts its own runner container (roscoe-runner:dev, or --image) on the engine DOCKER_HOST
names, under a throwaway data dir, workspace, name and port; measures N sequential /health
requests idle, then again while --inflight slow runs are under way; prints the median and
p99 of each; removes everything it started.

    DOCKER_HOST=unix:///var/run/docker.sock .venv/bin/python bench/health_latency.py
    DOCKER_HOST=unix:///run/podman/podman.sock .venv/bin/python bench/health_latency.py -n 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SLEEP_TOOL = "import sys, time\ntime.sleep(float(sys.argv[1]))\n"


def get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def measure(port: int, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        status, _ = get(port, "/health")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise SystemExit(f"/health answered {status}")
    return times


def summary(label: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label:<28} n={len(times):<4} median {statistics.median(times):6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ordered[-1]:6.2f} ms"
    )


def create_runner(scratch: Path, image: str, inflight: int) -> tuple[Any, str, int, str]:
    """A runner container (created, not started) under `scratch`: engine, id, port, token."""
    os.environ["ROSCOE_DATA_DIR"] = str(scratch / "data")
    os.environ["ROSCOE_CONFIG_DIR"] = str(scratch / "config")

    from roscoe.config import paths
    from roscoe.engine import connect
    from roscoe.runner.layout import RunnerConfig
    from roscoe.runner.token import ensure_token
    from roscoe.runs.host import UNPRIVILEGED_UID

    engine = connect()
    owner = (UNPRIVILEGED_UID, UNPRIVILEGED_UID) if os.getuid() == 0 else None
    workspace = scratch / "workspace"
    shutil.copytree(ROOT / "examples" / "workspace", workspace)
    (workspace / "Tools" / "sleep.py").write_text(SLEEP_TOOL)
    for folder, _dirs, _files in os.walk(workspace):
        os.chmod(folder, 0o777)  # the runs' uid writes the case folder
    runs = paths.ensure_dir(paths.runs_dir())
    if owner:
        os.chown(runs, *owner)
    token = ensure_token(paths.token_file(), owner=owner)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = RunnerConfig(
        image=image,
        name=f"roscoe-bench-{uuid.uuid4().hex[:8]}",
        port=port,
        workspace=workspace,
        runs_dir=runs,
        token_file=paths.token_file(),
        engine_socket=engine.endpoint.socket_path or "",
        engine_kind=engine.kind,
        concurrency=inflight,
        queue=inflight,
        shutdown_grace=1,
    )
    container_id = engine.create_container(config.container_spec())
    return engine, container_id, port, token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="requests per measurement")
    parser.add_argument("--inflight", type=int, default=4, help="slow runs during the 2nd pass")
    parser.add_argument("--image", default="roscoe-runner:dev")
    options = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="roscoe-bench-"))
    engine, container_id, port, token = create_runner(scratch, options.image, options.inflight)
    try:
        engine.start_container(container_id)
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not become ready")
            time.sleep(0.2)
        print(f"{engine.describe()}, image {options.image}, {os.cpu_count()} CPUs")
        measure(port, 20)  # warm-up
        print(summary("idle", measure(port, options.n)))

        def slow_run() -> None:
            body = json.dumps({"case": "demo-case", "script": "sleep.py", "args": ["120"]})
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            try:
                connection.request(
                    "POST", "/runs", body=body, headers={"Authorization": f"Bearer {token}"}
                )
                connection.getresponse().read()
            except OSError:
                pass  # the service stops at the end of the bench
            finally:
                connection.close()

        for _ in range(options.inflight):
            threading.Thread(target=slow_run, daemon=True).start()
        deadline = time.monotonic() + 120
        while json.loads(get(port, "/health")[1])["runs_in_flight"] < options.inflight:
            if time.monotonic() > deadline:
                raise SystemExit("the slow runs did not all start")
            time.sleep(0.2)
        print(summary(f"{options.inflight} runs in flight", measure(port, options.n)))
    finally:
        engine.stop_container(container_id, 60)  # the service cancels and removes its runs
        engine.remove_container(container_id, force=True)
        engine.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
