"""Applying a preview from the execution service: in a one-shot container of the runner image.

The runner sees the workspace read-only (a bug in the service cannot write into a case), so
the landing happens where runs happen: a sibling container with the case read-write at
/data, the run's folder read-only at /run-folder, the run's user, no capabilities, no
network, the run's limits, and `runs.apply_main` as its command. It is removed in every case.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.errors import OperationFailed, RoscoeError
from roscoe.runs.host import selinux_enforcing
from roscoe.runs.landing import Conflict
from roscoe.runs.plan import BASE_ENV, PIDS_LIMIT, TMPFS, container_name, default_user, run_labels
from roscoe.runs.preview import Base
from roscoe.runs.records import RunRecord

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunEngine

APPLY_TIMEOUT_S = 600.0  # a backstop: landing files takes as long as copying them
APPLY_MEMORY = 512 << 20
ANSWER_BYTES = 1 << 20  # what apply_main prints: one JSON line
APPLY_COMMAND = ["python3", "-m", "roscoe.runs.apply_main", "/data", "/run-folder"]


def land_in_container(engine: RunEngine, image: str, record: RunRecord, base: Base) -> int:
    """Apply the preview of `record` with `runs.apply_main` in a container; how many entries
    changed. Conflict when the case changed since the run; OperationFailed otherwise."""
    relabel = ",z" if selinux_enforcing() else ""
    folder = paths.host_runs_dir() / record.id
    name = f"{record.id}-apply"
    container_id = engine.run_create(
        name=container_name(name),
        image=image,
        entrypoint=["timeout"],
        command=["-s", "KILL", f"{APPLY_TIMEOUT_S:g}", *APPLY_COMMAND],
        user=default_user(),
        workdir="/data",
        env=BASE_ENV,
        labels=run_labels(name, time.time(), APPLY_TIMEOUT_S),
        binds=[f"{base.case_path}:/data:rw{relabel}", f"{folder}:/run-folder:ro{relabel}"],
        network="none",
        memory_bytes=APPLY_MEMORY,
        cpus=None,
        pids_limit=PIDS_LIMIT,
        tmpfs=TMPFS,
        userns="keep-id" if engine.podman_rootless() else None,
    )
    try:
        output = _run(engine, container_id)
    finally:
        with contextlib.suppress(RoscoeError):  # labelled: `roscoe gc` removes it later
            engine.run_remove(container_id)
    answer = _answer(output)
    if "applied" in answer:
        return int(answer["applied"])
    if "conflicts" in answer:
        raise Conflict(record.id, [str(c) for c in answer["conflicts"]])
    raise OperationFailed(f"applying the preview failed: {answer.get('error', 'no answer')}")


def _run(engine: RunEngine, container_id: str) -> bytes:
    stream = engine.run_attach(container_id)
    out = bytearray()
    try:
        engine.run_start(container_id)
        for _name, data in stream:
            if len(out) < ANSWER_BYTES:
                out += data
    finally:
        stream.close()
    engine.run_wait(container_id, timeout=APPLY_TIMEOUT_S + 30)
    return bytes(out)


def _answer(output: bytes) -> dict[str, Any]:
    for line in reversed(output.decode("utf-8", "replace").splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    shown = output.decode("utf-8", "replace").strip()[-300:]
    return {"error": f"no answer from the apply container ({shown or 'no output'})"}
