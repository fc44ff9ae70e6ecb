"""What gVisor costs: a trivial `roscoe run` under gVisor next to the same run under runc, on
Docker and on Podman, interleaved so both see the same machine load; and the same for a
script that makes many system calls (where gVisor's cost shows most).

    .venv/bin/python bench/isolation.py [--reps 15] [--engines docker,podman]

Needs gVisor set up as docs/usage.md ("Isolation") says: runsc registered with dockerd, and
for Podman a gVisor API service (ROSCOE_GVISOR_HOST, default
unix:///run/podman/podman-gvisor.sock; scripts/engines.sh starts one). Prints medians and the
gVisor/runc ratios. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from benchlib import HOSTS, IMAGE, roscoe_command, timed

GVISOR_HOST = os.environ.get(
    "ROSCOE_TEST_PODMAN_GVISOR_HOST", "unix:///run/podman/podman-gvisor.sock"
)
SCRIPTS = {
    "noop.py": "pass\n",
    # 200,000 small system calls: stat of a file in the case, over and over.
    "syscalls.py": "import os\nfor _ in range(200_000):\n    os.stat('/data/file.txt')\n",
}


def workspace(root: Path) -> Path:
    case = root / "projects" / "bench-case"
    case.mkdir(parents=True)
    case.chmod(0o777)
    (case / "file.txt").write_text("x\n")
    (root / "Tools").mkdir()
    for name, text in SCRIPTS.items():
        (root / "Tools" / name).write_text(text)
    return root


def compare(engine: str, script: str, reps: int, ws: Path, data: Path) -> None:
    env = {
        **os.environ,
        "DOCKER_HOST": HOSTS[engine],
        "ROSCOE_RUNTIME": engine,
        "ROSCOE_DATA_DIR": str(data),
        "ROSCOE_TRACK_CHANGES": "false",  # the same work on both sides, and less of it
    }
    if engine == "podman":
        env["ROSCOE_GVISOR_HOST"] = GVISOR_HOST
    base = [*roscoe_command(), "run", "--workspace", str(ws), "--image", IMAGE]
    commands = {
        iso: [*base, "--isolation", iso, "bench-case", script] for iso in ("runc", "gvisor")
    }
    for command in commands.values():  # warm the page cache and the engine
        timed(command, env)
    times: dict[str, list[float]] = {"runc": [], "gvisor": []}
    for _ in range(reps):
        for iso, command in commands.items():
            times[iso].append(timed(command, env))
    runc, gvisor = (statistics.median(times[iso]) for iso in ("runc", "gvisor"))
    print(
        f"{engine:<7} {script:<12} runc {runc * 1000:6.0f} ms   gvisor {gvisor * 1000:6.0f} ms"
        f"   ratio {gvisor / runc:4.2f}x   (+{(gvisor - runc) * 1000:.0f} ms; medians of {reps})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--engines", default="docker,podman")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roscoe-bench-") as tmp:
        root = Path(tmp)
        ws = workspace(root / "ws")
        for engine in options.engines.split(","):
            for script in SCRIPTS:
                compare(engine, script, options.reps, ws, root / "data")


if __name__ == "__main__":
    main()
