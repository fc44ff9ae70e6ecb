"""Bench the runner commands against the docker CLI doing the same thing.

    .venv/bin/python bench/server.py [--engines docker,podman] [--repeat 3]

1. `roscoe server start` to ready (image local) vs `docker run -d` of the same container
   plus polling /health;
2. `roscoe server status` vs `docker inspect`;
3. `roscoe logs --tail all > /dev/null` vs `docker logs` on a container that printed
   1,000,000 lines.
Targets: start < 2 s, status < 250 ms, logs at least as fast as the docker CLI.
Everything runs under a throwaway data dir with its own container names and port.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOSTS = {"docker": "unix:///var/run/docker.sock", "podman": "unix:///run/podman/podman.sock"}
ROSCOE = [sys.executable, "-m", "roscoe"]
RUNNER_IMAGE = "roscoe-runner:dev"
BASE_IMAGE = "roscoe-base:bookworm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(command: list[str], env: dict[str, str], stdout: int | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=stdout or subprocess.DEVNULL)
    return time.perf_counter() - began


def wait_health(port: int, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("the service never answered")


def docker(host: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", "-H", host, *args], check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def docker_run_args(env: dict[str, str], name: str, port: int, engine: str) -> list[str]:
    """The runner container as `docker run` flags, from the same RunnerConfig roscoe uses."""
    from roscoe.config import paths
    from roscoe.runner.layout import RunnerConfig

    os.environ.update(env)
    config = RunnerConfig(
        image=RUNNER_IMAGE,
        name=name,
        port=port,
        workspace=paths.default_workspace(),
        runs_dir=paths.runs_dir(),
        token_file=paths.token_file(),
        engine_socket=HOSTS[engine].removeprefix("unix://"),
        engine_kind=engine,
    )
    spec = config.container_spec()
    args = ["run", "-d", "--name", name, "--user", spec.user, "--network", "host"]
    for key, value in spec.environment.items():
        args += ["-e", f"{key}={value}"]
    for source, (inside, mode) in spec.binds.items():
        args += ["-v", f"{source}:{inside}:{mode}"]
    for gid in spec.group_add:
        args += ["--group-add", gid]
    args += ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    args += ["--security-opt", "no-new-privileges", "--restart", "unless-stopped", RUNNER_IMAGE]
    return args


def bench_engine(engine: str, repeat: int) -> None:
    host = HOSTS[engine]
    work = Path(tempfile.mkdtemp(prefix="roscoe-bench-"))
    port = free_port()
    name = f"roscoe-bench-{os.getpid()}"
    env = {
        **os.environ,
        "DOCKER_HOST": host,
        "ROSCOE_RUNTIME": engine,
        "ROSCOE_DATA_DIR": str(work / "data"),
        "ROSCOE_CONFIG_DIR": str(work / "config"),
        "ROSCOE_CONTAINER_NAME": name,
        "ROSCOE_PORT": str(port),
    }
    results: dict[str, list[float]] = {}
    try:
        for _ in range(repeat):
            results.setdefault("roscoe server start", []).append(
                timed([*ROSCOE, "server", "start", "--use-local-image"], env)
            )
            results.setdefault("roscoe server status", []).append(
                timed([*ROSCOE, "server", "status"], env)
            )
            results.setdefault("docker inspect", []).append(
                timed(["docker", "-H", host, "inspect", name], env)
            )
            subprocess.run([*ROSCOE, "server", "stop"], env=env, check=True, capture_output=True)

            plain = f"{name}-plain"
            began = time.perf_counter()
            docker(host, *docker_run_args(env, plain, port, engine))
            wait_health(port)
            results.setdefault("docker run -d + poll /health", []).append(
                time.perf_counter() - began
            )
            docker(host, "rm", "-f", plain)

        # A container that printed 1,000,000 lines, labelled as a runner so `roscoe logs`
        # reads it (it finds the runner by name and roscoe's labels).
        from roscoe.labels import LABEL_KIND, LABEL_MANAGED_BY

        noisy = f"{name}-lines"
        script = "import sys\nfor i in range(1000000): sys.stdout.write(f'line {i}\\n')"
        labels = ["--label", f"{LABEL_MANAGED_BY}=roscoe", "--label", f"{LABEL_KIND}=server"]
        run = ["run", "--name", noisy, "--network", "none", *labels, BASE_IMAGE]
        docker(host, *run, "python3", "-c", script)
        logs_env = {**env, "ROSCOE_CONTAINER_NAME": noisy}
        for _ in range(repeat):
            results.setdefault("roscoe logs --tail all (1M lines)", []).append(
                timed([*ROSCOE, "logs", "--tail", "all"], logs_env)
            )
            results.setdefault("docker logs (1M lines)", []).append(
                timed(["docker", "-H", host, "logs", noisy], env)
            )
        docker(host, "rm", "-f", noisy)
    finally:
        for leftover in (name, f"{name}-plain", f"{name}-lines"):
            subprocess.run(
                ["docker", "-H", host, "rm", "-f", leftover], check=False, capture_output=True
            )
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{engine} (median of {repeat}, seconds)")
    for what, times in results.items():
        print(f"  {what:<40} {statistics.median(times):7.3f}   (min {min(times):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="docker,podman")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for engine in args.engines.split(","):
        bench_engine(engine.strip(), args.repeat)


if __name__ == "__main__":
    main()
