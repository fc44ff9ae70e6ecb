"""execute() against a fake Engine: validation first, status mapping, cleanup in every case."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from roscoe.config import paths
from roscoe.engine.fake import FakeEngine, Program
from roscoe.errors import EngineError, EngineUnreachable, ImageError, UsageError
from roscoe.labels import LABEL_DEADLINE, LABEL_KIND, LABEL_RUN_ID, LABEL_STARTED
from roscoe.runs import host as run_host
from roscoe.runs import output as run_output
from roscoe.runs import plan as run_plan
from roscoe.runs import records
from roscoe.runs import supervise as supervise_module
from roscoe.runs.execute import execute
from roscoe.runs.outcome import Ending, classify
from roscoe.runs.report import LaunchReport
from roscoe.runs.spec import RunSpec
from roscoe.runs.workspace import Workspace

IMAGE = "img"


def fake_engine(
    output: list[tuple[str, bytes]] | None = None,
    exit_code: int = 0,
    *,
    oom: bool = False,
    hang: bool = False,
    slow_exit_reports: int = 0,
) -> FakeEngine:
    """The fake engine with the image present, whose containers do as told."""
    engine = FakeEngine()
    engine.add_image(IMAGE)
    engine.default_program = Program(
        output=output or [],
        exit_code=exit_code,
        oom_killed=oom,
        until_stopped=hang,
        slow_exit_reports=slow_exit_reports,
    )
    return engine


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "projects" / "case-a").mkdir(parents=True)
    (root / "Tools").mkdir()
    (root / "Tools" / "tool.py").write_text("print('hi')\n")
    (root / "Tools" / "tool.sh").write_text("echo hi\n")
    return Workspace(root.resolve())


def _spec(**extra: Any) -> RunSpec:
    fields: dict[str, Any] = {"case": "case-a", "script": "tool.py", "args": ["a b", "--flag"]}
    return RunSpec(image=IMAGE, **{**fields, **extra})


def test_happy_path_streams_saves_and_removes(ws: Workspace, isolated_dirs: Path) -> None:
    chunks = [("stdout", b"one\n"), ("stderr", b"\xff\x00err"), ("stdout", b"two\n")]
    engine = fake_engine(chunks)
    seen: list[tuple[str, bytes]] = []
    record = execute(engine, ws, _spec(), on_output=lambda n, d: seen.append((n, d)))
    assert seen == chunks
    assert (record.status, record.exit_code, record.timed_out) == ("succeeded", 0, False)
    assert record.output_bytes == sum(len(d) for _, d in chunks)
    assert record.image_digest == engine.images["img:latest"]["Id"] and record.engine == "docker"
    saved = paths.run_dir(record.id) / "output.log"
    assert saved.read_bytes() == b"one\n\xff\x00errtwo\n"
    assert engine.methods() == [
        "podman_rootless",
        "run_create",
        "run_attach",
        "run_start",
        "run_state",
        "run_remove",
    ]
    assert len(engine.attached) == 1 and engine.attached[0].closed.is_set()
    assert engine.containers_by_id == {}
    on_disk = (paths.run_dir(record.id) / "run.json").read_text()
    assert '"status": "succeeded"' in on_disk


def test_the_container_is_shaped_and_labelled(ws: Workspace, isolated_dirs: Path) -> None:
    engine = fake_engine()
    record = execute(engine, ws, _spec(timeout=7, env={"A": "1"}))
    made = engine.run_requests[-1]
    assert made["name"] == f"roscoe-run-{record.id}"
    assert made["entrypoint"][:2] == ["sh", "-c"]  # the launcher, or `timeout` without python3
    assert made["command"][0] == run_plan.launcher_source()
    assert made["command"][1:] == [
        "/run/roscoe",
        "10",
        str(2 << 30),
        "0",
        "--",
        "python3",
        "/tools/tool.py",
        "a b",
        "--flag",
    ]
    assert made["workdir"] == "/data" and made["network"] == "none"
    assert made["user"] == "1000:1000"  # the tests run as root: never root inside
    assert made["binds"] == [
        f"{ws.root}/projects/case-a:/data:rw",
        f"{ws.root}/Tools:/tools:ro",
        f"{paths.run_dir(record.id)}/launcher:/run/roscoe:rw",
        # network none: Docker writes no /etc/hosts then (engine/runs.py), so roscoe does
        f"{paths.run_dir(record.id)}/launcher/hosts:/etc/hosts:ro",
    ]
    assert not (paths.run_dir(record.id) / "launcher").exists()  # gone after the run
    assert made["memory_bytes"] == 2 << 30
    assert made["env"]["A"] == "1" and made["env"]["HOME"] == "/tmp"
    labels = made["labels"]
    assert labels[LABEL_KIND] == "run" and labels[LABEL_RUN_ID] == record.id
    assert int(labels[LABEL_DEADLINE]) > int(labels[LABEL_STARTED]) + 7


def test_the_hosts_file_is_written_for_the_container_and_only_without_a_network(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = fake_engine()
    seen: dict[str, str] = {}

    def look(name: str, data: bytes) -> None:  # while the container runs
        hosts = Path(engine.run_requests[-1]["binds"][-1].split(":")[0])
        seen["hosts"] = hosts.read_text()
        seen["mode"] = oct(hosts.stat().st_mode & 0o777)

    engine.default_program = Program(output=[("stdout", b"x")])
    umask = os.umask(0o077)  # a strict umask must not keep the container's user from it
    try:
        execute(engine, ws, _spec(), on_output=look)
    finally:
        os.umask(umask)
    assert seen["hosts"] == run_plan.LOCAL_HOSTS
    assert seen["mode"] == "0o644"
    assert seen["hosts"].startswith("127.0.0.1\tlocalhost\n")
    execute(engine, ws, _spec(network="host"))  # the host's own /etc/hosts, from the engine
    assert not any(":/etc/hosts" in bind for bind in engine.run_requests[-1]["binds"])


def test_shell_scripts_run_with_sh(ws: Workspace, isolated_dirs: Path) -> None:
    engine = fake_engine()
    execute(engine, ws, _spec(script="tool.sh"))
    assert engine.run_requests[-1]["command"][6:8] == ["sh", "/tools/tool.sh"]


@pytest.mark.parametrize(
    "change",
    [
        {"case": "../x"},
        {"case": "missing"},
        {"script": "/bin/sh"},
        {"script": "nope.py"},
        {"timeout": 0},
        {"memory": "lots"},
        {"network": "bridge"},
        {"env": {"A=B": "c"}},
        {"env": {"A B": "c"}},
        {"env": {"1A": "c"}},
        {"cpus": -1.0},
        {"cpus": 0.0001},
        {"cpus": float("nan")},
        {"case": "case-a/sub"},
        {"case": "-x"},
    ],
)
def test_bad_input_is_refused_before_any_container(
    ws: Workspace, isolated_dirs: Path, change: dict[str, Any]
) -> None:
    engine = fake_engine()
    spec = _spec()
    for key, value in change.items():
        setattr(spec, key, value)
    with pytest.raises(UsageError):
        execute(engine, ws, spec)
    assert engine.calls == []
    assert not paths.runs_dir().exists()


def test_a_malformed_run_id_is_refused(ws: Workspace, isolated_dirs: Path) -> None:
    engine = fake_engine()
    with pytest.raises(UsageError):
        execute(engine, ws, _spec(), run_id="../../etc")
    assert engine.calls == []


def test_an_absent_image_leaves_nothing(ws: Workspace, isolated_dirs: Path) -> None:
    engine = FakeEngine()  # without the image
    with pytest.raises(ImageError):
        execute(engine, ws, _spec())
    assert list(paths.runs_dir().iterdir()) == []  # the folder made for the run is gone
    assert engine.containers_by_id == {}


def test_timeout_kills_removes_and_says_so(
    ws: Workspace, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fake_engine([("stdout", b"started\n")], hang=True)
    record = execute(engine, ws, _spec(timeout=0.2))
    assert (record.status, record.exit_code, record.timed_out) == ("timed_out", 124, True)
    assert record.message == "timed out after 0.2 s"
    assert "run_kill" in engine.methods() and engine.methods()[-1] == "run_remove"


def test_cancel_from_another_thread_interrupts(ws: Workspace, isolated_dirs: Path) -> None:
    engine = fake_engine(hang=True)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    record = execute(engine, ws, _spec(timeout=30), cancel=cancel)
    assert time.monotonic() - started < 10
    assert (record.status, record.exit_code) == ("interrupted", 130)
    assert engine.methods()[-2:] == ["run_state", "run_remove"]
    assert "run_kill" in engine.methods()


def test_exit_137_is_a_probable_oom_even_when_the_engine_says_no(
    ws: Workspace, isolated_dirs: Path
) -> None:
    record = execute(fake_engine(exit_code=137, oom=False), ws, _spec(memory="64m"))
    assert (record.status, record.exit_code) == ("oom_killed", 137)
    assert "memory limit (64m)" in str(record.message)


def test_script_exit_codes_pass_through(ws: Workspace, isolated_dirs: Path) -> None:
    record = execute(fake_engine(exit_code=3), ws, _spec())
    assert (record.status, record.exit_code, record.message) == ("failed", 3, None)


def test_engine_failure_mid_run_is_an_error_record(ws: Workspace, isolated_dirs: Path) -> None:
    failure = EngineError("could not start the run container: boom", exit_code=125)
    engine = fake_engine()
    engine.fail("run_start", failure)
    record = execute(engine, ws, _spec())
    assert (record.status, record.exit_code) == ("error", 125)
    assert "boom" in str(record.message)
    assert engine.methods()[-1] == "run_remove"


def test_a_failing_output_callback_does_not_lose_output(ws: Workspace, isolated_dirs: Path) -> None:
    def broken(name: str, data: bytes) -> None:
        raise BrokenPipeError

    engine = fake_engine([("stdout", b"a"), ("stdout", b"b")])
    record = execute(engine, ws, _spec(), on_output=broken)
    assert record.status == "succeeded"
    assert (paths.run_dir(record.id) / "output.log").read_bytes() == b"ab"


def test_concurrent_executes_get_distinct_records(ws: Workspace, isolated_dirs: Path) -> None:
    results: list[str] = []

    def one() -> None:
        results.append(execute(fake_engine([("stdout", b"x")]), ws, _spec()).id)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 16


@pytest.mark.parametrize(
    ("code", "timed_out", "interrupted", "oom", "expected"),
    [
        (0, False, False, False, ("succeeded", 0)),
        (1, False, False, False, ("failed", 1)),
        (124, False, False, False, ("failed", 124)),  # the script's own 124 is not a timeout
        (137, False, False, False, ("oom_killed", 137)),
        (None, False, False, True, ("oom_killed", 137)),
        # Docker's OOMKilled is the container's: a child killed there, the script's code wins.
        (1, False, False, True, ("failed", 1)),
        (0, False, False, True, ("succeeded", 0)),
        (137, True, False, False, ("timed_out", 124)),
        (137, False, True, False, ("interrupted", 130)),
        (137, True, True, True, ("interrupted", 130)),
        (None, False, False, False, ("error", 125)),
    ],
)
def test_status_mapping(
    code: int | None,
    timed_out: bool,
    interrupted: bool,
    oom: bool,
    expected: tuple[str, int],
) -> None:
    ending = Ending(code, timed_out=timed_out, interrupted=interrupted, oom_killed=oom)
    status, exit_code, _ = classify(ending, timeout=5, memory="1g")
    assert (status, exit_code) == expected


def _report(**fields: Any) -> LaunchReport:
    base: dict[str, Any] = {
        "exit": None,
        "signal": None,
        "user_s": 0.1,
        "system_s": 0.0,
        "max_rss_bytes": 1 << 20,
        "oom_kills": 0,
        "stopped": None,
    }
    return LaunchReport(**{**base, **fields})


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        # The launcher saw the script die of SIGKILL and the cgroup count a kill: the limit.
        (Ending(137, report=_report(signal=9, oom_kills=1)), ("oom_killed", 137, "")),
        # A SIGKILL of its own: not the memory limit, though the exit code is 137 all the same.
        (Ending(137, report=_report(signal=9)), ("failed", 137, "not at the memory limit")),
        (Ending(143, report=_report(signal=15)), ("failed", 143, "SIGTERM (15)")),
        # The script's own exit 137 is its code, not a kill.
        (Ending(137, report=_report(exit=137)), ("failed", 137, "")),
        # A child killed at the limit, the script went on: its code, with a warning (Podman too).
        (Ending(0, report=_report(exit=0, oom_kills=1)), ("succeeded", 0, "warning:")),
        # No cgroup in view (gVisor): the engine's word decides, or nothing says it was memory.
        (
            Ending(137, oom_killed=True, report=_report(signal=9, oom_kills=None)),
            ("oom_killed", 137, ""),
        ),
        # roscoe was killed and the launcher's backstop stopped the script: a timeout.
        (Ending(137, report=_report(signal=9, stopped="backstop")), ("timed_out", 124, "")),
        # Under gVisor the launcher started and never reported: the sandbox went with it.
        (Ending(137, launched=True, isolation="gvisor"), ("oom_killed", 137, "sandbox")),
        (Ending(2, launched=True, isolation="gvisor"), ("error", 125, "ran out of processes")),
        # No launcher (no python3): only the engine's word, as before.
        (Ending(137), ("oom_killed", 137, "probably out of memory")),
    ],
)
def test_status_mapping_with_the_launchers_report(
    ending: Ending, expected: tuple[str, int, str]
) -> None:
    status, code, message = classify(ending, timeout=5, memory="64m")
    assert (status, code) == expected[:2]
    assert expected[2] in (message or "")


def test_a_child_killed_at_the_memory_limit_is_a_warning_the_code_stands() -> None:
    status, code, message = classify(Ending(0, oom_killed=True), timeout=5, memory="256m")
    assert (status, code) == ("succeeded", 0)
    assert message == (
        "warning: a process of the run was killed at the memory limit (256m); "
        "the script itself exited with 0"
    )


def test_root_never_runs_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_host.os, "getuid", lambda: 0)
    assert run_plan.default_user() == "1000:1000"
    monkeypatch.setattr(run_host.os, "getuid", lambda: 1234)
    monkeypatch.setattr(run_host.os, "getgid", lambda: 99)
    assert run_plan.default_user() == "1234:99"


def test_a_container_slow_to_report_its_exit_is_looked_at_again(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = fake_engine(slow_exit_reports=2)
    assert execute(engine, ws, _spec()).status == "succeeded"
    assert engine.methods().count("run_state") == 3 and "run_wait" not in engine.methods()


def test_a_script_that_closed_its_output_is_waited_for(
    ws: Workspace, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise_module, "SETTLE_S", 0.1)
    engine = fake_engine(exit_code=4, slow_exit_reports=10_000)
    record = execute(engine, ws, _spec())
    assert (record.status, record.exit_code) == ("failed", 4)
    assert "run_wait" in engine.methods()


def test_a_cancel_before_the_start_never_starts_the_container(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = fake_engine([("stdout", b"never\n")])
    cancel = threading.Event()
    cancel.set()  # e.g. Ctrl-C while the container was being created
    record = execute(engine, ws, _spec(), cancel=cancel)
    assert "run_start" not in engine.methods()
    assert engine.methods() == ["podman_rootless", "run_create", "run_attach", "run_remove"]
    assert len(engine.attached) == 1 and engine.attached[0].closed.is_set()
    assert (record.status, record.exit_code) == ("interrupted", 130)
    on_disk = (paths.run_dir(record.id) / "run.json").read_text()
    assert '"status": "interrupted"' in on_disk


def test_saved_output_and_record_are_private(ws: Workspace, isolated_dirs: Path) -> None:
    record = execute(fake_engine([("stdout", b"x")]), ws, _spec())
    where = paths.run_dir(record.id)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (where / "output.log", where / "run.json")}
    assert modes == {"output.log": 0o600, "run.json": 0o600}
    for folder in (isolated_dirs, paths.runs_dir(), where):
        assert folder.stat().st_mode & 0o777 == 0o700


def test_saved_output_stops_at_the_cap_but_streaming_goes_on(
    ws: Workspace, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_output, "MAX_SAVED_OUTPUT", 10)
    chunks = [("stdout", b"12345678"), ("stderr", b"abcdef"), ("stdout", b"tail")]
    seen: list[bytes] = []
    engine = fake_engine(chunks)
    record = execute(engine, ws, _spec(), on_output=lambda n, d: seen.append(d))
    assert b"".join(seen) == b"12345678abcdeftail"  # all of it reached the caller
    saved = (paths.run_dir(record.id) / "output.log").read_bytes()
    assert saved.startswith(b"12345678ab\n[roscoe: output truncated")
    assert b"tail" not in saved and saved.count(b"truncated") == 1
    assert (record.saved_output_truncated, record.output_bytes) == (True, 18)
    assert record.status == "succeeded"


def test_output_under_the_cap_is_saved_whole(ws: Workspace, isolated_dirs: Path) -> None:
    record = execute(fake_engine([("stdout", b"x" * 1000)]), ws, _spec())
    assert (paths.run_dir(record.id) / "output.log").read_bytes() == b"x" * 1000
    assert record.saved_output_truncated is False


def test_the_mount_is_the_validated_real_folder_whatever_is_swapped_after(
    ws: Workspace, isolated_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """projects/alias -> projects/case-a is allowed; swapping the alias for a symlink to the
    host's / after the check (what a racing writer would do) cannot change what is mounted."""
    alias = ws.root / "projects" / "alias"
    alias.symlink_to(ws.root / "projects" / "case-a")
    engine = fake_engine()
    real_create = engine.run_create

    def swap_then_create(**kwargs: Any) -> str:
        alias.unlink()
        alias.symlink_to("/")
        return real_create(**kwargs)

    monkeypatch.setattr(engine, "run_create", swap_then_create)
    execute(engine, ws, _spec(case="alias"))
    source = engine.run_requests[-1]["binds"][0].split(":")[0]
    assert source == str((ws.root / "projects" / "case-a").resolve())
    assert Path(source).resolve() == Path(source)  # no symlink left to follow at mount time


def test_a_multi_part_case_is_refused_so_a_script_cannot_swap_a_component(
    ws: Workspace, isolated_dirs: Path
) -> None:
    """caseA/sub goes through caseA, which a script in caseA can write: refused up front."""
    (ws.root / "projects" / "case-a" / "sub").mkdir()
    engine = fake_engine()
    with pytest.raises(UsageError, match="contains '/'"):
        execute(engine, ws, _spec(case="case-a/sub"))
    (ws.root / "projects" / "case-a" / "sub").rmdir()
    (ws.root / "projects" / "case-a" / "sub").symlink_to("/")
    with pytest.raises(UsageError):
        execute(engine, ws, _spec(case="case-a/sub"))
    assert engine.calls == []


def test_output_is_on_disk_before_it_is_shown(ws: Workspace, isolated_dirs: Path) -> None:
    """A SIGKILLed roscoe loses nothing it showed: each piece is written out, unbuffered,
    before it is handed on (a buffered writer lost it all, issue 10 item 5)."""
    chunks = [("stdout", b"first\n"), ("stderr", b"second\n")]
    saved = paths.run_dir("run-flush") / "output.log"
    on_disk: list[bytes] = []
    execute(
        fake_engine(chunks),
        ws,
        _spec(),
        on_output=lambda _name, _data: on_disk.append(saved.read_bytes()),
        run_id="run-flush",
    )
    assert on_disk == [b"first\n", b"first\nsecond\n"]


def test_a_cpu_limit_above_the_engines_cpus_is_exit_2_before_any_container(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = fake_engine()
    with pytest.raises(UsageError, match="a CPU limit of 3 is more than the 2 CPUs docker has"):
        execute(engine, ws, _spec(cpus=3.0))
    assert engine.methods() == ["podman_rootless", "cpu_count"]
    assert execute(engine, ws, _spec(cpus=2.0)).status == "succeeded"


def test_no_cpu_limit_costs_no_info_call(ws: Workspace, isolated_dirs: Path) -> None:
    engine = fake_engine()
    execute(engine, ws, _spec())
    assert "cpu_count" not in engine.methods()


@pytest.mark.parametrize(
    "failure",
    [
        EngineUnreachable("could not inspect the run container: [Errno 111] Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_an_engine_that_stops_answering_leaves_the_run_unknown_and_in_place(
    ws: Workspace, isolated_dirs: Path, failure: Exception
) -> None:
    # The script may run on (Podman's containers outlive its API service): roscoe claims no
    # result and removes nothing; gc finishes the record from the container's real end.
    engine = fake_engine([("stdout", b"so far\n")])
    engine.fail("run_state", failure)
    record = execute(engine, ws, _spec())
    assert (record.status, record.exit_code) == ("unknown", 125)
    assert str(record.message).startswith("lost track of the run: the engine stopped answering")
    assert "may still be running" in str(record.message)
    assert "run_remove" not in engine.methods()
    assert records.load_run(record.id).status == "unknown"
    assert records.load_run(record.id).changes["tracked"] is False
    assert (paths.run_dir(record.id) / "output.log").read_bytes() == b"so far\n"


def test_a_preview_the_engine_lost_keeps_nothing_to_apply(
    ws: Workspace, isolated_dirs: Path
) -> None:
    # Its changes are unknown (the script may go on writing into the copy): nothing of it may
    # be applied later, and the case itself was never touched.
    case = ws.root / "projects" / "case-a"
    (case / "kept.txt").write_text("as it was\n")
    engine = fake_engine([("stdout", b"so far\n")])
    engine.fail("run_state", ConnectionResetError(104, "Connection reset by peer"))
    record = execute(engine, ws, _spec(preview=True))
    assert (record.status, record.preview, record.preview_state) == ("unknown", True, "discarded")
    assert record.changes == {"tracked": False, "reason": record.changes["reason"]}
    assert not (paths.run_dir(record.id) / "preview").exists()
    assert sorted(p.name for p in case.iterdir()) == ["kept.txt"]
    assert records.load_run(record.id).preview_state == "discarded"


def test_an_engine_that_answers_with_a_failure_is_still_an_error(
    ws: Workspace, isolated_dirs: Path
) -> None:
    engine = fake_engine()
    engine.fail("run_state", EngineError("could not inspect: 500 boom", exit_code=125))
    record = execute(engine, ws, _spec())
    assert (record.status, record.exit_code) == ("error", 125)
    assert engine.methods()[-1] == "run_remove"
