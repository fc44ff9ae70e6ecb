"""`roscoe token create|list|revoke`: scoped tokens for the execution service."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json

app = typer.Typer(no_args_is_help=True)


@app.callback()
def token_group() -> None:
    """Scoped tokens: each opens the execution service (REST and MCP) to some cases and tools.

    A scoped token sees and runs only the cases and tools its globs match, and sees only
    the runs of its cases. The token `roscoe server start` made stays the admin token, with
    every right. Tokens are stored hashed (sha256) in <data dir>/access/tokens.json (0600);
    the service reads the file again when it changes: a new or revoked token counts from the
    next request, without a restart.

    Examples:
      roscoe token create paralegal --case 'acme-*' --tool 'inventory.py' --expires 30d
      roscoe token list
      roscoe token revoke paralegal
    """


@app.command("create")
def create_command(
    ctx: typer.Context,
    *,
    name: str = typer.Argument(..., help="The token's name: in logs and run records."),
    cases: Annotated[
        list[str] | None,
        typer.Option(
            "--case",
            help="A glob of the cases it may see and run (repeatable). [default: every case]",
            show_default=False,
        ),
    ] = None,
    tools: Annotated[
        list[str] | None,
        typer.Option(
            "--tool",
            help="A glob of the scripts in Tools/ it may run (repeatable). [default: every one]",
            show_default=False,
        ),
    ] = None,
    expires: str | None = typer.Option(
        None,
        "--expires",
        help="Expire after this long: 30d, 12h, 90m, 2w. [default: never]",
        show_default=False,
    ),
    can_apply: bool = typer.Option(
        False, "--can-apply", help="May apply previews (POST /runs/{id}/apply)."
    ),
    json_output: Json = False,
) -> None:
    """Make a token and print it, once: it is stored only as a hash.

    The token goes to stdout alone (or as "token" with --json); what it may do goes to
    stderr.

    Examples:
      roscoe token create paralegal --case 'acme-*' --expires 30d
      roscoe token create reviewer --case 'acme-2024' --tool 'reports/*' --can-apply
      ROSCOE_TOKEN=$(roscoe token create agent --case demo-case)
    """
    from roscoe.access import tokens
    from roscoe.config.parse import parse_expiry

    state(ctx)
    made = tokens.create(
        name,
        cases=cases or [],
        tools=tools or [],
        expires_in=parse_expiry(expires, "--expires") if expires else None,
        can_apply=can_apply,
    )
    if json_output:
        render.print_json({**made.entry.public(), "token": made.token})
        return
    sys.stdout.write(made.token + "\n")
    sys.stdout.flush()
    entry = made.entry
    render.info(
        f"token '{entry.name}': cases {', '.join(entry.cases)}; tools {', '.join(entry.tools)}; "
        f"{'may apply previews; ' if entry.can_apply else ''}"
        f"expires {entry.expires or 'never'}. It is shown this once: keep it now."
    )


@app.command("list")
def list_command(ctx: typer.Context, json_output: Json = False) -> None:
    """List the tokens: name, scopes, created, expires and state; never the token.

    Examples:
      roscoe token list
      roscoe token list --json
    """
    from roscoe.access import tokens

    state(ctx)
    found = tokens.load()
    if json_output:
        render.print_json([entry.public() for entry in found])
        return
    if not found:
        render.info("no scoped tokens yet: try `roscoe token create NAME --case GLOB`")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "state", "cases", "tools", "apply", "created", "expires"):
        table.add_column(column, overflow="fold")
    for entry in found:
        table.add_row(
            *(
                render.escape(cell)
                for cell in (
                    entry.name,
                    entry.state(),
                    ", ".join(entry.cases),
                    ", ".join(entry.tools),
                    "yes" if entry.can_apply else "no",
                    entry.created,
                    entry.expires or "never",
                )
            )
        )
    render.console().print(table)


@app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The token's name (`roscoe token list`)."),
) -> None:
    """Revoke a token: the service refuses it (401) from the next request on.

    Its name stays taken, so the run records keep meaning one token.

    Examples:
      roscoe token revoke paralegal
    """
    from roscoe.access import tokens

    state(ctx)
    entry, changed = tokens.revoke(name)
    if changed:
        render.info(f"token '{entry.name}' revoked")
    else:
        render.info(f"token '{entry.name}' was revoked already, at {entry.revoked}")
