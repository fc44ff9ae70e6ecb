"""What every command gets from the global options: settings, and the engine on demand."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from roscoe.config.settings import Settings

if TYPE_CHECKING:
    from roscoe.engine.protocols import ContainerEngine


@dataclass
class CliState:
    runtime: str | None = None
    debug: bool = False
    quiet: bool = False
    json: bool = False  # the command was given --json: errors are printed as JSON too
    settings: Settings = field(default_factory=Settings)
    settings_checked: bool = False
    _engine: ContainerEngine | None = None

    def engine(self) -> ContainerEngine:
        """Connect once per invocation (the factory behind the engine seam)."""
        if self._engine is None:
            from roscoe.config.paths import engine_facts_file
            from roscoe.engine import connect

            self._engine = connect(
                self.settings.get("engine", self.runtime), facts_file=engine_facts_file()
            )
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def state(ctx: typer.Context, *, check_settings: bool = True) -> CliState:
    """The invocation's state. Every command starts here, after its options are parsed (so
    --help always works): an invalid setting in the environment or the config file stops it
    with exit 2. The `config` commands pass check_settings=False: they are how one repairs it.
    """
    if not gc.isenabled():  # main() turned it off for the startup, which is over
        gc.freeze()  # what startup made lives as long as the process: never scan it again
        gc.enable()
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # commands invoked without the root callback (tests)
        obj = CliState()
        ctx.find_root().obj = obj
    if check_settings and not obj.settings_checked:
        obj.settings.check()
        obj.settings_checked = True
    return obj
