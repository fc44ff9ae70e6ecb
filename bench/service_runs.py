"""The execution service against the docker CLI, and how fast live output reaches a client.

For each engine, with a runner of its own (throwaway data dir, name, port, workspace):

1. `POST /runs` (waiting) of a trivial script vs `docker run --rm` with the same image (the
   runner's), mounts, user, limits and in-container `timeout` wrapper, interleaved so both
   see the same load; medians and their ratio. Target: at most 1.0x (the service has no
   CLI start-up to pay).
2. A script prints a timestamp every 0.2 s; a `follow` client and an `events` client each
   note when each line arrives: median and p95 delay. Target: median within 100 ms.
3. `/health` while 100 clients POST /runs at once against concurrency 4 and queue 16:
   median and p99 (target p99 under 50 ms), and the answers' statuses (only 200 and 429).

    .venv/bin/python bench/service_runs.py [--reps 15] [--engines docker,podman] [--image REF]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import HOSTS, docker_run

TIMEOUT = 300
STAMPS = "import sys, time\nfor _ in range(int(sys.argv[1])):\n    print(repr(time.time()), flush=True)\n    time.sleep(0.2)\n"  # noqa: E501
SLEEP = "import sys, time\ntime.sleep(float(sys.argv[1]))\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workspace(root: Path) -> Path:
    case = root / "projects" / "bench-case"
    case.mkdir(parents=True)
    tools = root / "Tools"
    tools.mkdir()
    (tools / "noop.py").write_text("pass\n")
    (tools / "stamps.py").write_text(STAMPS)
    (tools / "sleep.py").write_text(SLEEP)
    for path in (root, root / "projects", case, tools):
        path.chmod(0o777)
    return root


class Runner:
    def __init__(self, port: int, token: str):
        self.port = port
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 600
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def post_run(self, script: str, *args: str, wait: bool = True) -> dict[str, Any]:
        status, body = self.call(
            "POST",
            "/runs",
            {"case": "bench-case", "script": script, "args": list(args), "wait": wait},
        )
        if status not in (200, 202):
            raise SystemExit(f"POST /runs answered {status}: {body[:300]!r}")
        return json.loads(body)  # type: ignore[no-any-return]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_runs(runner: Runner, host: str, image: str, ws: Path, reps: int) -> None:
    env = dict(os.environ)
    service_s: list[float] = []
    docker_s: list[float] = []
    runner.post_run("noop.py")  # warm both paths once
    subprocess.run(docker_run(host, image, ws, TIMEOUT), env=env, capture_output=True, check=True)
    for _ in range(reps):
        began = time.perf_counter()
        record = runner.post_run("noop.py")
        service_s.append(time.perf_counter() - began)
        if record["status"] != "succeeded":
            raise SystemExit(f"the run did not succeed: {record}")
        began = time.perf_counter()
        subprocess.run(
            docker_run(host, image, ws, TIMEOUT), env=env, capture_output=True, check=True
        )
        docker_s.append(time.perf_counter() - began)
    service, docker = median_ms(service_s), median_ms(docker_s)
    print(
        f"  POST /runs (waiting) {service:7.1f} ms   docker run --rm {docker:7.1f} ms   "
        f"ratio {service / docker:.2f}x (target <= 1.0x)"
    )


def bench_live(runner: Runner, lines: int) -> None:
    for kind in ("follow", "events"):
        run_id = runner.post_run("stamps.py", str(lines), wait=False)["id"]
        path = (
            f"/runs/{run_id}/output?follow=true" if kind == "follow" else f"/runs/{run_id}/events"
        )
        connection = http.client.HTTPConnection("127.0.0.1", runner.port, timeout=120)
        connection.request("GET", path, headers={"Authorization": f"Bearer {runner.token}"})
        answer = connection.getresponse()
        delays: list[float] = []
        buffered = b""
        while chunk := answer.read1(65536):
            arrived = time.time()
            buffered += chunk
            *complete, buffered = buffered.split(b"\n")
            for line in complete:
                text = line.decode()
                if kind == "events":
                    if not text.startswith("data: ") or '"encoding"' not in text:
                        continue
                    text = json.loads(text.removeprefix("data: "))["data"]
                for stamp in text.split():
                    delays.append(arrived - float(stamp))
        connection.close()
        if not delays:
            raise SystemExit(f"{kind}: no line arrived")
        delays.sort()
        p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))]
        print(
            f"  a printed line to a {kind:6} client: median {median_ms(delays):6.1f} ms, "
            f"p95 {p95 * 1000:6.1f} ms over {len(delays)} lines (target median <= 100 ms)"
        )


def bench_burst(runner: Runner) -> None:
    statuses: list[int | str] = []
    health_s: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            status, _ = runner.call(
                "POST", "/runs", {"case": "bench-case", "script": "sleep.py", "args": ["1"]}
            )
        except OSError as exc:
            status = type(exc).__name__
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        connection = http.client.HTTPConnection("127.0.0.1", runner.port, timeout=10)
        began = time.perf_counter()
        connection.request("GET", "/health")
        connection.getresponse().read()
        health_s.append(time.perf_counter() - began)
        connection.close()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    health_s.sort()
    p99 = health_s[min(len(health_s) - 1, int(len(health_s) * 0.99))]
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)}
    print(
        f"  100 POST /runs at once (concurrency 4, queue 16): {counts}; /health median "
        f"{median_ms(health_s):.1f} ms, p99 {p99 * 1000:.1f} ms over {len(health_s)} "
        "(target p99 < 50 ms)"
    )


def bench_engine(engine: str, image: str, reps: int, lines: int) -> None:
    host = HOSTS[engine]
    root = Path(tempfile.mkdtemp(prefix="roscoe-bench-service-"))
    name = f"roscoe-bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "DOCKER_HOST": host,
        "ROSCOE_RUNTIME": engine,
        "ROSCOE_DATA_DIR": str(root / "data"),
        "ROSCOE_CONFIG_DIR": str(root / "config"),
        "ROSCOE_CONTAINER_NAME": name,
        "ROSCOE_PORT": str(port),
    }
    roscoe = [sys.executable, "-m", "roscoe"]
    ws = workspace(root / "ws")
    try:
        subprocess.run(
            [*roscoe, "server", "start", "--image", image, "--workspace", str(ws)],
            env=env,
            check=True,
            capture_output=True,
        )
        token = (root / "data" / "service-token").read_text().strip()
        runner = Runner(port, token)
        print(f"{engine} ({image}):")
        bench_runs(runner, host, image, ws, reps)
        bench_live(runner, lines)
        bench_burst(runner)
    finally:
        subprocess.run([*roscoe, "server", "stop"], env=env, capture_output=True, check=False)
        subprocess.run(["docker", "-H", host, "rm", "-f", name], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--lines", type=int, default=25)
    parser.add_argument("--engines", default="docker,podman")
    parser.add_argument(
        "--image", default=os.environ.get("ROSCOE_TEST_RUNNER_IMAGE", "roscoe-runner:dev")
    )
    args = parser.parse_args()
    for engine in args.engines.split(","):
        bench_engine(engine.strip(), args.image, args.reps, args.lines)


if __name__ == "__main__":
    main()
