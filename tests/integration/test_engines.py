"""Engine detection and the foundation commands against real Docker and Podman."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import roscoe


def test_version_fails_with_exit_3_naming_a_dead_docker_host() -> None:
    result = roscoe("version", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 3
    errors = result.stderr.decode().strip().splitlines()
    assert errors[0].startswith("error:")
    assert "/nonexistent.sock" in errors[0]
    assert "Traceback" not in result.stderr.decode()


def test_tcp_docker_host_unreachable_is_exit_3_one_line() -> None:
    result = roscoe("doctor", "--json", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["engine"]["available"] is False
    assert "127.0.0.1:1" in report["engine"]["error"]
    version = roscoe("version", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert version.returncode == 3
    assert "Traceback" not in version.stderr.decode()


def test_doctor_json_reports_the_engine_by_what_it_says(
    engine_name: str, engine_env: dict[str, str]
) -> None:
    # Through DOCKER_HOST only: detection must not guess from --runtime or the socket path.
    result = roscoe(
        "doctor", "--json", env={"DOCKER_HOST": engine_env["DOCKER_HOST"], "ROSCOE_RUNTIME": ""}
    )
    report = json.loads(result.stdout)
    assert report["engine"]["kind"] == engine_name
    assert report["engine"]["source"] == "DOCKER_HOST"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["engine"]["status"] == "ok"
    assert checks["data dir"]["status"] == "ok"
    assert result.returncode == (0 if report["ok"] else 1)


def test_version_json_names_engine_endpoint_and_pinned_image(
    engine_name: str, engine_env: dict[str, str]
) -> None:
    from roscoe import __version__

    result = roscoe("version", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cli_version"] == __version__
    assert report["runner_image"].endswith(f":v{__version__}")
    assert report["engine"]["kind"] == engine_name
    assert report["engine"]["endpoint"] == engine_env["DOCKER_HOST"]


def test_runtime_mismatch_is_refused(engine_name: str, engine_env: dict[str, str]) -> None:
    other = "podman" if engine_name == "docker" else "docker"
    result = roscoe("--runtime", other, "version")
    assert result.returncode == 3
    assert f"is a {engine_name} engine" in result.stderr.decode()


def test_debug_shows_engine_calls(engine_env: dict[str, str]) -> None:
    result = roscoe("--debug", "version")
    assert result.returncode == 0
    assert "engine call: GET" in result.stderr.decode()


def test_dash_dash_version_imports_neither_the_docker_nor_the_mcp_sdk() -> None:
    code = (
        "import sys\n"
        "from roscoe.cli.app import main\n"  # not run(): it leaves the process when done
        "sys.argv = ['roscoe', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "heavy = sorted(m for m in sys.modules if m in ('docker', 'mcp', 'mcp_types')\n"
        "               or m.startswith(('docker.', 'requests', 'mcp.', 'mcp_types.')))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert out.startswith("roscoe ")
    assert "HEAVY []" in out


def test_a_run_never_loads_the_docker_or_the_mcp_sdk(
    engine_env: dict[str, str], base_image: str, tmp_path: Path
) -> None:
    # The docker SDK costs ~150 ms to import, more than a run may add on top of the engine;
    # the MCP SDK (roscoe[mcp]) more still.
    (tmp_path / "projects" / "c").mkdir(parents=True)
    (tmp_path / "Tools").mkdir()
    (tmp_path / "Tools" / "t.py").write_text("print('ran')\n")
    for folder in (tmp_path / "projects" / "c", tmp_path / "Tools"):
        folder.chmod(0o777)
    code = (
        "import sys\n"
        "from roscoe.cli.app import main\n"  # not run(): it leaves the process when done
        f"sys.argv = ['roscoe', 'run', '--workspace', {str(tmp_path)!r}, '--image', "
        f"{base_image!r}, 'c', 't.py']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "print('SDK', any(m in sys.modules for m in ('docker', 'requests', 'mcp', 'mcp_types')))\n"
        "print('ASGI', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'uvicorn', 'pydantic', 'anyio', 'h11')))\n"
    )
    env = {**os.environ, **engine_env}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-3:] == ["ran", "SDK False", "ASGI []"]
