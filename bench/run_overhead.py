"""What `roscoe run` costs on top of `docker run --rm`, on Docker and on Podman.

For each engine: a trivial script (`pass`), run N times by `roscoe run` and N times by the
docker CLI with the same image, mounts, user, limits and in-container `timeout` wrapper,
interleaved so both see the same machine load. Prints the medians and the ratio; then 20
(--concurrent; 0 skips it) `roscoe run`s at once (all must succeed) with their wall time; then
where roscoe's own start-up time goes (Python, typer, the CLI's imports; the docker SDK, which
the run path never loads).

    .venv/bin/python bench/run_overhead.py [--reps 15] [--engines docker,podman] [--concurrent 20]

Target: roscoe run at most 1.2x docker run. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import HOSTS, IMAGE, docker_run, roscoe_command

TIMEOUT = 300


def workspace(root: Path) -> Path:
    case = root / "projects" / "bench-case"
    case.mkdir(parents=True)
    case.chmod(0o777)
    (root / "Tools").mkdir()
    (root / "Tools" / "noop.py").write_text("pass\n")
    return root


def roscoe_run(ws: Path) -> list[str]:
    return [
        *roscoe_command(),
        "run", "--workspace", str(ws), "--image", IMAGE, "--timeout", str(TIMEOUT),
        "bench-case", "noop.py",
    ]  # fmt: skip


def timed(command: list[str], env: dict[str, str]) -> float:
    return timed_with_cpu(command, env)[0]


def timed_with_cpu(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the client process itself, user + system).

    The CPU time moves much less with the machine's load than the wall time does: on a busy
    machine it is the steadier figure of what the client itself costs.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    with child.stderr as errors:
        output = errors.read()
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed: {output.decode()[-400:]}")
    return took, usage.ru_utime + usage.ru_stime


def compare(engine: str, reps: int, ws: Path, env: dict[str, str]) -> tuple[float, float]:
    host = HOSTS[engine]
    theirs, ours = docker_run(host, IMAGE, ws, TIMEOUT), roscoe_run(ws)
    for _ in range(2):  # warm the page cache and the engine
        timed(theirs, env)
        timed(ours, env)
    docker_times: list[float] = []
    roscoe_times: list[float] = []
    docker_cpu: list[float] = []
    roscoe_cpu: list[float] = []
    for _ in range(reps):
        for times, cpus, command in ((docker_times, docker_cpu, theirs),
                                     (roscoe_times, roscoe_cpu, ours)):  # fmt: skip
            wall, cpu = timed_with_cpu(command, env)
            times.append(wall)
            cpus.append(cpu)
    d, r = statistics.median(docker_times), statistics.median(roscoe_times)
    label = "docker run" if engine == "docker" else "docker -H podman.sock run"
    for name, times, mid, cpus in (
        (label, docker_times, d, docker_cpu),
        ("roscoe run", roscoe_times, r, roscoe_cpu),
    ):
        print(
            f"{engine}: {name:<26} median {mid * 1000:7.0f} ms  (min {min(times) * 1000:.0f}; "
            f"the client's CPU {statistics.median(cpus) * 1000:.0f} ms)"
        )
    print(f"{engine}: ratio {r / d:.2f}x, roscoe's own overhead {(r - d) * 1000:+.0f} ms")
    return d, r


def concurrent(ws: Path, env: dict[str, str], count: int = 20) -> None:
    command = roscoe_run(ws)
    started = time.perf_counter()

    def one(_: int) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(command, env=env, capture_output=True, check=False)

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    failed = [r for r in results if r.returncode != 0]
    print(f"{env['ROSCOE_RUNTIME']}: {count} concurrent roscoe runs: wall {wall:.1f} s, "
          f"{count - len(failed)}/{count} succeeded")  # fmt: skip
    for r in failed[:3]:
        print("  failure:", r.stderr.decode()[-300:])
    if failed:
        raise SystemExit(1)


def engine_side(host: str, ws: Path, reps: int) -> None:
    """Where the engine's share of the difference comes from: the same network-less container
    created, started, waited for and removed over the API (no CLI at all), as the docker CLI
    asks for it (NetworkMode none) and as roscoe does (plus NetworkDisabled: Docker then sets
    up no sandbox in its network controller; see roscoe.engine.runs)."""
    from roscoe.engine.wire import Wire

    wire = Wire(host.removeprefix("unix://"), "1.41")
    uid = "1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    binds = [f"{ws / 'projects' / 'bench-case'}:/data:rw", f"{ws / 'Tools'}:/tools:ro"]
    body = {
        "Image": IMAGE,
        "User": uid,
        "Entrypoint": ["python3"],
        "Cmd": ["/tools/noop.py"],
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "Binds": binds,
        },
        "Labels": {"io.roscoe.bench": "1"},
    }
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(reps):
        for disabled in (False, True):
            started = time.perf_counter()
            shape = {**body, "NetworkDisabled": disabled}
            made = wire.call("POST", "/containers/create", body=shape)
            try:
                wire.call("POST", f"/containers/{made['Id']}/start")
                wire.call("POST", f"/containers/{made['Id']}/wait", timeout=TIMEOUT)
            finally:
                wire.call("DELETE", f"/containers/{made['Id']}", params={"force": True})
            times[disabled].append(time.perf_counter() - started)
    plain, without = (statistics.median(times[k]) * 1000 for k in (False, True))
    print(
        f"docker: the engine alone (create, start, wait, remove; median of {reps}): "
        f"{plain:.0f} ms as the docker CLI asks, {without:.0f} ms with NetworkDisabled "
        f"({without - plain:+.0f} ms)"
    )


# What `roscoe run` imports before its first engine call, and what the change tracking's
# before-walk thread imports while the engine creates the container.
RUN_PATH = "roscoe.cli.app, roscoe.cli.run, roscoe.runs.start, roscoe.engine, roscoe.images.choice"
WALK = "roscoe.runs.changes, roscoe.runs.hashcache, roscoe.runs.watch"


def startup() -> None:
    """Where roscoe's start-up goes: medians of 5 fresh interpreters each."""

    def median_of(code: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs) * 1000

    base = median_of("pass")
    print("start-up (median of 5):")
    print(f"  python -c pass                        {base:6.0f} ms")
    for what, code in [
        ("import typer", "import typer"),
        ("import docker", "import docker"),
        ("import roscoe.cli.app (no command yet)", "import roscoe.cli.app"),
        ("run path before the engine (typer incl.)", f"import {RUN_PATH}"),
        ("  + what the before-walk thread loads", f"import {RUN_PATH}, {WALK}"),
    ]:  # fmt: skip
        print(f"  {what:<42} +{median_of(code) - base:5.0f} ms")
    print("  (python -X importtime -c 'import roscoe.cli.app' shows the rest)")


def compile_roscoe() -> None:
    """Byte-compile roscoe as pip does when it installs a wheel.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 compiles every module from
    source on each start (~60 ms here), which no installed roscoe pays.
    """
    import roscoe

    package = Path(roscoe.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--engines", default="docker,podman")
    parser.add_argument(
        "--concurrent", type=int, default=20, help="roscoe runs at once afterwards (0: none)"
    )
    options = parser.parse_args()
    if not shutil.which("docker"):
        raise SystemExit("the docker CLI is needed for the baseline")
    compile_roscoe()
    with tempfile.TemporaryDirectory(prefix="roscoe-bench-") as temp:
        ws = workspace(Path(temp) / "ws")
        print(f"image {IMAGE}, {options.reps} interleaved repetitions, trivial script\n")
        for engine in options.engines.split(","):
            env = {
                **os.environ,
                "DOCKER_HOST": HOSTS[engine],
                "ROSCOE_RUNTIME": engine,
                "ROSCOE_DATA_DIR": str(Path(temp) / f"data-{engine}"),
            }
            compare(engine, options.reps, ws, env)
            if engine == "docker":
                engine_side(HOSTS[engine], ws, options.reps)
            if options.concurrent > 0:  # 0: no concurrent part
                concurrent(ws, env, options.concurrent)
            print()
    startup()


if __name__ == "__main__":
    main()
