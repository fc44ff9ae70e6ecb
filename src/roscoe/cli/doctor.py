"""`roscoe doctor`: a checklist a user can act on."""

from __future__ import annotations

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json
from roscoe.diagnostics.checks import CheckStatus

_MARK = {
    CheckStatus.OK: "[green]✔[/]",
    CheckStatus.WARN: "[yellow]![/]",
    CheckStatus.FAIL: "[red]✘[/]",
}


def doctor_command(
    ctx: typer.Context,
    json_output: Json = False,
) -> None:
    """Check the engine, gVisor, the runner image, the data dir, the workspace, the runs folder
    and the runner.

    The workspace: there, with projects/ and Tools/, on which file system (a FUSE mount is
    named, and one without allow_other is caught), readable by the engine, and writable by
    the user runs run as.

    Exits 0 when every check passes (warnings included), 1 otherwise.

    Examples:
      roscoe doctor
      roscoe --runtime podman doctor --json
    """
    from roscoe.diagnostics.doctor import doctor_report
    from roscoe.engine import connect_url
    from roscoe.images.choice import choose_image

    st = state(ctx)
    image = choose_image(st.settings)
    report = doctor_report(st.engine, image.ref, image.source, st.settings, connect=connect_url)
    if json_output:
        render.print_json(report.to_json())
    else:
        out = render.console()
        for check in report.checks:
            out.print(f"{_MARK[check.status]} {check.name}: {render.escape(check.detail)}")
            if check.hint and check.status != CheckStatus.OK:
                out.print(f"    [dim]{render.escape(check.hint)}[/]")
    if not report.ok:
        raise typer.Exit(1)
