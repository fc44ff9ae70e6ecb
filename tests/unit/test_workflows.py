"""The GitHub workflows pass actionlint and keep to the project's rules; the scripts pass
ShellCheck. Tools come from scripts/install-test-tools.sh: missing, they skip on a laptop and
fail under CI=true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.MULTILINE)


def tool(name: str) -> str:
    """The tool's path: next to this Python (the venv), else on PATH; else skip or fail."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        what = f"{name} is not installed (bash scripts/install-test-tools.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{what}; required under CI=true", pytrace=False)
        pytest.skip(what)
    return found


def text(name: str) -> str:
    return (ROOT / ".github" / "workflows" / name).read_text()


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml", "image.yml"}


def test_actionlint_passes() -> None:
    args = [tool("actionlint"), "-no-color"]
    shellcheck = shutil.which("shellcheck")
    args += [f"-shellcheck={shellcheck}"] if shellcheck else ["-shellcheck="]
    result = subprocess.run(
        [*args, *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The control: a real mistake must make actionlint fail, or the test above proves nothing."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.evnt_name }}\n"
    )
    result = subprocess.run(
        [tool("actionlint"), "-no-color", "-shellcheck=", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(workflow: Path) -> None:
    uses = USES.findall(workflow.read_text())
    assert uses, f"{workflow.name} uses no action"
    for ref, comment in uses:
        if ref.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned to a SHA"
        assert re.search(r"#\s*v\d+\.\d+\.\d+", comment), f"{ref} lacks a '# vX.Y.Z' comment"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_top_level_permissions_are_read_only(workflow: Path) -> None:
    assert re.search(r"^permissions:\n  contents: read\n(?!  )", workflow.read_text(), re.M)


def test_write_permissions_only_where_needed() -> None:
    everything = {p.name: p.read_text() for p in WORKFLOWS}
    id_token = [n for n, t in everything.items() for _ in re.finditer(r"id-token: write", t)]
    packages = [n for n, t in everything.items() for _ in re.finditer(r"packages: write", t)]
    assert id_token == ["release.yml"]
    assert packages == ["image.yml"]
    assert "environment:\n      name: pypi" in text("release.yml")


def test_release_checks_the_tag_against_the_package_version() -> None:
    release = text("release.yml")
    assert 'tags: ["v[0-9]+.[0-9]+.[0-9]+"]' in release
    assert "src/roscoe/__init__.py" in release
    assert "pypa/gh-action-pypi-publish@" in release
    assert "update-resources.py --verify" in release


def test_image_workflow_tags_and_platforms() -> None:
    image = text("image.yml")
    assert "platforms: linux/amd64,linux/arm64" in image
    assert "ghcr.io/roscoe-cli/roscoe-runner" in image
    for pattern in ("v{{version}}", "v{{major}}.{{minor}}", "v{{major}}", "value=latest"):
        assert pattern in image
    assert "prefix=dev-" in image
    assert "push: false" in image  # pull requests build only


def test_ci_runs_every_supported_python_through_the_ci_entry_point() -> None:
    ci = text("ci.yml")
    assert 'python: ["3.10", "3.11", "3.12", "3.13"]' in ci
    assert "bash .ci/run" in ci
    assert "pull_request" in ci


def test_the_image_pushed_is_the_one_the_cli_pins() -> None:
    from roscoe.images.version import IMAGE_REPOSITORY

    assert f"IMAGE: {IMAGE_REPOSITORY}" in text("image.yml")


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci" / "run"]
    result = subprocess.run(
        # SC2054: "--engines docker,podman" inside an array is an argument, not a typo.
        [tool("shellcheck"), "--severity=warning", "--exclude=SC2054", *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
