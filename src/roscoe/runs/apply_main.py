"""`python -m roscoe.runs.apply_main CASE RUN_FOLDER`: land a preview inside a container.

The execution service sees the workspace read-only, so it applies a preview in a one-shot
container of the runner image (`runs.apply_container`): the case read-write at /data, the
run's folder read-only at /run-folder, the same user, no capabilities and no network as a
run. This lands the changes exactly as `roscoe runs apply` does on the host, and says what
happened in one JSON line on stdout: {"applied": N}, {"conflicts": [...]} or {"error": ...};
exit 0, 1 (a conflict: nothing applied) or 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from roscoe.errors import RoscoeError
from roscoe.runs.landing import Conflict, apply_changes
from roscoe.runs.preview import PREVIEW_DIR, load_base
from roscoe.runs.records import RECORD_FILE

USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(json.dumps({"error": "usage: python -m roscoe.runs.apply_main CASE RUN_FOLDER"}))
        return USAGE
    case, folder = Path(args[0]), Path(args[1])
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
        found = record.get("changes") or {}
        count = apply_changes(
            case, folder / PREVIEW_DIR, found, load_base(folder).paths, str(record.get("id"))
        )
    except Conflict as exc:
        print(json.dumps({"conflicts": exc.conflicts}))
        return 1
    except RoscoeError as exc:
        print(json.dumps({"error": exc.message}))
        return USAGE
    except (OSError, ValueError, AttributeError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return USAGE
    print(json.dumps({"applied": count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
