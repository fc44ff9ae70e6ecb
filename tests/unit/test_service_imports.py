"""The CLI and the agent tool never load the service's web stack (FastAPI, uvicorn...):
it lives in the runner image, and importing it would cost every `roscoe` invocation."""

from __future__ import annotations

import subprocess
import sys

import pytest

WEB_STACK = ("fastapi", "starlette", "uvicorn", "pydantic", "anyio", "h11")


@pytest.mark.parametrize(
    "code",
    [
        # main(), not the console script's run(), which leaves the process when it is done
        "import sys\n"
        "from roscoe.cli.app import main\n"
        "sys.argv = ['roscoe', '--version']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n",
        "import roscoe.cli.app, roscoe.cli.run, roscoe.client\n",
        "import roscoe.service.validate, roscoe.service.api, roscoe.service.scheduler\n",
    ],
    ids=["--version", "cli-and-client", "service-core"],
)
def test_the_web_stack_is_not_imported(code: str) -> None:
    probe = (
        "import sys\n"
        + code
        + (
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {WEB_STACK!r})\n"
            "print('LOADED', loaded)\n"
        )
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout.decode()
