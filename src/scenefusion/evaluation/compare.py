"""Compare the figures of two runs row by row: proof that a refactor changed no result.

Timings (``fit_seconds``) are expected to differ and are ignored; every other number of every
comparison row (accuracy, CI, P/R/F1 per class and macro, log-loss, confusion matrix,
validation scores) must match to ``tolerance``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..files import read_json_object

#: Per-row fields that measure time, not results.
TIMING_FIELDS = frozenset({"fit_seconds"})


def _numbers(value: Any, path: str) -> dict[str, Any]:
    """Flatten nested lists/dicts into {dotted path: leaf}."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k not in TIMING_FIELDS:
                out.update(_numbers(v, f"{path}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_numbers(v, f"{path}[{i}]"))
        return out
    return {path: value}


def _differs(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return False
        return abs(a - b) > tolerance
    return a != b


def diff_runs(metrics_a: Path, metrics_b: Path, tolerance: float = 1e-9,
              fields: frozenset[str] | None = None) -> list[str]:
    """Every difference between two metrics.json files, one line each ([] = identical).

    ``fields`` limits the per-row comparison to those keys (None: every key the older file
    has), so a newer run may carry extra metadata without counting as a change.
    """
    rows = []
    for path in (metrics_a, metrics_b):
        data = read_json_object(path, required=("results",))
        rows.append({r["name"]: r for r in data["results"]})
    a, b = rows
    problems = [f"row only in {metrics_a}: {n}" for n in sorted(set(a) - set(b))]
    problems += [f"row only in {metrics_b}: {n}" for n in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        keys = [k for k in a[name] if fields is None or k in fields]
        flat_a = _numbers({k: a[name][k] for k in keys}, name)
        flat_b = _numbers({k: b[name].get(k) for k in keys}, name)
        for key, value in flat_a.items():
            if _differs(value, flat_b.get(key), tolerance):
                problems.append(f"{key}: {value!r} != {flat_b.get(key)!r}")
    return problems
