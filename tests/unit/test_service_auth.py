"""The bearer-token check."""

from __future__ import annotations

import pytest

from roscoe.service.auth import authorized

TOKEN = "tok-123456789"


def test_the_right_bearer_token_is_authorized() -> None:
    assert authorized(f"Bearer {TOKEN}", TOKEN)
    assert authorized(f"bearer {TOKEN}", TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        TOKEN,
    ],
)
def test_anything_else_is_refused(header: str | None) -> None:
    assert not authorized(header, TOKEN)


def test_an_empty_configured_token_authorises_nothing() -> None:
    assert not authorized("Bearer ", "")
    assert not authorized("Bearer x", "")


def test_non_ascii_headers_are_refused_not_crashed() -> None:
    assert not authorized("Bearer tök", TOKEN)
