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
    headers = (["accuracy", "95% CI", "macro P", "macro R", "macro F1", "log-loss", "val acc"]
               if wide else ["acc", "95% CI", "F1", "logloss", "val"])
    caption = (None if wide else
               "acc: test accuracy, F1: macro F1, val: validation accuracy; macro P/R in report.md")
    out = Table(title=title, caption=caption, pad_edge=False)
    out.add_column("name", overflow="fold", min_width=20)
    for c in headers:
        out.add_column(c, justify="right", no_wrap=True)
    for row in table.itertuples(index=False):
        ci = ("" if row.ci_low is None or row.ci_low != row.ci_low
              else f"{row.ci_low:.3f}-{row.ci_high:.3f}")
        val = getattr(row, "val_accuracy", None)
        pr = [f"{row.macro_precision:.3f}", f"{row.macro_recall:.3f}"] if wide else []
        out.add_row(escape(row.name), f"{row.accuracy:.3f}", ci, *pr, f"{row.macro_f1:.3f}",
                    f"{row.log_loss:.3f}", "" if val is None or val != val else f"{val:.3f}")
    console.print(out)
