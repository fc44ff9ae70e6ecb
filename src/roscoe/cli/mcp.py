"""`roscoe mcp`: roscoe's tools for an agent, over the Model Context Protocol on stdio."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from roscoe.cli.context import state
from roscoe.cli.options import bracketed
from roscoe.config.settings import env_name
from roscoe.errors import UsageError

if TYPE_CHECKING:
    from roscoe.engine.protocols import ContainerEngine

MCP_EXTRA_HINT = (
    "install roscoe with its MCP extra: pipx install --force 'roscoe[mcp]' "
    "(or pip install 'roscoe[mcp]')"
)


def mcp_command(
    ctx: typer.Context,
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        help="Workspace root holding projects/ and Tools/. "
        + bracketed(f"env: {env_name('workspace')}"),
        show_default=False,
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Image runs use. "
        + bracketed(f"default: {env_name('image')}, else the pinned runner image"),
        show_default=False,
    ),
    env: Annotated[
        list[str] | None,
        typer.Option(
            "-e",
            "--env",
            help="KEY=VALUE for every run's script, or KEY to copy it from here. Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve roscoe's tools to an agent over MCP on stdin/stdout.

    For desktop and IDE agents (Claude Desktop, Claude Code, Cursor...), which
    start this command themselves. The agent can list the cases and the tools
    (with their descriptions), run a script against a case and wait for it,
    or start a run and come back for it, and cancel it. Runs are made in this
    process exactly as `roscoe run` makes them (same workspace, settings,
    image and hardening): no runner is needed. At most service.concurrency
    runs go at once and service.queue more may wait.

    stdout carries the protocol only; messages go to stderr. Needs the MCP
    extra: pipx install 'roscoe\\[mcp]'. docs/agents.md shows the client
    configuration.

    Examples:
      roscoe mcp
      roscoe mcp --workspace ~/cases -e API_TOKEN
      claude mcp add roscoe -- roscoe mcp --workspace ~/cases
    """
    try:
        import mcp.server.mcpserver  # noqa: F401 - only to know the extra is installed
    except ImportError:
        raise UsageError(
            "roscoe mcp needs the MCP SDK, which is not installed", hint=MCP_EXTRA_HINT
        ) from None

    from roscoe.config.parse import parse_env
    from roscoe.config.settings import RunLimits
    from roscoe.engine import connect_url
    from roscoe.images.choice import choose_image
    from roscoe.mcp.local import LocalBackend, LocalLimits
    from roscoe.mcp.stdio import serve
    from roscoe.runs.workspace import Workspace

    st = state(ctx)
    settings = st.settings
    limits = LocalLimits(
        run=RunLimits.resolve(settings),
        env=parse_env(env or [], os.environ),
        concurrency=settings.get("service.concurrency"),
        queue=settings.get("service.queue"),
    )
    backend = LocalBackend(
        connect=lambda: _connect(settings.get("engine", st.runtime)),
        workspace=Workspace.from_settings(settings, workspace),
        image=choose_image(settings, image),
        limits=limits,
        connect_url=connect_url,
    )
    serve(backend)


def _connect(runtime: str) -> ContainerEngine:
    from roscoe.engine import connect

    return connect(runtime)
