"""The order of a comparison: by the figure that chose the saved models, never by test accuracy.

A table sorted by test accuracy invites a reader to pick its top row, which is choosing on the
test split. Rows are therefore ranked by the key the run itself selects with (grouped
cross-validation accuracy where the grid used it, else validation accuracy; ties broken by the
lower log-loss, then by name), so its first row is the model saved as ``best/``. Only results
with no selection figure at all (a bare evaluation) fall back to test accuracy, and
:func:`order_caption` says which order a table is in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

#: what each ordering is called in captions
_ORDER_NAMES = {
    "cv": "grouped cross-validation accuracy over the training groups",
    "val": "validation accuracy",
    "test": "test accuracy (no run has a validation or cross-validation figure)",
}


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def selection_key(extra: dict[str, Any]) -> tuple[float, float]:
    """The run's own selection key from a result's ``extra``: (accuracy, -log-loss) of grouped
    cross-validation where present, else of validation; (-1, 0) without either."""
    for acc, loss in (("cv_accuracy", "cv_log_loss"), ("val_accuracy", "val_log_loss")):
        a = _finite(extra.get(acc))
        if a is not None:
            return a, -(_finite(extra.get(loss)) or 0.0)
    return -1.0, 0.0


def order_by_selection(table: pd.DataFrame, results: Sequence[Any]) -> pd.DataFrame:
    """``table`` (one row per result, any order) ranked by the selection key, best first."""
    if table.empty:
        return table.reset_index(drop=True)
    keys = {r.name: selection_key(r.extra) for r in results}
    if all(k[0] < 0 for k in keys.values()):
        ranked = table.sort_values(["accuracy", "name"], ascending=[False, True],
                                   kind="mergesort")
    else:
        ranked = table.assign(_acc=[keys[n][0] for n in table["name"]],
                              _loss=[keys[n][1] for n in table["name"]])
        ranked = ranked.sort_values(["_acc", "_loss", "name"], ascending=[False, False, True],
                                    kind="mergesort").drop(columns=["_acc", "_loss"])
    return ranked.reset_index(drop=True)


def table_order(table: pd.DataFrame) -> str:
    """Which figure ``table`` is ranked by: ``cv``, ``val`` or ``test``."""
    for column, order in (("cv_accuracy", "cv"), ("val_accuracy", "val")):
        if column in table and bool(table[column].notna().any()):
            return order
    return "test"


def order_caption(table: pd.DataFrame) -> str:
    """One sentence saying what the rows are ranked by and why it is not test accuracy."""
    order = table_order(table)
    if order == "test":
        return f"Ranked by {_ORDER_NAMES['test']}."
    return (f"Ranked by {_ORDER_NAMES[order]}, the figure that chose best/ (its first row); "
            "test accuracy is only reported: choosing by it would fit the test split.")
