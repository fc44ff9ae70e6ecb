"""User text is printed literally everywhere: rich neither turns `:smile:` into an emoji nor
reads `[bold]` as markup, in errors, hints, tables and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import roscoe
from roscoe.runs import records
from roscoe.runs.records import RunRecord

NAMES = ["q:smile:q", "[bold]x[/bold]", "nonexist:zzz: [red]"]
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "projects").mkdir(parents=True)
    (tmp_path / "ws" / "Tools").mkdir()
    (tmp_path / "ws" / "Tools" / "tool.py").write_text("print('hi')\n")
    return tmp_path / "ws"


@pytest.mark.parametrize("name", NAMES)
def test_an_error_naming_a_case_prints_it_literally(ws: Path, name: str) -> None:
    done = roscoe("run", "--workspace", str(ws), name, "tool.py", env=WIDE)
    assert done.returncode == 2, done.stderr
    assert f"'{name}'" in done.stderr.decode()  # refused: not found, or not one folder name


@pytest.mark.parametrize("name", NAMES)
def test_runs_list_and_show_print_the_case_literally(isolated_dirs: Path, name: str) -> None:
    record = RunRecord(
        id="20260101-000000-aaaaaaaa", case=name, script=f"{name}.py", args=[name], image=name
    )
    record.message = f"a message with {name}"
    records.write_record(record)
    listed = roscoe("runs", "list", env=WIDE)
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout.decode()
    shown = roscoe("runs", "show", record.id, env=WIDE).stdout.decode()
    for line in (f"case       {name}", f"image      {name} (", f"message    a message with {name}"):
        assert line in shown


def test_config_set_echoes_the_value_literally() -> None:
    done = roscoe("config", "set", "image", "nonexist:zzz:[b]", env=WIDE)
    assert done.returncode == 0, done.stderr
    assert 'image = "nonexist:zzz:[b]" written to' in done.stderr.decode()


def test_an_engine_address_is_printed_literally(tmp_path: Path) -> None:
    socket = f"{tmp_path}/nonexist:zzz:[b].sock"
    done = roscoe("version", env={**WIDE, "DOCKER_HOST": f"unix://{socket}"})
    assert done.returncode == 3, done.stderr
    assert socket in done.stderr.decode()


def test_gc_json_is_untouched(isolated_dirs: Path) -> None:
    # --json never goes through rich: it stays byte-for-byte what the record says.
    record = RunRecord(id="20260101-000000-bbbbbbbb", case=":smile:", script="s.py")
    records.write_record(record)
    done = roscoe("runs", "list", "--json")
    assert json.loads(done.stdout)[0]["case"] == ":smile:"
