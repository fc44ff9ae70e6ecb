"""The runner image (docker/Dockerfile) on both engines: labels, user, libraries, coreutils."""

from __future__ import annotations

import subprocess

import pytest

from roscoe import __version__
from roscoe.engine import Engine
from roscoe.images.version import OCI_VERSION_LABEL

pytestmark = [pytest.mark.engine, pytest.mark.image]

LIBRARIES = "pandas, numpy, openpyxl, docx, reportlab, bs4, requests, google.cloud.storage, roscoe"


def run_in_image(
    engine_host: str, image: str, name: str, *command: str
) -> subprocess.CompletedProcess[str]:
    """A locked-down one-shot container (no network, read-only, uid 1000), always removed."""
    try:
        return subprocess.run(
            [
                "docker",
                "-H",
                engine_host,
                "run",
                "--rm",
                "--pull",
                "never",
                "--name",
                name,
                "--network",
                "none",
                "--read-only",
                "--user",
                "1000:1000",
                image,
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(
            ["docker", "-H", engine_host, "rm", "-f", name], capture_output=True, check=False
        )


def test_labels_carry_this_roscoe_version(engine: Engine, runner_image: str) -> None:
    inspect = engine.image_inspect(runner_image)
    assert inspect is not None
    labels = inspect["Config"]["Labels"]
    assert labels[OCI_VERSION_LABEL] == __version__
    for key in ("source", "revision", "created", "title", "description", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_default_user_is_taskrunner_uid_1000(
    engine: Engine, engine_host: str, runner_image: str, unique_name: str
) -> None:
    inspect = engine.image_inspect(runner_image)
    assert inspect is not None
    assert inspect["Config"]["User"] == "taskrunner"
    assert inspect["Config"]["Cmd"] == ["python", "-m", "roscoe.service"]
    # Without --user: the image's own default user.
    result = subprocess.run(
        [
            "docker",
            "-H",
            engine_host,
            "run",
            "--rm",
            "--pull",
            "never",
            "--name",
            unique_name,
            "--network",
            "none",
            runner_image,
            "sh",
            "-c",
            'echo "$(id -u):$(id -g):$(id -un):$HOME"',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    subprocess.run(
        ["docker", "-H", engine_host, "rm", "-f", unique_name], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000:1000:taskrunner:/home/taskrunner"


def test_task_libraries_import_offline_read_only_as_uid_1000(
    engine_host: str, runner_image: str, unique_name: str
) -> None:
    result = run_in_image(
        engine_host,
        runner_image,
        unique_name,
        "python",
        "-c",
        f"import {LIBRARIES}; print(roscoe.__version__, pandas.__version__)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == __version__


def test_timeout_exists_and_the_venv_carries_no_pip(
    engine_host: str, runner_image: str, unique_name: str
) -> None:
    result = run_in_image(
        engine_host,
        runner_image,
        unique_name,
        "sh",
        "-c",
        "timeout 5 true && command -v timeout && python -c 'import sys; print(sys.prefix)'"
        " && ! python -c 'import pip' 2>/dev/null",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0].endswith("/timeout")
    assert lines[1] == "/opt/roscoe/venv"
