"""The runner's `/mcp` endpoint: the MCP tools over streamable HTTP, behind the service's token.

`McpEndpoint(service)` builds the MCP server over the service's own run machinery
(`ServiceBackend`); `install(app)` routes `/mcp` to it (exactly that path, no redirect) and
`lifespan` starts and stops the SDK's session manager with the app. Every request must carry
`Authorization: Bearer <token>`, checked by the service's own guard (`service.frame.TokenGuard`:
401 otherwise, with the same JSON body as the REST API); the caller that token names is what
the tools pass to the backend, so scoped tokens apply to MCP as they do to REST.

Stateless: each MCP request stands alone (no session to keep or to leak), and a `run_script`
call streams its progress notifications on its own response.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from roscoe.mcp.backend import Principal
from roscoe.mcp.server import build_server
from roscoe.mcp.service_backend import ServiceBackend

if TYPE_CHECKING:
    from roscoe.service.api import ExecutionService

PATH = "/mcp"


def principal_of(ctx: Context) -> Principal:
    """The caller of this tool call, as the guard found it (never read from a header here)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    from roscoe.service.frame import PRINCIPAL_KEY

    found = scope.get(PRINCIPAL_KEY)
    if not isinstance(found, Principal):  # the guard always sets it: refuse rather than guess
        raise PermissionError("no authenticated caller on this request")
    return found


class McpEndpoint:
    """The ASGI app behind `/mcp`: the token check, then the SDK's streamable HTTP."""

    def __init__(self, service: "ExecutionService"):
        self.service = service
        self.server = build_server(ServiceBackend(service), principal_of)
        # Makes the session manager (with the SDK's DNS-rebinding protection for loopback).
        self.server.streamable_http_app(streamable_http_path=PATH, stateless_http=True)
        from roscoe.service.frame import TokenGuard

        self._app = TokenGuard(StreamableHTTPASGIApp(self.server.session_manager), service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield

    def install(self, app: Any) -> None:
        """Route exactly `/mcp` (every method) to this endpoint, ahead of the other routes."""
        app.router.routes.insert(0, Route(PATH, self))
