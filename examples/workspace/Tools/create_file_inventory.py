#!/usr/bin/env python3
"""Inventory of a folder: every file's path, size, type and SHA-256, as JSON, CSV or Markdown.

Standard library only, so it runs in any image with Python 3.8+. Under roscoe it walks the
case folder (/data, the working directory):

    roscoe run demo-case create_file_inventory.py -- --format md
    roscoe run demo-case create_file_inventory.py -- --format csv --output inventory.csv

Symlinks are listed, never followed. The output file, when inside the walked folder, is
left out of the inventory (it is being written while the folder is walked).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import mimetypes
import os
import sys
from datetime import datetime, timezone

# Leading bytes of common binary formats, for files whose name says nothing.
SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
]
CHUNK = 1 << 20


def file_type(path: str, head: bytes) -> str:
    guessed, _ = mimetypes.guess_type(path)
    if guessed:
        return guessed
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def describe(root: str, path: str) -> dict[str, object]:
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    entry: dict[str, object] = {"path": relative}
    if os.path.islink(path):
        entry.update(size=None, type="inode/symlink", sha256=None, target=os.readlink(path))
        return entry
    digest = hashlib.sha256()
    head = b""
    size = 0
    try:
        with open(path, "rb") as handle:
            while True:
                block = handle.read(CHUNK)
                if not block:
                    break
                if not head:
                    head = block[:512]
                digest.update(block)
                size += len(block)
    except OSError as exc:
        entry.update(size=None, type=None, sha256=None, error=exc.strerror or str(exc))
        return entry
    entry.update(size=size, type=file_type(path, head), sha256=digest.hexdigest())
    return entry


def inventory(root: str, skip: set[str]) -> list[dict[str, object]]:
    entries = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            path = os.path.join(folder, name)
            if os.path.realpath(path) in skip and not os.path.islink(path):
                continue
            entries.append(describe(root, path))
    return entries


def as_json(root: str, entries: list[dict[str, object]]) -> str:
    total = sum(int(e["size"] or 0) for e in entries)  # type: ignore[call-overload]
    document = {
        "root": os.path.abspath(root),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": len(entries),
        "total_bytes": total,
        "entries": entries,
    }
    return json.dumps(document, indent=2) + "\n"


def as_csv(entries: list[dict[str, object]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "size", "type", "sha256"])
    for e in entries:
        writer.writerow(
            [e["path"], "" if e["size"] is None else e["size"], e["type"] or "", e["sha256"] or ""]
        )
    return text.getvalue()


def as_markdown(root: str, entries: list[dict[str, object]]) -> str:
    total = sum(int(e["size"] or 0) for e in entries)  # type: ignore[call-overload]
    lines = [
        f"# Inventory of {os.path.abspath(root)}",
        "",
        f"{len(entries)} files, {total} bytes.",
        "",
        "| path | size | type | sha256 |",
        "| --- | ---: | --- | --- |",
    ]
    for e in entries:
        path = str(e["path"]).replace("|", "\\|")
        size = "" if e["size"] is None else str(e["size"])
        note = f"-> {e['target']}" if "target" in e else (e.get("error") or "")
        lines.append(f"| {path} | {size} | {e['type'] or note} | {e['sha256'] or note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="folder to walk (default: .)")
    parser.add_argument("--format", choices=["json", "csv", "md"], default="json")
    parser.add_argument("--output", help="write here instead of stdout")
    options = parser.parse_args(argv)
    if not os.path.isdir(options.root):
        print(f"create_file_inventory: {options.root} is not a folder", file=sys.stderr)
        return 2
    skip = {os.path.realpath(options.output)} if options.output else set()
    entries = inventory(options.root, skip)
    if options.format == "json":
        text = as_json(options.root, entries)
    elif options.format == "csv":
        text = as_csv(entries)
    else:
        text = as_markdown(options.root, entries)
    if options.output:
        with open(options.output, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        print(f"wrote {len(entries)} entries to {options.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
