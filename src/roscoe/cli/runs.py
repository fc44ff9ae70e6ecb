"""`roscoe runs list|show|apply|discard`: what past runs did, and previews' changes."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING, Any

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json, about
from roscoe.runs.outcome import RunStatus

if TYPE_CHECKING:
    from roscoe.runs.records import RunRecord

app = typer.Typer(
    help=(
        "Past runs: their records, what they changed, their saved output; previews' "
        "changes applied or discarded.\n\n"
        "Examples:\n\n"
        "  roscoe runs list --limit 5\n\n"
        "  roscoe runs show 20261121-115557-c0ada393 --output\n\n"
        "  roscoe runs prune --older-than 30d --dry-run"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("list")
def list_command(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs to show."),
    case: str | None = typer.Option(
        None, "--case", help="Only the runs of this case.", show_default=False
    ),
    json_output: Json = False,
) -> None:
    """List recent runs, newest first (a run id starts with its UTC start time).

    Examples:
      roscoe runs list
      roscoe runs list --case demo-case
      roscoe runs list --limit 5 --json
    """
    from roscoe.config.paths import runs_dir
    from roscoe.runs.records import scan_runs

    state(ctx)  # an invalid setting stops every command (exit 2)
    listing = scan_runs(limit, case=case)
    for problem in listing.skipped:  # on stderr, so --json stays one document
        render.warn(f"skipped: {problem}", f"repair or remove its folder in {runs_dir()}")
    found = listing.runs
    if json_output:
        render.print_json([record.to_json() for record in found])
        return
    if not found:
        if case is not None:
            render.info(f"no runs of case '{case}'")
        else:
            render.info("no runs yet: try `roscoe run CASE SCRIPT`")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    rows = [
        (
            record.id,
            record.status,
            "" if record.exit_code is None else str(record.exit_code),
            "" if record.duration_s is None else f"{record.duration_s:.1f} s",
            record.case,
            shlex.join([record.script, *record.args]),
        )
        for record in found
    ]
    # One line per run, like `docker ps`: every column keeps its width but the command line,
    # which is cut (not wrapped) when the terminal is narrow.
    names = ("id", "status", "exit", "duration", "case", "script")
    for index, name in enumerate(names):
        widest = max(len(name), *(len(row[index]) for row in rows))
        fixed = name != "script"
        table.add_column(name, no_wrap=True, overflow="ellipsis", min_width=widest if fixed else 12)
    for row in rows:
        table.add_row(row[0], _status(row[1]), *(render.escape(cell) for cell in row[2:]))
    render.console().print(table)


@app.command("show")
def show_command(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="ID", help="A run id from `roscoe runs list`."),
    json_output: Json = False,
    output: bool = typer.Option(
        False, "--output", help="Print the run's saved output (raw bytes) instead."
    ),
    tail: int | None = typer.Option(
        None, "--tail", min=1, help="With --output: only the last N bytes.", show_default=False
    ),
) -> None:
    """Show one run's record, or with --output its saved stdout and stderr.

    Examples:
      roscoe runs show 20261121-112715-3f9a1c2e
      roscoe runs show 20261121-112715-3f9a1c2e --output --tail 4096
      roscoe runs show 20261121-112715-3f9a1c2e --json
    """
    from roscoe.runs.records import OUTPUT_FILE, load_run, read_output, run_dir

    state(ctx)  # an invalid setting stops every command (exit 2)
    record = load_run(run_id)
    if output:
        data, _ = read_output(run_id, tail)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if json_output:
        render.print_json(record.to_json())
        return
    out = render.console()
    rows = [
        ("id", record.id),
        ("case", record.case),
        ("script", " ".join([record.script, *record.args])),
        ("status", _status(record.status)),
        ("exit code", "" if record.exit_code is None else str(record.exit_code)),
        ("image", f"{record.image} ({record.image_digest or 'digest unknown'})"),
        ("engine", f"{record.engine or ''} ({record.isolation})"),
        ("started", record.started_at or ""),
        ("finished", record.finished_at or ""),
        ("duration", "" if record.duration_s is None else f"{record.duration_s:.3f} s"),
        ("output", f"{run_dir(record.id) / OUTPUT_FILE} ({record.output_bytes} bytes)"),
        ("memory", _memory(record.peak_memory_bytes)),
        ("cpu", _cpu(record.cpu_user_s, record.cpu_system_s)),
    ]
    if record.requested_by:
        rows.append(("by", record.requested_by))
    if record.script_sha256:
        rows.append(("script sha", record.script_sha256))
    if record.env_names:
        rows.append(("env", " ".join(record.env_names)))
    if record.saved_output_truncated:
        rows.append(("saved", "only the first part of the output was saved (size limit)"))
    if record.message:
        rows.append(("message", record.message))
    if record.preview:
        rows.append(("preview", _preview_state(record)))
    for name, value in rows:
        shown = value if name == "status" else render.escape(value)
        out.print(f"[bold]{name:<10}[/] {shown}")
    for index, line in enumerate(change_lines(record.changes)):
        out.print(f"[bold]{'changes' if index == 0 else '':<10}[/] {render.escape(line)}")


def _preview_state(record: RunRecord) -> str:
    if record.preview_state == "pending":
        return (
            f"pending: the case is untouched; `roscoe runs apply {record.id}` lands these "
            f"changes, `roscoe runs discard {record.id}` drops them"
        )
    if record.preview_state == "applied":
        return f"applied at {record.applied_at} by {record.applied_by}"
    if record.preview_state == "discarded":
        return f"discarded at {record.discarded_at} by {record.discarded_by}"
    return "under way: the case is untouched"


@app.command("apply")
def apply_command(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="ID", help="A preview run's id."),
    json_output: Json = False,
) -> None:
    """Land a preview run's changes in its case: all of them, or none.

    Refused (exit 1, naming the files) when anything the preview would touch has
    changed in the case since the run started; nothing is applied then.
    Deletions, renames, new folders, binary files and permission changes all
    land; files are written under a temporary name and renamed into place, and
    nothing outside the case is ever followed into. The record gains
    applied_at and applied_by.

    Examples:
      roscoe runs show 20261121-112715-3f9a1c2e
      roscoe runs apply 20261121-112715-3f9a1c2e
    """
    from roscoe.runs.host import user_name
    from roscoe.runs.preview import apply_run

    state(ctx)
    record, count = apply_run(run_id, f"cli:{user_name()}")
    if json_output:
        render.print_json(record.to_json())
        return
    render.console().print(
        render.escape(f"applied {count} change(s) of run {record.id} to case '{record.case}'")
    )


@app.command("discard")
def discard_command(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., metavar="ID", help="A preview run's id."),
    json_output: Json = False,
) -> None:
    """Drop a preview run's changes: the case stays as it is; the record says so.

    Examples:
      roscoe runs discard 20261121-112715-3f9a1c2e
    """
    from roscoe.runs.host import user_name
    from roscoe.runs.preview import discard_run

    state(ctx)
    record = discard_run(run_id, f"cli:{user_name()}")
    if json_output:
        render.print_json(record.to_json())
        return
    render.console().print(render.escape(f"discarded the changes of run {record.id}"))


# `runs show` lists this many changes at most; --json has them all.
MAX_SHOWN_CHANGES = 100


def change_lines(changes: dict[str, Any] | None) -> list[str]:
    """`+ path`, `~ path`, `- path` lines with sizes, or why the changes are not known."""
    if changes is None:
        return []
    if not changes.get("tracked"):
        return [f"not tracked: {changes.get('reason') or 'no reason recorded'}"]
    lines: list[str] = []
    for sign, key in (("+", "created"), ("~", "modified"), ("-", "deleted")):
        listed = changes.get(key)
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, dict):
                continue
            lines.append(f"{sign} {_change(item, modified=key == 'modified')}")
    if not lines:
        return ["none: the run changed nothing in the case"]
    if len(lines) > MAX_SHOWN_CHANGES:
        more = len(lines) - MAX_SHOWN_CHANGES
        lines = [*lines[:MAX_SHOWN_CHANGES], f"... and {more} more (--json lists them all)"]
    if changes.get("note"):
        lines.append(f"note: {changes['note']}")
    return lines


def _change(item: dict[str, Any], *, modified: bool) -> str:
    path = str(item.get("path", ""))
    kind = item.get("type")
    if kind == "dir":
        detail = "folder"
        if modified:
            detail += f", mode {item.get('mode_before')} -> {item.get('mode')}"
        return f"{path}/ ({detail})"
    if kind == "symlink":
        return f"{path} -> {item.get('target', '')} (symlink)"
    size = _size(item.get("size"))
    if modified:
        if item.get("size_before") != item.get("size"):
            size = f"{_size(item.get('size_before'))} -> {size}"
        if item.get("mode_before") != item.get("mode"):
            size += f", mode {item.get('mode_before')} -> {item.get('mode')}"
    return f"{path} ({size})"


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return "size unknown"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{value} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _memory(peak: int | None) -> str:
    if peak is None:
        return "unknown"
    return f"peak {peak / (1 << 20):.1f} MiB (the largest process of the script)"


def _cpu(user: float | None, system: float | None) -> str:
    if user is None or system is None:
        return "unknown"
    return f"{user:.3f} s user, {system:.3f} s system"


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    *,
    older_than: str | None = typer.Option(
        None,
        "--older-than",
        help=about(
            "Remove runs that ended longer ago than this (30d, 12h, 90m).", "runs.older_than"
        ),
        show_default=False,
    ),
    keep: int | None = typer.Option(
        None,
        "--keep",
        min=0,
        help=about("Keep only the newest N finished runs.", "runs.keep"),
        show_default=False,
    ),
    max_size: str | None = typer.Option(
        None,
        "--max-size",
        help=about(
            "Remove the oldest runs until the runs folder is at most this (500m, 5g).",
            "runs.max_size",
        ),
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list what would be removed; remove nothing."
    ),
    json_output: Json = False,
) -> None:
    """Remove old run folders (record and saved output); never a running run.

    A run goes when any option says so. Without options, the configured retention
    applies (runs.older_than, runs.keep, runs.max_size); with none set, exit 2.
    Exits 1 when a folder could not be removed.

    Examples:
      roscoe runs prune --older-than 30d --dry-run
      roscoe runs prune --keep 500 --max-size 5g
      roscoe runs prune --json
    """
    from roscoe.config.parse import format_bytes
    from roscoe.runs.retention import policy_from_settings, prune

    st = state(ctx)  # an invalid setting stops every command (exit 2)
    policy = policy_from_settings(st.settings, older_than, keep, max_size)
    result = prune(policy, dry_run=dry_run)
    if json_output:
        render.print_json(result.to_json())
    else:
        out = render.console()
        verb = "would remove" if dry_run else "removed"
        for item in result.removed:
            out.print(
                f"{verb} {item.id} ({item.status or 'no record'}, "
                f"{format_bytes(item.bytes)}): {render.escape(item.reason)}"
            )
        for item, error in result.failed:
            render.warn(f"could not remove {item.id}: {error}")
        running = f", {result.kept_running} of them running" if result.kept_running else ""
        freed = "would free" if dry_run else "freed"
        out.print(
            f"{verb} {len(result.removed)} runs, {freed} {format_bytes(result.freed_bytes)}; "
            f"kept {result.kept}{running} ({format_bytes(result.remaining_bytes)})"
        )
    if result.failed:
        raise typer.Exit(1)


_COLOURS = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.TIMED_OUT: "yellow",
    RunStatus.OOM_KILLED: "yellow",
    RunStatus.INTERRUPTED: "yellow",
    RunStatus.CANCELLED: "yellow",
    RunStatus.ERROR: "red",
    RunStatus.UNKNOWN: "magenta",
    RunStatus.RUNNING: "cyan",
    RunStatus.QUEUED: "cyan",
}


def _status(status: RunStatus) -> str:
    return f"[{_COLOURS[status]}]{status}[/]"
