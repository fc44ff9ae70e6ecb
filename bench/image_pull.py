"""`roscoe image pull` against `docker pull` from the loopback registry: same image, same engine.

Makes its own image (one layer of random bytes, so no engine already has it), pushes it to the
registry under a unique name, then for each engine pulls it N times with each tool,
interleaved (roscoe, docker, docker, roscoe, ...), removing it before every pull. Prints the
medians and the ratio roscoe / docker (target: at most 1.05). Removes the image from the
engines and the registry at the end.

    .venv/bin/python bench/image_pull.py
    .venv/bin/python bench/image_pull.py --engines podman --reps 7 --mb 200
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from benchlib import HOSTS, timed

from roscoe.engine import Engine, connect
from roscoe.images.pull import pull_image

REGISTRY = os.environ.get("ROSCOE_TEST_REGISTRY", "127.0.0.1:5000")


def dk(host: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", "-H", host, *args], input=data, capture_output=True, timeout=600, check=False
    )


def rootfs(megabytes: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = megabytes << 20
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    return buffer.getvalue()


def delete_from_registry(repository: str, tag: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    head = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", method="HEAD"
    )
    head.add_header("Accept", accept)
    try:
        digest = opener.open(head, timeout=10).headers["Docker-Content-Digest"]
        opener.open(
            urllib.request.Request(
                f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", method="DELETE"
            ),
            timeout=10,
        )
    except OSError as exc:
        print(f"note: could not delete {repository}:{tag} from the registry: {exc}")


def connect_to(engine: str, host: str) -> Engine:
    os.environ["DOCKER_HOST"] = host
    return connect(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="docker,podman")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100, help="size of the image's one layer")
    args = parser.parse_args()

    repository = f"roscoe-bench/pull-{uuid.uuid4().hex[:10]}"
    ref = f"{REGISTRY}/{repository}:v1"
    docker_host = HOSTS["docker"]
    print(f"image {ref}: one layer of {args.mb} MB of random bytes")
    made = dk(docker_host, "import", "-", ref, data=rootfs(args.mb))
    if made.returncode != 0:
        sys.exit(f"docker import failed: {made.stderr.decode()}")
    pushed = dk(docker_host, "push", ref)
    dk(docker_host, "rmi", ref)
    if pushed.returncode != 0:
        sys.exit(f"push failed: {pushed.stderr.decode()}")

    results: dict[str, dict[str, list[float]]] = {}
    try:
        for engine in args.engines.split(","):
            host = HOSTS[engine]
            env = {**os.environ, "DOCKER_HOST": host, "ROSCOE_RUNTIME": engine}
            tools = {
                "roscoe": [sys.executable, "-m", "roscoe", "image", "pull", "--image", ref],
                "docker": ["docker", "-H", host, "pull", "-q", ref],
            }
            times: dict[str, list[float]] = {"roscoe": [], "docker": [], "in-process": []}
            connected = connect_to(engine, host)
            for rep in range(args.reps):
                order = ["roscoe", "docker", "in-process"]
                for tool in order[rep % 3 :] + order[: rep % 3]:
                    dk(host, "rmi", ref)
                    if tool == "in-process":
                        start = time.perf_counter()
                        pull_image(connected, ref)
                        times[tool].append(time.perf_counter() - start)
                    else:
                        times[tool].append(timed(tools[tool], env, timeout=600))
            connected.close()
            dk(host, "rmi", ref)
            results[engine] = times
    finally:
        for host in HOSTS.values():
            dk(host, "rmi", ref)
        delete_from_registry(repository, "v1")

    # "roscoe" is the whole command (interpreter start, engine connect, pull, confirm);
    # "in-process" is pull_image() alone on an engine already connected.
    print(
        f"{'engine':<8}{'roscoe':>9}{'docker':>9}{'ratio':>7}{'in-process':>12}{'ratio':>7}  runs"
    )
    for engine, times in results.items():
        ours, theirs = statistics.median(times["roscoe"]), statistics.median(times["docker"])
        inner = statistics.median(times["in-process"])
        print(
            f"{engine:<8}{ours:>8.2f}s{theirs:>8.2f}s{ours / theirs:>7.3f}"
            f"{inner:>11.2f}s{inner / theirs:>7.3f}  {len(times['roscoe'])} each, interleaved"
        )


if __name__ == "__main__":
    main()
