"""One version number: __init__.py. The image tag, the formula and the CHANGELOG follow it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from roscoe import __version__
from roscoe.images.version import pinned_image

ROOT = Path(__file__).resolve().parents[2]
FORMULA = ROOT / "packaging" / "homebrew" / "roscoe.rb"


def skip_or_fail_tool(what: str) -> None:
    """A missing test tool skips on a laptop and fails in CI (scripts/install-test-tools.sh)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (required under CI=true)", pytrace=False)
    pytest.skip(what)


def test_the_version_is_a_release_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_pinned_image_is_derived_from_the_version() -> None:
    assert pinned_image().endswith(f":v{__version__}")
    assert pinned_image("9.8.7").endswith(":v9.8.7")


def test_pyproject_reads_the_version_from_init() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/roscoe/__init__.py"


def test_installed_metadata_agrees() -> None:
    assert metadata.version("roscoe") == __version__


def test_changelog_top_release_is_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, re.MULTILINE)
    assert releases, "CHANGELOG.md has no release section"
    assert releases[0] == __version__
    assert "## [Unreleased]" in text


def test_homebrew_formula_follows_the_version() -> None:
    text = FORMULA.read_text()
    assert f'tag: "v{__version__}"' in text
    urls = re.findall(r'^\s+url "([^"]+)"', text, re.MULTILINE)
    resource_urls = urls[1:]
    assert resource_urls, "the formula has no resources (run update-resources.py)"
    for url in resource_urls:
        assert f"/releases/download/v{__version__}/" in url


def test_homebrew_formula_lists_every_runtime_dependency() -> None:
    text = FORMULA.read_text()
    resources = set(re.findall(r'resource "([^"]+)"', text))
    requires = metadata.requires("roscoe") or []
    direct = {
        re.split(r"[<>=!~; \[]", line, maxsplit=1)[0].lower()
        for line in requires
        if "extra ==" not in line and "python_version < '3.11'" not in line.replace('"', "'")
    }
    assert direct <= resources, f"missing resources: {sorted(direct - resources)}"


def test_homebrew_formula_is_valid_ruby() -> None:
    ruby = shutil.which("ruby")
    if ruby is None:
        skip_or_fail_tool("ruby is not installed (scripts/install-test-tools.sh)")
    result = subprocess.run([ruby, "-c", str(FORMULA)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stdout
