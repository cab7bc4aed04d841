"""Honest evaluation of scene-classification runs: metrics, bootstrap CIs, plots, reports.

The plotting functions are imported on first use: importing matplotlib costs ~0.5 s, and a run
whose plots a helper process draws (see :mod:`.background`) never needs it in the main process.
"""

from .metrics import (
    COMPARISON_COLUMNS,
    EvaluationResult,
    bootstrap_accuracy,
    comparison_table,
    evaluate,
)
from .report import load_results, safe_name, write_reports

__all__ = [
    "COMPARISON_COLUMNS",
    "EvaluationResult",
    "bootstrap_accuracy",
    "comparison_table",
    "evaluate",
    "load_results",
    "plot_comparison",
    "plot_confusion_matrix",
    "row_normalize",
    "safe_name",
    "write_reports",
]


_PLOTS = {"plot_comparison", "plot_confusion_matrix", "row_normalize"}


def __getattr__(name: str):
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
