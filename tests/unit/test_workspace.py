"""Workspace validation: what a case or script name may be, before any container exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roscoe.config.settings import Settings
from roscoe.errors import UsageError
from roscoe.runs.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "projects" / "case-a" / "sub").mkdir(parents=True)
    (root / "projects" / "file-case").parent.mkdir(exist_ok=True)
    (root / "projects" / "file-case").write_text("not a folder")
    (root / "Tools" / "nested").mkdir(parents=True)
    (root / "Tools" / "tool.py").write_text("print('hi')\n")
    (root / "Tools" / "tool.sh").write_text("echo hi\n")
    (root / "Tools" / "nested" / "deep.py").write_text("print('deep')\n")
    (root / "Tools" / "data.txt").write_text("not a script\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("print('escaped')\n")
    os.symlink(outside, root / "projects" / "escape")
    os.symlink(outside / "evil.py", root / "Tools" / "escape.py")
    os.symlink(root / "Tools" / "tool.py", root / "Tools" / "alias.py")
    os.symlink(root / "projects" / "case-a", root / "projects" / "alias")
    os.symlink(root / "projects" / "case-a" / "sub", root / "projects" / "inner")
    return Workspace(root)


def test_a_case_resolves_to_its_real_folder(ws: Workspace) -> None:
    real = (ws.root / "projects" / "case-a").resolve()
    assert ws.case_dir("case-a") == real
    # A symlink to another case stays allowed: its target is directly in projects/ too.
    assert ws.case_dir("alias") == real


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/etc", "absolute"),
        ("~root", "absolute"),
        ("..", "'..'"),
        ("case-a/../../x", "'..'"),
        ("../ws/projects/case-a", "'..'"),
        ("escape", "outside"),
        (".", "itself"),
        ("case-a/..", "'..'"),
        ("missing", "does not exist"),
        ("file-case", "not a folder"),
        ("bad\x00name", "NUL"),
        ("bad\nname", "control"),
        ("case-a/sub", "contains '/'"),
        ("case-a\\sub", "contains '/'"),
        ("case-a/", "contains '/'"),
        ("-rf", "starts with '-'"),
        ("inner", "not directly in"),
    ],
)
def test_unsafe_or_absent_cases_are_refused(ws: Workspace, name: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        ws.case_dir(name)
    assert caught.value.exit_code == 2
    assert why in caught.value.message


def test_scripts_resolve_inside_tools(ws: Workspace) -> None:
    assert ws.script_path("tool.py").name == "tool.py"
    assert ws.in_container(ws.script_path("nested/deep.py")) == "/tools/nested/deep.py"
    # A symlink that stays inside Tools runs the file it points to.
    assert ws.in_container(ws.script_path("alias.py")) == "/tools/tool.py"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("/bin/sh", "absolute"),
        ("../projects/case-a", "'..'"),
        ("escape.py", "outside"),
        ("missing.py", "does not exist"),
        ("nested", "not a file"),
        ("data.txt", "only .py (python3), .sh (sh)"),
    ],
)
def test_unsafe_absent_or_unknown_scripts_are_refused(ws: Workspace, name: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        ws.script_path(name)
    assert caught.value.exit_code == 2
    assert why in caught.value.message


def test_host_path_maps_under_host_root(ws: Workspace, tmp_path: Path) -> None:
    mounted = Workspace(ws.root, host_root=Path("/srv/host/ws"))
    case = mounted.case_dir("case-a")
    assert mounted.host_path(case) == Path("/srv/host/ws/projects/case-a")
    assert ws.host_path(case) == case  # no host_root: the same path
    with pytest.raises(UsageError):
        mounted.host_path(tmp_path / "outside")


def test_from_settings_names_and_default(tmp_path: Path, isolated_dirs: Path) -> None:
    root = tmp_path / "named"
    root.mkdir()
    env = {"ROSCOE_PROJECTS_DIR": "cases", "ROSCOE_TOOLS_DIR": "scripts"}
    named = Workspace.from_settings(Settings(env=env), str(root))
    assert (named.root, named.projects, named.tools) == (root.resolve(), "cases", "scripts")

    default = Workspace.from_settings(Settings(env={}))
    assert default.root == (isolated_dirs / "workspace").resolve()
    assert default.projects_dir.is_dir() and default.tools_dir.is_dir()  # created on first use

    with pytest.raises(UsageError, match="not a folder"):
        Workspace.from_settings(Settings(env={}), str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ROSCOE_PROJECTS_DIR": "/"}, "ROSCOE_PROJECTS_DIR: invalid value for projects_dir"),
        ({"ROSCOE_PROJECTS_DIR": "/etc"}, "not a plain folder name"),
        ({"ROSCOE_PROJECTS_DIR": ".."}, "not a plain folder name"),
        ({"ROSCOE_PROJECTS_DIR": "."}, "not a plain folder name"),
        ({"ROSCOE_PROJECTS_DIR": "a/b"}, "not a plain folder name"),
        ({"ROSCOE_TOOLS_DIR": "../Tools"}, "ROSCOE_TOOLS_DIR: invalid value for tools_dir"),
        ({"ROSCOE_TOOLS_DIR": "projects"}, "projects_dir and tools_dir are both 'projects'"),
    ],
)
def test_projects_and_tools_folders_are_plain_distinct_names(
    tmp_path: Path, isolated_dirs: Path, env: dict[str, str], says: str
) -> None:
    with pytest.raises(UsageError) as caught:
        Workspace.from_settings(Settings(env=env), str(tmp_path))
    assert caught.value.exit_code == 2
    assert says in caught.value.message


def test_a_workspace_built_directly_checks_its_folder_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="tools_dir"):
        Workspace(tmp_path, projects="projects", tools="/")
    with pytest.raises(UsageError, match="both"):
        Workspace(tmp_path, projects="x", tools="x")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("x" * 300, "is 300 characters long; the limit is 255"),
        ("é" * 200, "is 400 bytes long in UTF-8; the limit is 255"),
    ],
)
def test_a_name_longer_than_a_file_name_is_exit_2_with_the_limit(
    ws: Workspace, name: str, says: str
) -> None:
    for check in (ws.case_dir, ws.script_path):
        with pytest.raises(UsageError, match=says) as caught:
            check(name)
        assert caught.value.exit_code == 2
    (ws.projects_dir / ("c" * 255)).mkdir()
    assert ws.case_dir("c" * 255).name == "c" * 255  # the limit itself is fine


def test_a_script_path_too_long_as_a_whole_is_exit_2(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="cannot be used: File name too long"):
        ws.script_path("/".join(["d" * 200] * 30) + ".py")


def test_the_cli_says_the_limit_for_a_300_character_case(ws: Workspace) -> None:
    from helpers import roscoe

    done = roscoe("run", "--workspace", str(ws.root), "x" * 300, "tool.py")
    assert done.returncode == 2, done.stderr
    assert b"is 300 characters long; the limit is 255" in done.stderr
