"""Result tables for the terminal (report.md / report.html carry every column)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from .app import console


def print_results(results: list[Any], title: str) -> None:
    """Comparison table of evaluation results (best first)."""
    from ..evaluation import comparison_table

    print_table(comparison_table(results), title)


def print_table(table: Any, title: str) -> None:
    """The comparison as a rich table.

    On terminals narrower than 110 columns, macro precision/recall are left out and headers
    shortened so that run names stay readable; the caption says so.
    """
    wide = console.width >= 110
    # where grouped cross-validation picked the models, its accuracy is the figure to read
    cv = "cv_accuracy" in table and bool(table["cv_accuracy"].notna().any())
    headers = (["accuracy", "95% CI", "macro P", "macro R", "macro F1", "log-loss", "val acc"]
               if wide else ["acc", "95% CI", "F1", "logloss", "val"])
    headers += (["CV acc"] if wide else ["cv"]) if cv else []
    caption = (None if wide else
               "acc: test accuracy, F1: macro F1, val: validation accuracy"
               + (", cv: grouped cross-validation accuracy over training groups" if cv else "")
               + "; macro P/R in report.md")
    out = Table(title=title, caption=caption, pad_edge=False)
    out.add_column("name", overflow="fold", min_width=20)
    for c in headers:
        out.add_column(c, justify="right", no_wrap=True)
    for row in table.itertuples(index=False):
        ci = ("" if row.ci_low is None or row.ci_low != row.ci_low
              else f"{row.ci_low:.3f}-{row.ci_high:.3f}")
        pr = [f"{row.macro_precision:.3f}", f"{row.macro_recall:.3f}"] if wide else []
        selection = [_figure(getattr(row, "val_accuracy", None))]
        selection += [_figure(getattr(row, "cv_accuracy", None))] if cv else []
        out.add_row(escape(row.name), f"{row.accuracy:.3f}", ci, *pr, f"{row.macro_f1:.3f}",
                    f"{row.log_loss:.3f}", *selection)
    console.print(out)


def _figure(value: float | None) -> str:
    """Three decimals, or empty where there is no figure (None or NaN)."""
    return "" if value is None or value != value else f"{value:.3f}"
