"""The HTTP face of the execution service: a FastAPI app over ExecutionService.

`create_app(service)` builds it; `mounts` adds other ASGI apps under a path (they pass
through the same request log and answer headers; wrap them in `frame.TokenGuard` for the
token),
and `lifespans` adds what those apps must start and stop with the server. Routes only move
bytes: what is allowed and what a run does is decided in `roscoe.service.api`.

Blocking work (the file system, the engine) runs in worker threads, never on the event loop,
so `/health` answers at once however busy the runs are. The streams (follow, events) are in
`streams.py`; what every request goes through (limits, log, answer headers) in `frame.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive

from roscoe import __version__
from roscoe.access.principal import Principal
from roscoe.service import schema, streams
from roscoe.service.api import TRUNCATED_HEADER, ApiError, ExecutionService
from roscoe.service.frame import RequestFrame, error_answer, json_answer
from roscoe.service.live import LiveRun
from roscoe.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from roscoe.service.protocol import DEADLINE_KEY
from roscoe.service.validate import REQUEST_DEADLINE_S

# How long DELETE /runs/{id} waits for the run to be stopped before answering 202.
CANCEL_ANSWER_WAIT_S = 30.0

# The run's id in paths is `{id}`, as the docs spell it.
RunId = Annotated[str, PathParam(alias="id")]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class ClientGone(Exception):
    """The client closed the connection before its request was read."""


def create_app(
    service: ExecutionService,
    *,
    mounts: Mapping[str, ASGIApp] | None = None,
    lifespans: Sequence[Lifespan] = (),
) -> FastAPI:
    """The service's ASGI app; `mounts` adds apps under paths, `lifespans` their start/stop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for extra in lifespans:
                await stack.enter_async_context(extra(app))
            yield

    app = FastAPI(
        title="roscoe execution service",
        version=__version__,
        description=(
            "Runs a script from Tools/ against one case folder in a fresh, locked-down "
            "container. Every endpoint but /health needs `Authorization: Bearer <token>`."
        ),
        openapi_url=None,  # served below, behind the token like everything but /health
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    _add_error_handlers(app)
    _add_routes(app, service)
    for path, mounted in (mounts or {}).items():
        app.mount(path, mounted)
    app.add_middleware(RequestFrame, log=service.log)
    return app


# -- the routes ------------------------------------------------------------------------------
def _add_routes(app: FastAPI, service: ExecutionService) -> None:  # noqa: PLR0915 - the table
    def token(request: Request) -> Principal:
        """The caller; 401 without a valid token. Its name goes into the request's log line."""
        who = service.require_token(request.headers.get("authorization"))
        request.state.caller = who.name
        return who

    @app.get("/health", response_model=schema.Health, summary="Is the service up (no token)")
    async def health(engine: bool = False) -> Response:
        if not engine:  # counters only: answers at once, never touches the engine
            return json_answer(200, service.health())
        # ?engine=1: whether the service reaches its engine (one short, cached ping)
        return json_answer(200, await run_in_threadpool(service.health, True))

    @app.get("/openapi.json", include_in_schema=True, summary="This API's OpenAPI document")
    async def openapi(request: Request) -> Response:
        token(request)
        return json_answer(200, app.openapi())

    @app.get("/metrics", summary="Counters in Prometheus' text format")
    async def metrics(request: Request) -> Response:
        service.require_admin(token(request), "the metrics")
        return Response(service.metrics(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/cases", response_model=schema.CaseList, summary="The case folders")
    async def cases(request: Request) -> Response:
        who = token(request)
        return json_answer(200, await run_in_threadpool(service.list_cases, who))

    @app.get("/tools", response_model=schema.ToolList, summary="The scripts in Tools/")
    async def tools(request: Request) -> Response:
        who = token(request)
        return json_answer(200, await run_in_threadpool(service.list_tools, who))

    @app.post(
        "/runs",
        summary="Run a script against a case",
        response_model=schema.RunAnswer,
        responses={202: {"model": schema.RunRecord, "description": "wait: false"}},
        openapi_extra=schema.RUN_REQUEST_BODY,
    )
    async def post_run(request: Request) -> Response:
        who = token(request)
        length = service.parse_run(request.headers.get("content-length"), None)
        assert isinstance(length, int)
        body = await _read_body(request, length)
        run_request = service.parse_run(None, body)
        assert not isinstance(run_request, int)
        live = await run_in_threadpool(service.submit, run_request, who)
        request.state.run_id = live.id
        if not run_request.wait:
            return json_answer(202, service.current_record(live), {"Location": f"/runs/{live.id}"})
        if await _client_left_first(request, live):
            service.cancel_on_disconnect(live)
            request.state.client_gone = True
            return Response(status_code=499)  # nobody reads it; the log says what happened
        return json_answer(200, await run_in_threadpool(service.answer_of, live))

    @app.get("/runs", response_model=schema.RunList, summary="Recent runs, newest first")
    async def list_runs(request: Request) -> Response:
        who = token(request)
        limits = request.query_params.getlist("limit")
        cases = request.query_params.getlist("case")
        return json_answer(
            200,
            await run_in_threadpool(
                service.list_runs, limits[-1] if limits else None, who, cases[-1] if cases else None
            ),
        )

    @app.get("/runs/{id}", response_model=schema.RunRecord, summary="One run's record")
    async def get_run(request: Request, run_id: RunId) -> Response:
        who = token(request)
        return json_answer(200, await run_in_threadpool(service.get_run, run_id, who))

    @app.delete(
        "/runs/{id}",
        response_model=schema.RunRecord,
        responses={202: {"model": schema.RunRecord, "description": "still stopping"}},
        summary="Cancel a queued or running run",
    )
    async def cancel_run(request: Request, run_id: RunId) -> Response:
        who = token(request)
        live = await run_in_threadpool(service.cancel, run_id, who)
        request.state.run_id = live.id
        try:
            await asyncio.wait_for(live.wait(), CANCEL_ANSWER_WAIT_S)
        except asyncio.TimeoutError:
            return json_answer(202, service.current_record(live))
        return json_answer(200, service.current_record(live))

    @app.post(
        "/runs/{id}/apply",
        response_model=schema.RunRecord,
        summary="Land a preview run's changes in its case (admin, or a token with --can-apply)",
    )
    async def apply_preview(request: Request, run_id: RunId) -> Response:
        who = token(request)
        request.state.run_id = run_id
        return json_answer(200, await run_in_threadpool(service.apply_preview, run_id, who))

    @app.post(
        "/runs/{id}/discard",
        response_model=schema.RunRecord,
        summary="Drop a preview run's changes",
    )
    async def discard_preview(request: Request, run_id: RunId) -> Response:
        who = token(request)
        request.state.run_id = run_id
        return json_answer(200, await run_in_threadpool(service.discard_preview, run_id, who))

    @app.get(
        "/runs/{id}/output",
        summary="The end of a run's output; ?follow=true streams it until the run ends",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}, "application/octet-stream": {}}}},
    )
    async def run_output(request: Request, run_id: RunId) -> Response:
        who = token(request)
        run_id = service.run_id(run_id)
        await run_in_threadpool(service.require_visible, run_id, who)
        tails = request.query_params.getlist("tail")
        tail = service.output_tail(tails[-1] if tails else None)
        follow = request.query_params.get("follow", "false").lower()
        if follow not in ("true", "false", "1", "0", "yes", "no"):
            raise ApiError(400, "follow must be true or false")
        live = service.scheduler.get(run_id)
        if follow in ("true", "1", "yes") and live is not None:
            return StreamingResponse(
                streams.follow(service, live, tail),
                media_type="application/octet-stream",
                headers={"X-Roscoe-Follow": "true"},
            )
        output, truncated = await run_in_threadpool(service.saved_output, run_id, tail, who)
        try:
            output.decode("utf-8")
            content_type = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            content_type = "application/octet-stream"
        return Response(
            output,
            media_type=content_type,
            headers={TRUNCATED_HEADER: "true" if truncated else "false"},
        )

    @app.get(
        "/runs/{id}/events",
        summary="Server-Sent Events: status and output until the run ends",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def run_events(request: Request, run_id: RunId) -> Response:
        who = token(request)
        run_id = service.run_id(run_id)
        await run_in_threadpool(service.require_visible, run_id, who)
        live = service.scheduler.get(run_id)
        record = None
        if live is None:
            record = await run_in_threadpool(service.get_run, run_id, who)  # 404 when none
        return StreamingResponse(
            streams.events(service, run_id, live, record),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )


# -- reading the request ---------------------------------------------------------------------
async def _read_body(request: Request, length: int) -> bytes:
    """The body, read against the whole-request deadline (408), at most `length` bytes."""
    deadline = request.scope.get("extensions", {}).get(DEADLINE_KEY)
    left = None if deadline is None else max(deadline - anyio.current_time(), 0.0)
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(left):
            async for chunk in request.stream():
                size += len(chunk)
                if size > length:
                    raise ApiError(400, "the body is longer than its Content-Length")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408, f"the request was not received within {REQUEST_DEADLINE_S:g} seconds"
        ) from None
    except ClientDisconnect:
        raise ClientGone from None
    return b"".join(chunks)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _client_left_first(request: Request, live: LiveRun) -> bool:
    """Wait for the run to end; True when the client disconnected before it did."""
    done = asyncio.ensure_future(live.wait())
    gone = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (done, gone):
            task.cancel()
    return not live.finished


# -- errors ----------------------------------------------------------------------------------
def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_answer(exc.status, exc.reason, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_answer(404, f"no such endpoint: {request.url.path}")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error_answer(
                405,
                f"{request.method} is not allowed here (allowed: {allowed})",
                {"Allow": allowed},
            )
        return error_answer(exc.status_code, str(exc.detail), exc.headers)

    async def invalid(_request: Request, exc: Exception) -> Response:
        # A parameter FastAPI checks itself (?engine= of /health): the documented 400 with
        # one line, never FastAPI's 422 and its list of details.
        assert isinstance(exc, RequestValidationError)
        first: dict[str, Any] = next(iter(exc.errors()), {})
        where = [str(part) for part in first.get("loc", ()) if part not in ("query", "path")]
        name = ".".join(where) or "the request"
        return error_answer(400, f"'{name}': {first.get('msg', 'not valid')}")

    async def client_gone(request: Request, _exc: Exception) -> Response:
        request.state.client_gone = True
        return Response(status_code=499)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ClientGone, client_gone)
