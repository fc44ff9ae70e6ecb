"""`roscoe version`: the CLI, the runner image it expects, and the engine."""

from __future__ import annotations

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json


def version_command(
    ctx: typer.Context,
    json_output: Json = False,
) -> None:
    """Show roscoe's version, the pinned runner image, and the engine in use.

    Exits 3 (after printing what it can) when no engine is reachable.

    Examples:
      roscoe version
      roscoe version --json | jq .engine.kind
    """
    from roscoe.diagnostics.version import version_report

    report = version_report(state(ctx).engine)
    if json_output:
        render.print_json(report.to_json())
    else:
        out = render.console()
        rows = [
            ("roscoe", report.cli_version),
            ("runner image", report.runner_image),
            ("python", report.python),
        ]
        engine = report.engine
        if engine.available:
            rows.append(("engine", f"{engine.kind} {engine.version} (API {engine.api_version})"))
            rows.append(("endpoint", f"{engine.endpoint} (from {engine.source})"))
        for name, value in rows:
            out.print(f"{name:<14}{render.escape(str(value))}")
    if report.failure is not None:
        if json_output:  # the report says why already: one JSON document, the failure's code
            raise typer.Exit(report.failure.exit_code)
        raise report.failure
