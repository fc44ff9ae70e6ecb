"""Starting a run the way every caller does (`roscoe run`, the execution service).

The pull-when-absent policy lives here: the run is tried at once, and only when creating its
container fails for want of the image is the image looked at and, absent, pulled; then the
run goes again. The usual run therefore costs no extra engine call, and a present image
never touches the network.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from roscoe.errors import ImageError, Interrupted
from roscoe.runs.execute import execute

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine
    from roscoe.images.choice import ImageChoice
    from roscoe.images.pull import OnPull
    from roscoe.runs.isolation import Connect
    from roscoe.runs.output import OnOutput
    from roscoe.runs.records import RunRecord
    from roscoe.runs.spec import RunSpec
    from roscoe.runs.workspace import Workspace

# What a caller shows while an absent image is pulled: entered with the reference, it
# yields the progress callback (or None for none).
Pulling = Callable[[str], AbstractContextManager["OnPull | None"]]


@contextlib.contextmanager
def _unseen(ref: str) -> Iterator[OnPull | None]:
    yield None


def start_run(
    engine: RunEngine,
    workspace: Workspace,
    spec: RunSpec,
    *,
    choice: ImageChoice | None = None,
    on_output: OnOutput | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
    pulling: Pulling = _unseen,
    owner: Mapping[str, str] | None = None,
    connect: Connect | None = None,
) -> RunRecord:
    """Run `spec` (see `execute`), pulling its image first when it is absent.

    `choice` is where the image reference came from (the dev image is never pulled); by
    default the reference in `spec`. `owner`: the runner container's labels (see `execute`).
    Raises what `execute` raises; ImageError (4) when the image is absent and cannot be
    pulled; Interrupted (130) when `cancel` was set before the pull, or a KeyboardInterrupt
    ended it: nothing ran then.
    """

    def run() -> RunRecord:
        return execute(
            engine,
            workspace,
            spec,
            on_output=on_output,
            cancel=cancel,
            run_id=run_id,
            owner=owner,
            connect=connect,
        )

    try:
        return run()
    except ImageError:
        if engine.image_inspect(spec.image) is not None:
            raise  # the image is there: something else is wrong
    if cancel is not None and cancel.is_set():  # a stop asked for while creating the container
        raise Interrupted(f"interrupted before pulling {spec.image}; nothing ran")
    from roscoe.images.choice import ImageChoice
    from roscoe.images.ensure import ensure_image

    try:
        with pulling(spec.image) as progress:
            ensure_image(engine, choice or ImageChoice(spec.image, "run"), "missing", progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while pulling {spec.image}; nothing ran") from None
    return run()
