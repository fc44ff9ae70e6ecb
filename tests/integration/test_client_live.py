"""The agent tool against the live service in the runner image, on Docker and on Podman."""

from __future__ import annotations

from typing import Any

import pytest
from service_fixtures import DEMO_CASE, DEMO_SCRIPT, LiveService, start_service

from roscoe.client import run_case_script

__all__ = ["start_service"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.engine, pytest.mark.image]


def test_the_agent_tool_against_the_live_service(
    start_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    live: LiveService = start_service()
    # No ROSCOE_URL / ROSCOE_TOKEN: the tool finds the port in the settings and the token in
    # the data dir, as it does next to a `roscoe server start`.
    monkeypatch.setenv("ROSCOE_PORT", str(live.port))

    success = run_case_script(DEMO_CASE, DEMO_SCRIPT)
    assert success.startswith("Success:"), success
    assert "exit code 0" in success

    failure = run_case_script(DEMO_CASE, "fail.py", "--some 'quoted arg'")
    assert failure.startswith("Failure:"), failure
    assert "exit code 3" in failure
    assert "about to fail" in failure

    refused = run_case_script("../outside", DEMO_SCRIPT)
    assert refused.startswith("Error:"), refused

    monkeypatch.setenv("ROSCOE_TOKEN", "not-the-token")
    assert "token mismatch" in run_case_script(DEMO_CASE, DEMO_SCRIPT)
    monkeypatch.delenv("ROSCOE_TOKEN")

    live.engine.stop_container(live.container_id, 30)
    down = run_case_script(DEMO_CASE, DEMO_SCRIPT)
    assert down.startswith("System error:"), down
    assert "roscoe server start" in down
