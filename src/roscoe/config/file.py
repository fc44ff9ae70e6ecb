"""Reading the effective settings, and changing config.toml without losing its comments.

Reading goes through settings.py (tomllib); writing uses tomlkit so that a user's comments,
ordering and layout survive `roscoe config set` / `unset`. Every write is atomic
(config/atomic.py), so a crash never leaves half a config file behind.
Returns results; never prints.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roscoe.config import paths
from roscoe.config.atomic import write_atomic
from roscoe.config.settings import SETTINGS, Resolved, Settings, validate
from roscoe.errors import UsageError

if TYPE_CHECKING:
    from tomlkit import TOMLDocument


@dataclass(frozen=True)
class ConfigReport:
    """Every setting's effective value and where it came from."""

    path: Path
    exists: bool
    values: list[Resolved]

    def to_json(self) -> dict[str, Any]:
        return {
            "config_file": str(self.path),
            "config_file_exists": self.exists,
            "settings": {
                r.key: {
                    "value": r.value,
                    "source": source_kind(r.source),
                    "env": SETTINGS[r.key].env,
                    "default": SETTINGS[r.key].default,
                }
                for r in self.values
            },
        }


@dataclass(frozen=True)
class ConfigChange:
    """What `set` or `unset` did to the file."""

    path: Path
    key: str
    value: Any  # the value written (set), None (unset)
    changed: bool  # False: unset of a key the file did not hold


def source_kind(source: str) -> str:
    """'env ROSCOE_PORT' -> 'env'; the other sources are already one word or 'config file'."""
    if source.startswith("env "):
        return "env"
    return {"config file": "config"}.get(source, source)


def effective(
    settings: Settings, flags: dict[str, Any] | None = None, *, pinned_image: str | None = None
) -> ConfigReport:
    """Resolve every setting (flags > env > config file > default). Invalid file: UsageError.

    `pinned_image` is what no image means (images.version.pinned_image(), which config/ does
    not import: it sits below images/)."""
    flags = flags or {}
    values = []
    for key in SETTINGS:
        found = settings.resolve(key, flags.get(key))
        # Show what "no value" means for these two: the real default path and image.
        if key == "workspace":
            found = settings.workspace(flags.get(key))
        elif key == "image" and found.value is None and pinned_image is not None:
            found = Resolved(key, pinned_image, found.source)
        values.append(found)
    path = settings.config_path
    return ConfigReport(path, path.is_file(), values)


def set_value(key: str, text: str, path: Path | None = None) -> ConfigChange:
    """Validate `text` for `key` and write it, creating the file and folder when absent."""
    _known(key)
    path = path or paths.config_file()
    value = _toml_value(validate(key, text, "roscoe config set"))
    doc = _read(path)
    *tables, leaf = key.split(".")
    table: Any = doc
    walked: list[str] = []
    for name in tables:
        walked.append(name)
        if name not in table:
            import tomlkit

            table[name] = tomlkit.table()
        table = table[name]
        if not isinstance(table, MutableMapping):
            raise UsageError(
                f"{path}: '{'.'.join(walked)}' is a value, not a table, so {key} cannot be set",
                hint=f"remove it with `roscoe config unset {'.'.join(walked)}` first",
            )
    table[leaf] = value
    _write_atomic(path, doc.as_string())
    return ConfigChange(path, key, value, True)


def unset_value(key: str, path: Path | None = None) -> ConfigChange:
    """Remove `key` from the file. A key the file does not hold is not an error (idempotent).

    Unknown keys that ARE in the file may be removed too: that is how a user repairs a file
    that every other command refuses.
    """
    path = path or paths.config_file()
    if not path.exists():
        _known(key)
        return ConfigChange(path, key, None, False)
    doc = _read(path)
    *tables, leaf = key.split(".")
    chain: list[Any] = [doc]
    for name in tables:
        inner = chain[-1].get(name) if isinstance(chain[-1], MutableMapping) else None
        if not isinstance(inner, MutableMapping):
            chain = []
            break
        chain.append(inner)
    if not chain or not isinstance(chain[-1], MutableMapping) or leaf not in chain[-1]:
        _known(key)
        return ConfigChange(path, key, None, False)
    del chain[-1][leaf]
    # Drop tables the removal left empty (comments inside keep a table alive).
    for depth in range(len(tables), 0, -1):
        if _is_blank(chain[depth]):
            del chain[depth - 1][tables[depth - 1]]
    _write_atomic(path, doc.as_string())
    return ConfigChange(path, key, None, True)


def _known(key: str) -> None:
    if key not in SETTINGS:
        raise UsageError(
            f"unknown setting '{key}'",
            hint=f"known settings: {', '.join(SETTINGS)}",
        )


def _toml_value(value: Any) -> Any:
    # 300.0 reads better as 300 in a file people edit by hand.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read(path: Path) -> TOMLDocument:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}",
            hint="fix the file by hand (or remove it), then try again",
        ) from exc


def _is_blank(table: Any) -> bool:
    from tomlkit.items import Null, Whitespace

    body = getattr(getattr(table, "value", table), "body", None)
    if body is None:
        return len(table) == 0
    # tomlkit leaves a Null where a key was deleted.
    return all(isinstance(item, Whitespace | Null) for _, item in body)


def _write_atomic(path: Path, text: str) -> None:
    """Write the file atomically (config.atomic), keeping its mode; follow a symlink to the
    real file (dotfile managers link config files) instead of replacing the link."""
    target = path.resolve() if path.is_symlink() else path
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        paths.ensure_dir(target.parent)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        write_atomic(target, text, mode=mode)
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="set ROSCOE_CONFIG_DIR to a folder you can write",
        ) from exc
