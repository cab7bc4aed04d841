"""Honest evaluation of scene-classification runs: metrics, bootstrap CIs, plots, reports."""

from .metrics import (
    COMPARISON_COLUMNS,
    EvaluationResult,
    bootstrap_accuracy,
    comparison_table,
    evaluate,
)
from .plots import plot_comparison, plot_confusion_matrix, row_normalize
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
