"""`roscoe mcp`: the MCP server on stdin/stdout, with runs in this process (mcp.local).

stdout carries the protocol and nothing else: logs and warnings go to stderr. SIGTERM or
SIGINT (or the client closing stdin) ends the server; runs still queued are cancelled and
running ones stopped, their containers removed, before the process exits.
"""

from __future__ import annotations

import signal

import anyio

from roscoe.mcp.local import LocalBackend, local_user
from roscoe.mcp.server import build_server


def serve(backend: LocalBackend) -> None:
    """Serve the tools over stdio until the client goes away or a signal arrives."""
    caller = local_user()
    server = build_server(backend, lambda ctx: caller)

    async def main() -> None:
        async with anyio.create_task_group() as group:

            async def until_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

            async def protocol() -> None:
                await server.run_stdio_async()
                group.cancel_scope.cancel()  # stdin closed: the client is gone

            group.start_soon(until_signal)
            group.start_soon(protocol)

    try:
        anyio.run(main)
    finally:
        # Clients send SIGTERM shortly after closing stdin, then SIGKILL: a second signal must
        # not cut the clean-up short while containers are being stopped and removed.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        backend.close()
