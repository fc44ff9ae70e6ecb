"""Whether the runner container already running can stay: its roscoe version against this
CLI's, its settings against those asked for, and whether it still reaches its engine.
`lifecycle.start` decides with these whether to keep it, hold it with a warning (another
version, otherwise as asked: it stays until --replace or restart) or replace it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roscoe.config.settings import ENV_HOST_WORKSPACE
from roscoe.labels import LABEL_CONFIG_HASH
from roscoe.runner import container as runner
from roscoe.runner import health
from roscoe.runner.layout import ENV_PORT, ENV_RUNNER_IMAGE, RunnerConfig
from roscoe.runner.plan import StartPlan, config_hash

if TYPE_CHECKING:
    from roscoe.engine.protocols import RunnerEngine
    from roscoe.images.version import VersionMatch


def running_version(engine: RunnerEngine, ours: dict[str, Any]) -> VersionMatch:
    """How the version of the image our runner runs compares with this CLI's."""
    from roscoe.images.version import version_match

    image = engine.image_inspect(str(ours.get("Image") or "")) if ours.get("Image") else None
    return version_match(runner.image_version(image))


def other_version(
    ours: dict[str, Any],
    verdict: VersionMatch | None,
    plan: StartPlan,
    config: RunnerConfig,
) -> tuple[str, str] | None:
    """(warning, hint) when our running runner is on another roscoe version and nothing but
    its image sets it apart from what was asked: it stays until --replace or restart.
    `verdict`: the running image's version against this CLI's (None: the same image)."""
    if runner.status_of(ours) != "running" or verdict is None:
        return None
    if verdict.status != "differs":
        return None
    running_ref = runner.env_value(ours, ENV_RUNNER_IMAGE) or ""
    labels = (ours.get("Config") or {}).get("Labels") or {}
    same_otherwise = (
        runner.env_value(ours, ENV_PORT) == str(plan.port)
        and runner.env_value(ours, ENV_HOST_WORKSPACE) == str(plan.workspace)
        and labels.get(LABEL_CONFIG_HASH)
        == config_hash({**config.environment(), ENV_RUNNER_IMAGE: running_ref})
    )
    if not same_otherwise:
        return None
    return (
        f"the runner is on roscoe {verdict.image_version} ({running_ref}); this CLI is "
        f"{verdict.cli_version} and pins {plan.image.ref}",
        f"`roscoe server start --replace` or `roscoe server restart` moves it to "
        f"{verdict.cli_version} (runs in flight get the shutdown grace to finish)",
    )


def why_replace(
    ours: dict[str, Any],
    verdict: VersionMatch | None,
    plan: StartPlan,
    config: RunnerConfig,
) -> str | None:
    """Why our existing runner cannot stay, or None when it is what was asked for.
    `verdict` as for other_version."""
    status = runner.status_of(ours)
    if status != "running":
        return f"it was {status}"
    if verdict is not None:
        return (
            f"it is on roscoe {verdict.image_version}, this CLI is {verdict.cli_version}"
            if verdict.status == "differs"
            else f"it runs another image than {plan.image.ref}"
        )
    if runner.env_value(ours, ENV_PORT) != str(plan.port):
        return f"it listens on port {runner.env_value(ours, ENV_PORT)}, not {plan.port}"
    if runner.env_value(ours, ENV_HOST_WORKSPACE) != str(plan.workspace):
        return f"it serves another workspace than {plan.workspace}"
    labels = (ours.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_CONFIG_HASH) != config_hash(config.environment()):
        return "it was started with other settings (-e, run limits, concurrency, queue or folders)"
    return None


def why_cut_off(port: int) -> str | None:
    """Why a runner that is as asked must still be replaced: it cannot reach its engine."""
    look = health.probe(port, engine=True)
    if look.answering and look.engine_reachable is False:
        return f"it cannot reach the engine ({look.engine_error or 'no answer'})"
    return None
