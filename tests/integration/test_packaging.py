"""The wheel, installed on its own (a fresh venv, and pipx), runs: its metadata names every
dependency the code imports, and nothing leans on this checkout.

One wheel is built per session and installed once per installer, with pip's own index
configuration (CI reaches the package index the same way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roscoe import __version__

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/roscoe-packaging-test.sock"


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env={**clean_env(), **(env or {})},
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would let the checkout leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("roscoe-*.whl")
    assert built.name.startswith(f"roscoe-{__version__}-")
    return built


@pytest.fixture(scope="session")
def venv_roscoe(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`roscoe` installed from the wheel alone into a fresh venv."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    return venv / "bin" / "roscoe"


@pytest.fixture(scope="session")
def pipx_roscoe(wheel: Path, venv_roscoe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`roscoe` installed by pipx (itself installed into the test venv) from the wheel."""
    home = tmp_path_factory.mktemp("pipx")
    bin_dir = home / "bin"
    venv_bin = venv_roscoe.parent
    run(venv_bin / "python", "-m", "pip", "install", "--quiet", "pipx")
    env = {"PIPX_HOME": str(home / "home"), "PIPX_BIN_DIR": str(bin_dir)}
    run(venv_bin / "pipx", "install", wheel, env=env)
    return bin_dir / "roscoe"


@pytest.fixture
def user_dirs() -> dict[str, str]:
    """The autouse fixture's private data and config dirs, passed on to the installed CLI."""
    return {
        "ROSCOE_DATA_DIR": os.environ["ROSCOE_DATA_DIR"],
        "ROSCOE_CONFIG_DIR": os.environ["ROSCOE_CONFIG_DIR"],
    }


@pytest.fixture(params=["venv", "pipx"])
def installed(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"{request.param}_roscoe")  # type: ignore[no-any-return]


def test_the_wheel_ships_its_type_information(wheel: Path) -> None:
    """roscoe.client is public API: its types reach the users' type checkers (PEP 561)."""
    import zipfile

    assert "roscoe/py.typed" in zipfile.ZipFile(wheel).namelist()


def test_the_install_is_not_the_checkout(venv_roscoe: Path) -> None:
    python = venv_roscoe.parent / "python"
    where = run(python, "-c", "import roscoe; print(roscoe.__file__)", env={})
    assert str(ROOT) not in where
    assert "site-packages" in where


def test_version(installed: Path) -> None:
    assert run(installed, "--version").strip() == f"roscoe {__version__}"


def test_doctor_without_an_engine_prints_the_checklist(
    installed: Path, user_dirs: dict[str, str]
) -> None:
    result = subprocess.run(
        [str(installed), "doctor"],
        capture_output=True,
        text=True,
        env={**clean_env(), **user_dirs, "DOCKER_HOST": NO_ENGINE},
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "engine" in result.stdout
    assert "data dir" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_reports_the_real_engine(
    venv_roscoe: Path, engine_name: str, engine_host: str, user_dirs: dict[str, str]
) -> None:
    out = subprocess.run(
        [str(venv_roscoe), "--runtime", engine_name, "doctor", "--json"],
        capture_output=True,
        text=True,
        env={**clean_env(), **user_dirs, "DOCKER_HOST": engine_host},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in out.stderr
    report = json.loads(out.stdout)
    assert report["engine"]["available"] is True, out.stdout
    assert report["engine"]["kind"] == engine_name
    engine_check = next(c for c in report["checks"] if c["name"] == "engine")
    assert engine_check["status"] == "ok"
    assert engine_host in engine_check["detail"]


def test_config_set_works_from_the_install(installed: Path, user_dirs: dict[str, str]) -> None:
    """tomlkit must be a declared dependency: `config set` imports it."""
    run(installed, "config", "set", "run.memory", "3g", env=user_dirs)
    assert run(installed, "config", "get", "run.memory", env=user_dirs) == "3g\n"
    assert 'memory = "3g"' in Path(user_dirs["ROSCOE_CONFIG_DIR"], "config.toml").read_text()
