"""`roscoe logs`: the runner container's output."""

from __future__ import annotations

import contextlib
import sys

import typer

from roscoe.cli.context import state


def logs_command(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep streaming new output."),
    tail: str = typer.Option("all", "-n", "--tail", help="Lines from the end, or all."),
    since: str = typer.Option(
        None,
        "--since",
        help="Only output since a duration ago (10m, 2h, 30s) or an RFC 3339 timestamp.",
        show_default=False,
    ),
    timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Prefix each line's time."),
) -> None:
    """Show the runner's output (the execution service's JSON log lines).

    With -f, streams until Ctrl-C or until the runner stops. Exits 0, 1 when no runner
    exists, 2 on bad input.

    Examples:
      roscoe logs --tail 50
      roscoe logs -f --since 10m
      roscoe logs -n all -t > runner.log
    """
    from roscoe.runner.logs import parse_since, parse_tail, runner_logs

    lines = parse_tail(tail)
    since_ts = parse_since(since) if since is not None else None
    st = state(ctx)
    pieces = runner_logs(
        st.engine(),
        st.settings,
        follow=follow,
        tail=lines,
        since=since_ts,
        timestamps=timestamps,
    )
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for stream, data in pieces:
            target = err if stream == 2 else out
            target.write(data)
            if follow:
                target.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a followed stream: a normal way to stop reading
    except BrokenPipeError:
        # The reader went away (`roscoe logs | head`): stop quietly, like other CLIs.
        sys.stderr.close()
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    with contextlib.suppress(BrokenPipeError):
        out.flush()
