"""The caller of the service and what it may touch: cases and tools by glob, apply or not.

Pure rules, no I/O, shared by every endpoint of the REST API and the MCP tools over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

ADMIN = "admin"  # the name of the service's own token, and the name no scoped token may take
EVERYTHING = ("*",)


@dataclass(frozen=True)
class Principal:
    """Who asks. `name` goes into logs and records (`requested_by`); never the token itself.

    `cases` and `tools` are globs (fnmatch, case-sensitive; `*` matches `/` too, so `reports/*`
    covers every script in Tools/reports/). The admin token may do everything.
    """

    name: str
    admin: bool = False
    cases: tuple[str, ...] = EVERYTHING
    tools: tuple[str, ...] = EVERYTHING
    can_apply: bool = False

    def sees_case(self, case: str) -> bool:
        return self.admin or any(fnmatchcase(case, glob) for glob in self.cases)

    def uses_tool(self, tool: str) -> bool:
        return self.admin or any(fnmatchcase(tool, glob) for glob in self.tools)

    def may_apply(self) -> bool:
        return self.admin or self.can_apply

    def run_refusal(self, case: str, tool: str) -> str | None:
        """Why this caller may not run `tool` on `case` (the rule, in one line), or None."""
        who = f"token '{self.name}'"
        if not self.sees_case(case):
            return f"{who} may not use case '{case}' (its cases: {_globs(self.cases)})"
        if not self.uses_tool(tool):
            return f"{who} may not run '{tool}' (its tools: {_globs(self.tools)})"
        return None

    def apply_refusal(self) -> str | None:
        if self.may_apply():
            return None
        return (
            f"token '{self.name}' may not apply previews "
            "(the admin token, or a token made with --can-apply, may)"
        )


ADMIN_PRINCIPAL = Principal(ADMIN, admin=True, can_apply=True)


def _globs(globs: tuple[str, ...]) -> str:
    return ", ".join(globs) if globs else "none"
