"""The catalog: which cases and tools a workspace offers, and how tools describe themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roscoe.runs.catalog import describe, list_cases, list_tools
from roscoe.runs.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workspace"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    for case in ("b-case", "a-case", ".git", "-dash"):
        (root / "projects" / case).mkdir(parents=True)
    (root / "projects" / "a-case" / "deep" / "deeper").mkdir(parents=True)
    (root / "projects" / "loose-file.txt").write_text("not a case")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "projects" / "escape")
    os.symlink(root / "projects" / "a-case", root / "projects" / "alias")
    tools = root / "Tools"
    (tools / "sub").mkdir(parents=True)
    (tools / "__pycache__").mkdir()
    (tools / ".hidden").mkdir()
    (tools / "doc.py").write_text('"""Count words.\n\nMore detail here."""\nprint(1)\n')
    (tools / "comment.py").write_text(
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n# Says hello\n# to everyone.\n"
        "#\n# Second paragraph.\nprint('hi')\n"
    )
    (tools / "plain.py").write_text("print('no words about me')\n")
    (tools / "run.sh").write_text("#!/bin/sh\n# Backs up the case.\nset -e\n")
    (tools / "sub" / "nested.py").write_text("'''Nested tool.'''\n")
    (tools / "notes.txt").write_text("# not a script\n")
    (tools / "__pycache__" / "doc.cpython-311.py").write_text("")
    (tools / ".hidden" / "secret.py").write_text("")
    (tools / ".dot.py").write_text("")
    (outside / "evil.py").write_text('"""Escaped."""\n')
    os.symlink(outside / "evil.py", tools / "escape.py")
    return Workspace(root)


def test_cases_are_the_runnable_folders_of_projects_sorted(ws: Workspace) -> None:
    cases = list_cases(ws)
    assert [c.name for c in cases] == ["a-case", "alias", "b-case"]
    assert all(c.modified_at.endswith("Z") for c in cases)
    assert cases[0].to_json().keys() == {"name", "modified_at"}


def test_no_projects_folder_means_no_cases(tmp_path: Path) -> None:
    assert list_cases(Workspace(tmp_path)) == []
    assert list_tools(Workspace(tmp_path)) == []


def test_tools_are_the_runnable_scripts_with_their_own_descriptions(ws: Workspace) -> None:
    tools = {t.name: t for t in list_tools(ws)}
    assert sorted(tools) == ["comment.py", "doc.py", "plain.py", "run.sh", "sub/nested.py"]
    assert tools["doc.py"].description == "Count words."
    assert tools["doc.py"].kind == "python"
    assert tools["comment.py"].description == "Says hello to everyone."
    assert tools["plain.py"].description == ""
    assert tools["run.sh"].description == "Backs up the case."
    assert tools["run.sh"].kind == "shell"
    assert tools["sub/nested.py"].description == "Nested tool."
    assert tools["doc.py"].to_json() == {
        "name": "doc.py",
        "kind": "python",
        "description": "Count words.",
    }


def test_the_example_tool_describes_itself() -> None:
    (tool,) = list_tools(Workspace(EXAMPLES))
    assert tool.name == "create_file_inventory.py"
    assert tool.description.startswith("Inventory of a folder:")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (b'r"""Raw docstring."""\n', "Raw docstring."),
        (b"'''\n    Indented\n    lines.\n\n    Rest.\n'''\n", "Indented lines."),
        (b"import os\n'''Not a docstring.'''\n", ""),
        (b'"""Unclosed docstring\n', ""),
        (b"\xff\xfe garbage", ""),
        (b'x = 1\n"""late"""\n', ""),
        (b"# Comment only\n\nprint(1)\n", "Comment only"),
    ],
)
def test_descriptions_never_run_the_script(tmp_path: Path, source: bytes, expected: str) -> None:
    script = tmp_path / "tool.py"
    script.write_bytes(source)
    assert describe(script) == expected


def test_a_long_description_is_cut(tmp_path: Path) -> None:
    script = tmp_path / "tool.sh"
    script.write_text("# " + "word " * 500 + "\n")
    text = describe(script)
    assert len(text) <= 1000
    assert text.endswith("...")
