"""The shapes in the OpenAPI document (`GET /openapi.json`).

They describe the answers; requests are checked by `roscoe.service.validate`, whose rules
and one-line reasons are the documented contract (a 400, never FastAPI's 422).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from roscoe.runs.workspace import MAX_NAME_CHARS
from roscoe.service.validate import (
    MAX_ARG_CHARS,
    MAX_ARGS,
    MAX_ENV,
    MAX_ENV_VALUE_CHARS,
    MAX_TIMEOUT_S,
)


class Engine(BaseModel):
    kind: str
    version: str


class Health(BaseModel):
    status: str = Field(description="ok, or stopping once a shutdown has begun")
    version: str
    engine: Engine
    runs_in_flight: int
    runs_queued: int
    engine_reachable: bool | None = Field(
        None, description="with ?engine=1: whether the service reaches its engine now"
    )
    engine_error: str | None = Field(None, description="with ?engine=1: why it does not")


class RunRecord(BaseModel):
    id: str
    case: str
    script: str
    args: list[str]
    image: str
    image_digest: str | None
    engine: str | None
    status: str = Field(
        description="queued, running, succeeded, failed, timed_out, oom_killed, "
        "interrupted, cancelled, error or unknown (the engine stopped answering mid-run)"
    )
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    timed_out: bool
    output_file: str
    output_bytes: int
    saved_output_truncated: bool
    message: str | None
    requested_by: str | None = Field(
        None, description="who asked: the token's name (admin for the service's own)"
    )
    script_sha256: str | None = None
    env_names: list[str] = Field(default_factory=list, description="never the values")
    changes: dict[str, Any] | None = Field(
        None,
        description='{"tracked": true, "created", "modified", "deleted"} or '
        '{"tracked": false, "reason"}; see docs/usage.md',
    )
    preview: bool = False
    preview_state: str | None = Field(None, description="pending, applied or discarded")
    applied_at: str | None = None
    applied_by: str | None = None
    discarded_at: str | None = None
    discarded_by: str | None = None


class RunAnswer(RunRecord):
    output: str = Field(description="the last 64 KiB of the output, as text")
    output_truncated: bool


class RunList(BaseModel):
    runs: list[RunRecord]


class Case(BaseModel):
    name: str
    modified_at: str


class CaseList(BaseModel):
    cases: list[Case]


class Tool(BaseModel):
    name: str = Field(description="the path in Tools/, as POST /runs takes it: sub/name.py")
    kind: str = Field(description="python or shell")
    description: str


class ToolList(BaseModel):
    tools: list[Tool]


_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
RUN_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["case", "script"],
                    "properties": {
                        "case": {**_NAME, "description": "a folder in projects/"},
                        "script": {**_NAME, "description": "a .py or .sh file in Tools/"},
                        "args": {
                            "type": "array",
                            "maxItems": MAX_ARGS,
                            "items": {"type": "string", "maxLength": MAX_ARG_CHARS},
                        },
                        "timeout": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": MAX_TIMEOUT_S,
                        },
                        "env": {
                            "type": "object",
                            "maxProperties": MAX_ENV,
                            "additionalProperties": {
                                "type": "string",
                                "maxLength": MAX_ENV_VALUE_CHARS,
                            },
                        },
                        "wait": {
                            "type": "boolean",
                            "default": True,
                            "description": "false: answer 202 at once with a Location header",
                        },
                        "preview": {
                            "type": "boolean",
                            "default": False,
                            "description": "run on a copy of the case; the changes wait for "
                            "POST /runs/{id}/apply",
                        },
                    },
                }
            }
        },
    }
}
