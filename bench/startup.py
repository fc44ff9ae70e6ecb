"""How long roscoe takes to start, next to the interpreter alone: `roscoe --version`, `--help`,
and the imports of the `roscoe run` path (which must never include the docker SDK or rich).

Each command runs N times in turn with the others (so all see the same machine load), like
hyperfine; the medians, the minimums and the CPU time are printed.

    .venv/bin/python bench/startup.py [--reps 31]

Targets: `roscoe --version` under 80 ms; not a test, as figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROSCOE = str(BIN / "roscoe") if (BIN / "roscoe").exists() else None
RUN_PATH = (
    "import sys; from roscoe.cli.app import build_app; build_app('run'); "
    "import roscoe.cli.run, roscoe.runs.start, roscoe.runs.plan, roscoe.images.choice, "
    "roscoe.engine; "
    "heavy = sorted({'docker', 'rich', 'requests', 'mcp'} & set(sys.modules)); "
    "sys.exit(f'the run path imports {heavy}' if heavy else 0)"
)


def commands() -> list[tuple[str, list[str]]]:
    roscoe = [ROSCOE] if ROSCOE else [sys.executable, "-m", "roscoe"]
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("roscoe --version", [*roscoe, "--version"]),
        ("roscoe --help", [*roscoe, "--help"]),
        ("imports of roscoe run", [sys.executable, "-c", RUN_PATH]),
    ]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    assert child.stderr is not None
    with child.stderr as errors:
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(command)} failed: {errors.read().decode()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=31)
    options = parser.parse_args()
    runs = commands()
    for _, command in runs:  # warm the page cache, compile what is not compiled yet
        timed(command)
    walls: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpus: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(options.reps):
        for name, command in runs:
            wall, cpu = timed(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"{options.reps} interleaved repetitions (ms)      median     min    CPU")
    for name, _ in runs:
        print(
            f"  {name:<34} {statistics.median(walls[name]) * 1000:7.1f} "
            f"{min(walls[name]) * 1000:7.1f} {statistics.median(cpus[name]) * 1000:6.1f}"
        )
    version = statistics.median(walls["roscoe --version"]) * 1000
    print(f"roscoe --version: {version:.0f} ms (target: under 80 ms)")


if __name__ == "__main__":
    main()
