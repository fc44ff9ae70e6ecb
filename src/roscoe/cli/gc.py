"""`roscoe gc`: remove run containers a killed roscoe left behind."""

from __future__ import annotations

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json


def gc_command(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only list what would be removed; remove nothing."
    ),
    json_output: Json = False,
) -> None:
    """Remove every run container that is finished or past its deadline.

    A run's container is always removed by the roscoe that started it; gc sweeps what a
    killed roscoe could not. Containers of runs still under way are left alone.
    Exits 1 when a container could not be removed.

    Examples:
      roscoe gc --dry-run
      roscoe gc
    """
    from roscoe.runs.gc import collect

    st = state(ctx)
    result = collect(st.engine(), dry_run=dry_run)
    if json_output:
        render.print_json(result.to_json())
    else:
        verb = "would remove" if dry_run else "removed"
        for item in result.removed:
            what = f"{item.name or item.container_id} (run {item.run_id or '?'}): {item.reason}"
            render.console().print(f"{verb} {render.escape(what)}")
        for item, error in result.failed:
            render.warn(f"could not remove {item.name or item.container_id}: {error}")
        if not result.removed and not result.failed:
            render.console().print("nothing to remove")
    if result.failed:
        raise typer.Exit(1)
