"""The training loop's log: one JSON object per line (log.jsonl), read back robustly."""
from __future__ import annotations

import json
from pathlib import Path

from minibert.errors import InputError


def read_jsonl(path) -> list[dict]:
    """The rows of a JSONL log. A torn last line (the process was killed mid-write) is skipped."""
    rows = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n != len(lines) - 1:
                raise InputError(f"{path}: line {n + 1} is not valid JSON") from None
    return rows
