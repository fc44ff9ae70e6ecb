"""`roscoe image ...`: which runner image is in use, and pulling it."""

from __future__ import annotations

import typer

from roscoe.cli import render
from roscoe.cli.context import state
from roscoe.cli.options import Json, bracketed
from roscoe.config.settings import env_name

app = typer.Typer(
    name="image",
    help=(
        "The runner image: which one is in use, and pulling it.\n\n"
        "Examples:\n\n"
        "  roscoe image show\n\n"
        "  roscoe image pull --image 127.0.0.1:5000/team/roscoe-runner:v0.1.0"
    ),
    no_args_is_help=True,
)

IMAGE_HELP = "Image reference to use instead of the pinned one. " + bracketed(
    f"env: {env_name('image')}"
)
LOCAL_HELP = "Use roscoe-runner:dev, built here by `make build-image` (never pulled)."


@app.command("pull")
def pull_command(
    ctx: typer.Context,
    image: str = typer.Option(None, "--image", help=IMAGE_HELP, show_default=False),
    use_local_image: bool = typer.Option(False, "--use-local-image", help=LOCAL_HELP),
) -> None:
    """Pull the runner image now, with progress.

    Pulls even when the image is present (an updated tag is fetched). With --use-local-image
    nothing is pulled: it only checks that the dev image is built. Exits 4 when the pull fails.

    Examples:
      roscoe image pull
      roscoe image pull --image 127.0.0.1:5000/team/roscoe-runner:v0.1.0
      roscoe --runtime podman image pull
    """
    from roscoe.cli.progress import PullView
    from roscoe.images.choice import choose_image
    from roscoe.images.ensure import ensure_image

    st = state(ctx)
    choice = choose_image(st.settings, image, use_local_image)
    engine = st.engine()
    with PullView(choice.ref, quiet=st.quiet) as view:
        status = ensure_image(engine, choice, "always", view)
    for message, hint in status.warnings:
        render.warn(message, hint)
    what = status.digest or status.image_id or ""
    verb = "pulled" if status.pulled else "present (built locally)"
    render.console().print(f"{render.escape(status.ref)} {verb} {what}".rstrip(), soft_wrap=True)


@app.command("show")
def show_command(
    ctx: typer.Context,
    image: str = typer.Option(None, "--image", help=IMAGE_HELP, show_default=False),
    use_local_image: bool = typer.Option(False, "--use-local-image", help=LOCAL_HELP),
    json_output: Json = False,
) -> None:
    """Show the runner image in use: where the choice came from, whether it is here, its version.

    Never pulls. Exits 0 whether or not the image is present.

    Examples:
      roscoe image show
      ROSCOE_RUNNER_IMAGE=roscoe-runner:dev roscoe image show --json
    """
    from roscoe.images.choice import choose_image
    from roscoe.images.ensure import image_status

    st = state(ctx)
    choice = choose_image(st.settings, image, use_local_image)
    engine = st.engine()
    status = image_status(engine, choice)
    if json_output:
        data = status.to_json()
        data["engine"] = engine.kind
        render.print_json(data)
        return
    out = render.console()
    rows = [
        ("image", status.ref),
        ("source", status.source),
        ("engine", engine.kind),
        ("present", "yes" if status.present else "no (pulled on first use)"),
    ]
    if status.present:
        rows += [
            ("digest", status.digest or "none (built locally, never pushed or pulled)"),
            ("id", status.image_id or "unknown"),
            ("version", status.version or "unknown (no version label)"),
            ("cli version", status.version_match.cli_version),
            ("match", status.version_match.status),
        ]
    for key, value in rows:
        out.print(f"{key + ':':<13}{render.escape(value)}", soft_wrap=True)
    for message, hint in status.warnings:
        render.warn(message, hint)
