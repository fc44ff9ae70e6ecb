"""The bearer-token check every endpoint but /health goes through."""

from __future__ import annotations

import hmac


def authorized(header: str | None, token: str) -> bool:
    """True when an Authorization header carries exactly `token` as a bearer credential.

    Compared in constant time, so response timing says nothing about how much of a guess was
    right. An empty configured token never authorises anything.
    """
    if not header or not token:
        return False
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode("utf-8"), token.encode("utf-8"))
