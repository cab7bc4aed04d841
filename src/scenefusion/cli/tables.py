"""Result tables for the terminal (report.md / report.html carry every column)."""

from __future__ import annotations

from typing import Any

from rich.measure import Measurement
from rich.table import Table

from .app import console
from .text import shown


def print_results(results: list[Any], title: str) -> None:
    """Comparison table of evaluation results, ranked as the run chose (see
    :mod:`scenefusion.evaluation.ordering`)."""
    from ..evaluation import comparison_table

    print_table(comparison_table(results), title)


def print_table(table: Any, title: str) -> None:
    """The comparison as a rich table, figures rounded to what their CIs support.

    On terminals narrower than 110 columns, macro precision/recall are left out and headers
    shortened so that run names stay readable; the caption says so. Output that is not a
    terminal (a log file, a pipe) gets every column and whole names on one line each, since
    nothing there can be widened to read a name folded mid-word.
    """
    from ..evaluation.ordering import order_caption, table_order
    from ..evaluation.rounding import fmt, supported_decimals

    terminal = console.is_terminal
    wide = console.width >= 110 or not terminal
    d = supported_decimals(table)
    ranks = table_order(table)
    # where grouped cross-validation picked the models, its accuracy is the figure to read
    cv = ranks == "cv"
    headers = (["accuracy", "95% CI", "macro P", "macro R", "macro F1", "log-loss", "val acc"]
               if wide else ["acc", "95% CI", "F1", "logloss", "val"])
    headers += (["CV acc"] if wide else ["cv"]) if cv else []
    ranked = {"cv": len(headers) - 1, "val": len(headers) - 1 - cv}.get(ranks)
    if ranked is not None:
        headers[ranked] += " *"
    caption = ("" if wide else
               "acc: test accuracy, F1: macro F1, val: validation accuracy"
               + (", cv: grouped cross-validation accuracy over training groups" if cv else "")
               + "; macro P/R in report.md. ")
    caption += ("* " if ranked is not None else "") + order_caption(table)
    out = Table(title=title, caption=shown(caption), pad_edge=False)
    out.add_column("name", overflow="fold", min_width=20, no_wrap=not terminal)
    for c in headers:
        out.add_column(c, justify="right", no_wrap=True)
    for row in table.itertuples(index=False):
        ci = ("" if row.ci_low is None or row.ci_low != row.ci_low
              else f"{fmt(row.ci_low, d)}-{fmt(row.ci_high, d)}")
        pr = [fmt(row.macro_precision, d), fmt(row.macro_recall, d)] if wide else []
        selection = [_figure(getattr(row, "val_accuracy", None), d)]
        selection += [_figure(getattr(row, "cv_accuracy", None), d)] if cv else []
        out.add_row(shown(row.name), fmt(row.accuracy, d), ci, *pr, fmt(row.macro_f1, d),
                    fmt(row.log_loss, d), *selection)
    if terminal:
        console.print(out)
    else:  # as wide as the longest row needs, never folded to an assumed 80 columns
        need = Measurement.get(console, console.options.update(width=10_000), out).maximum
        assumed, console.width = console.width, max(need, console.width)
        try:
            console.print(out)
        finally:
            console.width = assumed


def _figure(value: float | None, decimals: int) -> str:
    """The figure, or empty where there is none (None or NaN)."""
    return "" if value is None or value != value else f"{value:.{decimals}f}"
