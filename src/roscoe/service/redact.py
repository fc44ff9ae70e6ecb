"""Scrub secrets from anything the service writes to its log (what `roscoe logs` shows).

Applied to every log line, whatever produced it: the service's own token, Authorization
headers, bearer tokens, credentials inside URLs, and values of variables or fields whose
names say they hold a credential. Over-redacting a harmless value is the cheap mistake here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Name fragments that mark a variable or field as a credential.
_CREDENTIAL_WORDS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "SIGNATURE",
    "PRIVATE",
    "CERT",
)
_CREDENTIAL_NAME = re.compile("|".join(_CREDENTIAL_WORDS), re.IGNORECASE)

# scheme://user:pass@host or scheme://token@host -> scheme://***@host
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@\"']+@")
# "Authorization: anything" up to the end of the line or the closing quote
_AUTH_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+", re.IGNORECASE
)
# Bearer/Basic/Token credentials wherever they appear
_SCHEME_CREDENTIAL = re.compile(
    r"(?P<scheme>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}", re.I
)
# NAME=value or --name=value or "name": "value" where the name looks like a credential
_NAMED_VALUE = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>[\"']?\s*[:=]\s*)(?P<quote>[\"']?)"
    r"(?P<value>[^\s\"',;&}]+)"
)
# Well-known token shapes that need no name to be recognised.
_TOKEN_SHAPES = re.compile(
    r"\b(?:rsc_[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)

# Secrets shorter than this are not searched for literally: masking every "a" helps nobody.
_MIN_LITERAL = 4


def is_credential_name(name: str) -> bool:
    """True when a variable or field name suggests it holds a credential."""
    return bool(_CREDENTIAL_NAME.search(name))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and every credential-looking value replaced by ***."""
    for secret in sorted(
        (s for s in secrets if s and len(s) >= _MIN_LITERAL), key=len, reverse=True
    ):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('name')}{MASK}", text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group('scheme')}{MASK}", text)
    text = _NAMED_VALUE.sub(_mask_named, text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _mask_named(match: re.Match[str]) -> str:
    if not is_credential_name(match.group("name")) or match.group("value") == MASK:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{match.group('quote')}{MASK}"


def redact_fields(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A structure (dicts, lists, strings) with credential fields masked, strings redacted."""
    secrets = tuple(secrets)
    if isinstance(value, Mapping):
        return {
            k: MASK
            if isinstance(k, str) and is_credential_name(k) and isinstance(v, str)
            else redact_fields(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_fields(v, secrets) for v in value]
    if isinstance(value, str):
        return redact(value, secrets)
    return value
