"""`roscoe run` against real Docker and Podman: every rule of a one-shot run.

Each test runs the real CLI in a subprocess with --workspace <tmp> and the small base image,
and checks afterwards that no container of its runs is left on the engine. Every test runs on
Docker, rootful Podman and rootless Podman (the CLI as the rootless test user, against its
own service: tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_run_support import (
    CASE,
    leftovers,
    limits_unenforced,
    make_workspace,
    record_of,
    run_cli,
    run_ids,
    run_uid,
    spawn_cli,
    wait_for_output,
)

from helpers import WITH_ROOTLESS, engine_kind, roscoe

pytestmark = [pytest.mark.engine, WITH_ROOTLESS]

# The isolation suite: these run under runc and under gVisor, on both engines (the
# `isolation` fixture sets ROSCOE_ISOLATION, and ROSCOE_GVISOR_HOST on Podman).
ISOLATIONS = pytest.mark.parametrize("isolation", ["runc", "gvisor"], indirect=True)

ECHO_ARGS = """
import json, os, sys
print(json.dumps({"args": sys.argv[1:], "cwd": os.getcwd()}))
"""
EXIT_7 = "import sys\nprint('bye')\nsys.exit(7)\n"
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
HOG = """
print('started', flush=True)
hog = []
for _ in range(64):
    hog.append(b"x" * (16 << 20))  # written, so really resident: 1 GiB in 16 MiB steps
print('survived')
"""
SANDBOX = r"""
import json, os, socket, sys
facts = {"uid": os.getuid(), "gid": os.getgid(), "home": os.environ.get("HOME")}
def attempt(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        return "writable"
    except OSError as exc:
        return exc.strerror
facts["tools"] = attempt("/tools/new.txt")
facts["root_fs"] = attempt("/etc/new.txt")
mounts = [m.split() for m in open("/proc/self/mounts")]
facts["root_mount"] = [m[3].split(",")[0] for m in mounts if m[1] == "/"]
facts["tmp"] = attempt("/tmp/new.txt")
facts["data"] = attempt("/data/written-by-script.txt")
facts["interfaces"] = sorted(os.listdir("/sys/class/net"))
facts["netns"] = os.readlink("/proc/self/ns/net")
try:  # the container's own loopback works, by address and by name
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    socket.create_connection(("localhost", server.getsockname()[1]), timeout=3).close()
    facts["loopback"] = socket.gethostbyname("localhost")
except OSError as exc:
    facts["loopback"] = repr(exc)
facts["hosts_file"] = attempt("/etc/hosts")
sock = socket.socket()
sock.settimeout(3)
try:
    sock.connect(("127.0.0.1", int(sys.argv[1])))  # listening on the HOST's loopback
    facts["host_port"] = "reached"
except OSError as exc:
    facts["host_port"] = type(exc).__name__
status = dict(line.split(":\t", 1) for line in open("/proc/self/status") if ":\t" in line)
facts["cap_eff"] = status["CapEff"].strip()
import ctypes  # gVisor's /proc/self/status has no NoNewPrivs line: ask the kernel
facts["no_new_privs"] = str(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
facts["mounts"] = sorted(m[1] for m in mounts if m[1] in ("/data", "/tools"))
print(json.dumps(facts))
"""
FLOOD = """
import sys
block = bytes(range(256)) * 4096  # 1 MiB with every byte value
for _ in range(20):
    sys.stdout.buffer.write(block)
sys.stdout.buffer.write(b"\\xff\\xfe not utf-8 \\xc3\\x28 end")
sys.stderr.buffer.write(b"err \\xff\\n")
"""
SHELL = 'echo "sh says $1"\nexit 3\n'
FORKS = """
import os, sys, time
pids, refused = [], None
for _ in range(int(sys.argv[1])):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = exc.strerror
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    pids.append(pid)
print(len(pids), refused, flush=True)
for pid in pids:
    os.kill(pid, 9)
"""
KERNEL = "cat /proc/version\ndmesg 2>&1 | head -n 3\n"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("print('escaped')\n")
    root = make_workspace(
        tmp_path / "ws",
        {
            "echo_args.py": ECHO_ARGS,
            "exit7.py": EXIT_7,
            "sleeper.py": SLEEPER,
            "hog.py": HOG,
            "sandbox.py": SANDBOX,
            "flood.py": FLOOD,
            "say.sh": SHELL,
            "forks.py": FORKS,
            "kernel.sh": KERNEL,
            "notes.txt": "not a script\n",
        },
    )
    # Symlinks leading out of the workspace: a case and a script.
    os.symlink(outside, root / "projects" / "escape")
    os.symlink(outside / "evil.py", root / "Tools" / "escape.py")
    # Writable by anyone on the host: only the read-only mount keeps a script out of Tools/.
    (root / "Tools").chmod(0o777)
    return root


@pytest.fixture
def clean(engine: Any, isolated_dirs: Path) -> Iterator[list[int]]:
    """Fails the test if any container of its runs is still there; append Popen pids."""
    pids: list[int] = []
    yield pids
    assert leftovers(engine, isolated_dirs, pids) == []


@ISOLATIONS
def test_happy_path_with_arguments_containing_spaces(  # noqa: PLR0917 - fixtures, by name
    ws: Path,
    base_image: str,
    clean: list[int],
    isolated_dirs: Path,
    engine_name: str,
    isolation: str,
) -> None:
    args = ["two words", "--flag", "", "ünïcode", "-e", "x=y"]
    done = run_cli(ws, base_image, CASE, "echo_args.py", "--", *args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"args": args, "cwd": "/data"}
    (run_id,) = run_ids(isolated_dirs)
    record = record_of(isolated_dirs, run_id)
    assert (record["status"], record["exit_code"], record["args"]) == ("succeeded", 0, args)
    assert (record["engine"], record["isolation"]) == (engine_kind(engine_name), isolation)


@ISOLATIONS
def test_the_kernel_is_the_one_asked_for(
    ws: Path, base_image: str, clean: list[int], isolation: str
) -> None:
    done = run_cli(ws, base_image, CASE, "kernel.sh")
    assert done.returncode == 0, done.stderr
    version = done.stdout.decode().splitlines()[0]
    host = Path("/proc/version").read_text().strip()
    if isolation == "gvisor":
        assert "Starting gVisor" in done.stdout.decode()
        assert version != host  # gVisor's own kernel, not the host's
    else:
        assert version == host and "gVisor" not in done.stdout.decode()


@ISOLATIONS
def test_exit_code_passes_through_and_shell_scripts_run(
    ws: Path, base_image: str, clean: list[int], isolation: str
) -> None:
    done = run_cli(ws, base_image, CASE, "exit7.py")
    assert (done.returncode, done.stdout) == (7, b"bye\n")
    done = run_cli(ws, base_image, CASE, "say.sh", "hi there")
    assert (done.returncode, done.stdout) == (3, b"sh says hi there\n")


@pytest.mark.parametrize(
    "refusal",
    [
        ("/etc", "echo_args.py", "absolute path"),
        ("../..", "echo_args.py", "'..'"),
        (f"{CASE}/sub", "echo_args.py", "contains '/'"),
        ("", "echo_args.py", "empty"),
        ("escape", "echo_args.py", "outside"),
        ("no-such-case", "echo_args.py", "case 'no-such-case' does not exist"),
        (CASE, "/usr/bin/env", "absolute path"),
        (CASE, "../projects/case-1/input.txt", "'..'"),
        (CASE, "", "empty"),
        (CASE, "escape.py", "outside"),
        (CASE, "no_such_script.py", "script 'no_such_script.py' does not exist"),
        (CASE, "notes.txt", "only .py (python3), .sh (sh)"),
    ],
)
def test_refused_input_exits_2_before_any_container(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, refusal: tuple[str, str, str]
) -> None:
    case, script, says = refusal
    done = run_cli(ws, base_image, case, script)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr.decode()
    assert done.stderr.decode().count("error:") == 1 and b"Traceback" not in done.stderr
    assert done.stdout == b""
    assert run_ids(isolated_dirs) == []  # nothing was created, not even a record


@ISOLATIONS
def test_timeout_kills_and_leaves_nothing(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, isolation: str
) -> None:
    done = run_cli(ws, base_image, "--timeout", "2", CASE, "sleeper.py")
    assert done.returncode == 124, done.stderr
    assert done.stdout == b"started\n"
    assert b"timed out after 2 s" in done.stderr
    record = record_of(isolated_dirs, run_ids(isolated_dirs)[-1])
    assert (record["status"], record["timed_out"]) == ("timed_out", True)


def refused_for_want_of_limits(
    ws: Path, base_image: str, isolated_dirs: Path, engine_name: str, *args: str
) -> bool:
    """Where the engine cannot enforce a run's limits (rootless Podman on cgroup v1), the run
    (with run.require_limits on, the default) is refused before any container exists: True
    once that is checked. False where the limits hold: the test goes on."""
    missing = limits_unenforced(engine_name)
    if not missing:
        return False
    done = run_cli(ws, base_image, *args, env={"ROSCOE_REQUIRE_LIMITS": "true"})
    assert done.returncode == 5, done.stderr
    err = done.stderr.decode()
    assert f"cannot enforce this run's limits: the cgroup controllers {', '.join(missing)}" in err
    assert "ROSCOE_REQUIRE_LIMITS=false" in err  # the hint
    assert err.count("error:") == 1 and "Traceback" not in err and done.stdout == b""
    assert run_ids(isolated_dirs) == []
    return True


@ISOLATIONS
def test_memory_limit_kill_says_so(  # noqa: PLR0917 - fixtures, by name
    ws: Path,
    base_image: str,
    clean: list[int],
    isolated_dirs: Path,
    isolation: str,
    engine_name: str,
) -> None:
    args = ("--memory", "64m", "--timeout", "60", CASE, "hog.py")
    if refused_for_want_of_limits(ws, base_image, isolated_dirs, engine_name, *args):
        return
    done = run_cli(ws, base_image, *args)
    assert done.returncode == 137, done.stderr
    assert b"survived" not in done.stdout
    assert b"killed at the memory limit (64m)" in done.stderr
    (run_id,) = run_ids(isolated_dirs)
    assert record_of(isolated_dirs, run_id)["status"] == "oom_killed"


@ISOLATIONS
def test_ctrl_c_stops_and_removes_the_container(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, isolation: str
) -> None:
    proc = spawn_cli(ws, base_image, "--timeout", "60", CASE, "sleeper.py")
    clean.append(proc.pid)
    wait_for_output(proc, b"started")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    (run_id,) = run_ids(isolated_dirs)
    assert record_of(isolated_dirs, run_id)["status"] == "interrupted"


def test_sigterm_is_handled_like_ctrl_c(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path
) -> None:
    proc = spawn_cli(ws, base_image, "--timeout", "60", CASE, "sleeper.py")
    clean.append(proc.pid)
    wait_for_output(proc, b"started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err


@ISOLATIONS
def test_the_sandbox(
    ws: Path, base_image: str, clean: list[int], isolation: str, engine_name: str
) -> None:
    # Something listening on the host's loopback that the script must NOT reach.
    listener = subprocess.Popen(
        [sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert listener.stdout is not None
        port = listener.stdout.readline().decode().strip()
        done = run_cli(ws, base_image, CASE, "sandbox.py", port)
    finally:
        listener.kill()
        listener.wait()
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    expected_uid = run_uid(engine_name)  # rootless: the user's own uid (keep-id)
    assert facts["uid"] == expected_uid and facts["uid"] != 0
    assert facts["home"] == "/tmp"
    assert facts["tools"] == "Read-only file system"
    assert facts["root_fs"] in ("Read-only file system", "Permission denied")  # gVisor: the latter
    assert facts["root_mount"] == ["ro"]
    assert facts["tmp"] == "writable" and facts["data"] == "writable"
    assert facts["interfaces"] == ["lo"]  # network none: loopback only
    assert facts["netns"] != os.readlink("/proc/self/ns/net")  # a namespace of its own
    assert facts["loopback"] == "127.0.0.1"  # which works, `localhost` included
    assert facts["hosts_file"] in ("Read-only file system", "Permission denied")
    assert facts["host_port"] == "ConnectionRefusedError"  # the host's port is not there
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert facts["mounts"] == ["/data", "/tools"]
    written = ws / "projects" / CASE / "written-by-script.txt"
    # the user's file: not root's, nor (rootless) a subordinate uid's
    assert written.stat().st_uid == expected_uid


LISTENER = """
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
while True:
    server.accept()[0].close()
"""


@ISOLATIONS
def test_the_process_limit_holds(  # noqa: PLR0917 - fixtures, by name
    ws: Path,
    base_image: str,
    clean: list[int],
    isolated_dirs: Path,
    isolation: str,
    engine_name: str,
) -> None:
    args = ("--timeout", "60", CASE, "forks.py", "700")
    if refused_for_want_of_limits(ws, base_image, isolated_dirs, engine_name, *args):
        return
    done = run_cli(ws, base_image, *args)
    (run_id,) = run_ids(isolated_dirs)
    record = record_of(isolated_dirs, run_id)
    if isolation == "runc":
        # fork() itself is refused at the limit; the script carries on.
        assert done.returncode == 0, done.stderr
        made, refused = done.stdout.decode().split(maxsplit=1)
        assert int(made) < 512 and refused.strip() == "Resource temporarily unavailable"
    else:
        # gVisor's own host tasks count against the limit (a stub process per process of the
        # script): the sandbox is stopped before the script gets far, and the host with it
        # is untouched.
        assert done.returncode not in (0, 124), done.stderr
        assert b"700" not in done.stdout
        assert record["status"] != "succeeded" and not record["timed_out"]


@ISOLATIONS
def test_binary_and_20mb_output_pass_through_byte_exact(  # noqa: PLR0917 - fixtures, by name
    ws: Path,
    base_image: str,
    clean: list[int],
    isolated_dirs: Path,
    isolation: str,
    engine_name: str,
) -> None:
    done = run_cli(ws, base_image, CASE, "flood.py")
    assert done.returncode == 0, done.stderr[-500:]
    expected = bytes(range(256)) * 4096 * 20 + b"\xff\xfe not utf-8 \xc3\x28 end"
    assert len(done.stdout) == len(expected)
    assert hashlib.sha256(done.stdout).digest() == hashlib.sha256(expected).digest()
    stderr = done.stderr
    if limits_unenforced(engine_name):  # roscoe's note after the run, saying so
        stderr, note = stderr.split(b"roscoe: ")
        assert note.startswith(b"the run had no memory/process limit"), note
    assert stderr == b"err \xff\n"
    (run_id,) = run_ids(isolated_dirs)
    saved = (isolated_dirs / "runs" / run_id / "output.log").read_bytes()
    assert len(saved) == len(expected) + len(b"err \xff\n")
    record = record_of(isolated_dirs, run_id)
    assert (record["output_bytes"], record["saved_output_truncated"]) == (len(saved), False)


def test_run_record_and_runs_commands(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, engine_name: str
) -> None:
    done = run_cli(ws, base_image, "--json", CASE, "exit7.py", "x y")
    assert done.returncode == 7
    printed = json.loads(done.stdout)  # stdout holds only the record...
    assert done.stderr.startswith(b"bye\n")  # ...the script's output went to stderr
    run_id = printed["id"]
    assert set(printed) == {
        "id", "case", "script", "args", "image", "image_digest", "engine", "isolation", "status",
        "exit_code", "started_at", "finished_at", "duration_s", "timed_out", "output_file",
        "output_bytes", "saved_output_truncated", "message", "requested_by", "script_sha256",
        "env_names", "changes", "peak_memory_bytes", "cpu_user_s", "cpu_system_s", "preview",
        "preview_state", "applied_at", "applied_by", "discarded_at", "discarded_by",
    }  # fmt: skip
    assert printed == record_of(isolated_dirs, run_id)
    assert (printed["status"], printed["exit_code"], printed["args"]) == ("failed", 7, ["x y"])
    assert str(printed["image_digest"]).startswith("sha256:")
    assert printed["engine"] == engine_kind(engine_name) and printed["output_file"] == "output.log"
    assert (isolated_dirs / "runs" / run_id / "output.log").read_bytes() == b"bye\n"
    assert not any(p.name in ("run.json", "output.log") for p in (ws / "projects").rglob("*"))

    listed = json.loads(roscoe("runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run_id]
    table = roscoe("runs", "list").stdout.decode()
    assert run_id in table and "failed" in table
    shown = roscoe("runs", "show", run_id, "--json")
    assert json.loads(shown.stdout) == printed
    assert roscoe("runs", "show", run_id, "--output").stdout == b"bye\n"
    assert b"failed" in roscoe("runs", "show", run_id).stdout
    missing = roscoe("runs", "show", "../../etc")
    assert missing.returncode == 2 and b"not a run id" in missing.stderr
    # A record naming some other file as its output: the run's own output.log is read.
    where = isolated_dirs / "runs" / run_id / "run.json"
    where.write_text(json.dumps({**printed, "output_file": str(ws / "Tools" / "exit7.py")}))
    assert roscoe("runs", "show", run_id, "--output").stdout == b"bye\n"


def test_run_state_is_private_to_its_owner(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path
) -> None:
    assert not isolated_dirs.exists()  # a fresh data dir, made by this run
    done = run_cli(ws, base_image, CASE, "exit7.py")
    assert done.returncode == 7, done.stderr
    (run_id,) = run_ids(isolated_dirs)
    run = isolated_dirs / "runs" / run_id
    modes = {
        str(path.relative_to(isolated_dirs)): oct(path.stat().st_mode & 0o777)
        for path in (
            isolated_dirs,
            isolated_dirs / "runs",
            run,
            run / "output.log",
            run / "run.json",
        )
    }
    assert modes == {
        ".": "0o700",
        "runs": "0o700",
        f"runs/{run_id}": "0o700",
        f"runs/{run_id}/output.log": "0o600",
        f"runs/{run_id}/run.json": "0o600",
    }


@pytest.mark.parametrize(
    "bad",
    [
        (["--cpus", "0.0001"], "--cpus must be at least 0.01"),
        (["--image", "Bad Ref!!"], "not an image reference"),
        (["--image", ""], "not an image reference"),
        (["-e", "A B=1"], "not a variable name"),
    ],
)
def test_bad_option_values_exit_2_before_any_container(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, bad: tuple[list[str], str]
) -> None:
    options, says = bad
    done = run_cli(ws, base_image, *options, CASE, "echo_args.py")
    assert done.returncode == 2, done.stderr
    assert says in done.stderr.decode() and b"Traceback" not in done.stderr
    assert run_ids(isolated_dirs) == []


def test_ten_concurrent_runs_all_succeed(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path
) -> None:
    procs = [spawn_cli(ws, base_image, "--json", CASE, "echo_args.py", str(n)) for n in range(10)]
    clean.extend(p.pid for p in procs)
    records = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        records.append(json.loads(out))
    assert len({r["id"] for r in records}) == 10
    assert sorted(r["args"][0] for r in records) == [str(n) for n in range(10)]
    assert all(r["status"] == "succeeded" for r in records)
    assert len(run_ids(isolated_dirs)) == 10


def test_an_image_that_cannot_be_had_exits_4_and_leaves_nothing(
    ws: Path, base_image: str, clean: list[int], isolated_dirs: Path, unique_name: str
) -> None:
    absent = f"127.0.0.1:5000/{unique_name}/absent:nope"
    done = run_cli(ws, absent, CASE, "echo_args.py")
    assert done.returncode == 4, done.stderr
    assert absent in done.stderr.decode()
    assert run_ids(isolated_dirs) == []
