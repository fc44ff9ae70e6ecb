"""What change tracking adds to a run: a case of 10,000 files on a local disk.

For each engine: the same script (it writes one report file into the case) run N times with
`roscoe run --no-track-changes` and N times with tracking on, interleaved so both see the same
machine load. Prints the medians and what tracking adds, in ms and as a ratio; the first run
of a case nobody has hashed yet (the hash cache is empty, so every file is hashed before the
run); what a preview adds on top (the case is copied); then where the time goes inside one
tracked run, measured in-process (the walks, the cache, the comparison), of which most
overlaps the engine's create and remove calls.

    .venv/bin/python bench/track_changes.py [--reps 15] [--files 10000] [--engines docker,podman]

Target: tracking adds at most 100 ms to a run of a 10,000-file case. Not a test: figures depend
on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import HOSTS, IMAGE, roscoe_command, timed

SCRIPT = "from pathlib import Path\nPath('report.txt').write_text('done\\n')\n"
RACY_WAIT_S = 2.5  # files younger than this are hashed on every walk (changes.RACY_NS)


def make_case(case: Path, files: int) -> int:
    """`files` files of 100 B to 8 KiB in folders of 100, two levels deep; total bytes."""
    rng = random.Random(12)
    total = 0
    for index in range(files):
        folder = case / f"part{index // 1000:02d}" / f"box{index // 100 % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(100, 8192)
        (folder / f"doc{index:05d}.txt").write_bytes(rng.randbytes(size))
        total += size
    for folder, _dirs, names in os.walk(case):
        os.chmod(folder, 0o777)  # the run's uid 1000 writes here
        for name in names:
            os.chmod(Path(folder) / name, 0o666)
    return total


def workspace(root: Path, files: int) -> Path:
    case = root / "projects" / "bench-case"
    case.mkdir(parents=True)
    total = make_case(case, files)
    (root / "Tools").mkdir()
    (root / "Tools" / "report.py").write_text(SCRIPT)
    print(f"case: {files} files, {total / 1e6:.1f} MB, on {filesystem(case)}")
    time.sleep(RACY_WAIT_S)
    return root


def filesystem(path: Path) -> str:
    found = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False)
    lines = found.stdout.splitlines()
    return lines[-1].split()[1] if len(lines) > 1 else "unknown"


def roscoe_run(ws: Path, track: bool, preview: bool = False) -> list[str]:
    return [
        *roscoe_command(),
        "run", "--workspace", str(ws), "--image", IMAGE,
        "--track-changes" if track else "--no-track-changes",
        *(["--preview"] if preview else []),
        "bench-case", "report.py",
    ]  # fmt: skip


def compare(engine: str, reps: int, ws: Path, env: dict[str, str]) -> None:
    off, on = roscoe_run(ws, track=False), roscoe_run(ws, track=True)
    cold = timed(on, env)  # the first tracked run: nothing hashed yet
    for _ in range(2):  # warm the page cache and the engine
        timed(off, env)
        timed(on, env)
    off_times, on_times = [], []
    for _ in range(reps):
        off_times.append(timed(off, env))
        on_times.append(timed(on, env))
    a, b = statistics.median(off_times), statistics.median(on_times)
    for name, times, mid in (("untracked", off_times, a), ("tracked", on_times, b)):
        print(f"{engine}: {name:<10} median {mid * 1000:7.0f} ms  (min {min(times) * 1000:.0f})")
    print(f"{engine}: tracking adds {(b - a) * 1000:+.0f} ms ({b / a:.2f}x)")
    print(f"{engine}: the first tracked run of the case (hashing all of it) took {cold:.2f} s")
    previews = [timed(roscoe_run(ws, track=True, preview=True), env) for _ in range(5)]
    for run_id in _pending(env):
        timed([*roscoe_command(), "runs", "discard", run_id], env)
    p = statistics.median(previews)
    print(
        f"{engine}: a preview (the case copied with cp -a --reflink=auto) median "
        f"{p * 1000:.0f} ms: {(p - b) * 1000:+.0f} ms on a tracked run"
    )


def _pending(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        [*roscoe_command(), "runs", "list", "--limit", "50", "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
    import json

    return [r["id"] for r in json.loads(listed.stdout) if r.get("preview_state") == "pending"]


def phases(ws: Path) -> None:
    """One tracked run's work, step by step, without the engine (medians of 5)."""
    from roscoe.runs import changes, hashcache
    from roscoe.runs.watch import CaseWatch

    case = ws / "projects" / "bench-case"
    cache_path = Path(tempfile.mkdtemp()) / "cache.json"
    snap = changes.walk(case)
    hashcache.fill_hashes(snap, {})
    cache_path.write_bytes(hashcache.cache_text(snap))
    steps: dict[str, list[float]] = {}

    def clock(name: str, started: float) -> float:
        now = time.perf_counter()
        steps.setdefault(name, []).append((now - started) * 1000)
        return now

    for index in range(5):
        t = time.perf_counter()
        cache = hashcache.load_cache(cache_path)
        t = clock("load the hash cache", t)
        watch = CaseWatch()
        before = changes.walk(case, watch=watch)
        t = clock("before-walk (stat, watch)", t)
        hashcache.fill_hashes(before, cache)
        watch.touched()  # what the hashing itself opened
        clock("hashes from the cache", t)
        (case / "report.txt").write_text(f"run {index}\n")  # what the script does
        t = time.perf_counter()
        touched = watch.touched()
        after, check, forced = changes.rewalk(before, touched)
        changes.compare(before, after, only=check, forced=forced)
        t = clock("after: events, compare", t)
        watch.close()
        full = changes.walk(case)
        changes.compare(before, full)
        t = clock("(a full after-walk instead)", t)
        hashcache.cache_text(after)
        clock("(a cache rewrite, when due)", t)
    print("inside one tracked run (medians of 5, in-process):")
    for name, times in steps.items():
        print(f"  {name:<28} {statistics.median(times):6.1f} ms")
    print("  (the before-walk overlaps the engine creating the container, the after-walk its")
    print("   removal: the run waits only for what outlasts those calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--engines", default="docker,podman")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roscoe-bench-") as temp:
        ws = workspace(Path(temp) / "ws", options.files)
        print(f"image {IMAGE}, {options.reps} interleaved repetitions\n")
        for engine in options.engines.split(","):
            env = {
                **os.environ,
                "DOCKER_HOST": HOSTS[engine],
                "ROSCOE_RUNTIME": engine,
                "ROSCOE_DATA_DIR": str(Path(temp) / f"data-{engine}"),
            }
            compare(engine, options.reps, ws, env)
            print()
        phases(ws)
    if shutil.which("nproc"):
        print(f"\nmachine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
