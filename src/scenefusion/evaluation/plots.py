"""PNG plots for reports: confusion matrices, a cross-run comparison chart, saliency maps.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas,
never through ``pyplot``: no GUI backend is touched, no global figure registry grows (so
nothing can leak or need closing), and importing this module does not change the caller's
matplotlib backend.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .fonts import fonts_for
from .metrics import EvaluationResult, comparison_table

log = logging.getLogger(__name__)

#: Class and run names are user text, shown as written: "$x$" is not a formula, and a name that
#: is not valid mathtext must not crash a report after training.
_PLAIN_TEXT = mpl.rc_context({"text.parse_math": False})

# Metrics where smaller is better (sorted ascending in the comparison chart).
_LOWER_IS_BETTER = {"log_loss"}
_UNIT_INTERVAL = {
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_f1",
}


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # attach the non-interactive Agg canvas
    return fig


def _save(fig: Figure, path: str | Path, fit_outside: bool = False) -> Path:
    """Write a PNG. ``fit_outside`` grows the canvas to artists outside the axes (the
    comparison's legend) at the cost of a second draw; a confusion matrix laid out with
    tight_layout needs one draw, half the time of the 20 a default run writes."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", bbox_inches="tight" if fit_outside else None)
    fig.clear()  # drop artists now instead of waiting for GC
    log.debug("wrote %s", out)
    return out


def row_normalize(cm: np.ndarray) -> np.ndarray:
    """Divide each row by its true-class count (recall per class); empty rows stay 0."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def cell_text(value: float, count: int, normalize: bool) -> str:
    """A confusion-matrix cell: the recall share with the item count under it (a share alone
    hides whether 1.00 means 1 item or 500), or the count alone."""
    return f"{value:.2f}\n({count})" if normalize else str(count)


def wrap_name(name: str, width: int) -> str:
    """A run name on lines of at most ``width`` characters, broken after its separators
    (``:`` ``+`` ``[`` ``&`` ``,`` or a space) and mid-word only where a part is longer."""
    parts = re.findall(r"[^:+\[&,\s]*[:+\[&,\s]|[^:+\[&,\s]+$", name) or [name]
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(piece for line in lines
                     for piece in textwrap.wrap(line, width, break_long_words=True) or [line])


@_PLAIN_TEXT
def plot_confusion_matrix(
    result_or_cm: EvaluationResult | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Save a confusion-matrix heatmap (rows = true class, columns = predicted) as PNG.

    Row-normalised by default so each diagonal cell reads as that class's recall, which is
    comparable across classes of very different support, with each cell's count under it;
    counts only with ``normalize=False``.
    """
    if isinstance(result_or_cm, EvaluationResult):
        cm = np.asarray(result_or_cm.confusion_matrix)
        if title is None:
            title = result_or_cm.name
    else:
        cm = np.asarray(result_or_cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix has shape {cm.shape}, expected ({k}, {k})")
    values = row_normalize(cm) if normalize else cm.astype(np.float64)
    with fonts_for([*map(str, class_names), title or ""]) as note:
        return _draw_confusion(cm, values, class_names, path, normalize, title, note)


def _draw_confusion(cm: np.ndarray, values: np.ndarray, class_names: Sequence[str],
                    path: str | Path, normalize: bool, title: str | None, note: str) -> Path:
    k = len(class_names)
    side = max(5.0, 0.55 * k + 2.5)
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    im = ax.imshow(values, interpolation="nearest", cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall" if normalize else "count")

    ax.set_xticks(np.arange(k), labels=[str(c) for c in class_names])
    ax.set_yticks(np.arange(k), labels=[str(c) for c in class_names])
    for lbl in ax.get_xticklabels():
        lbl.set_rotation(45)
        lbl.set_horizontalalignment("right")
        lbl.set_rotation_mode("anchor")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    suffix = "(row-normalised; counts in brackets)" if normalize else "(counts)"
    # ~9 title characters per inch of figure: a long run name wraps instead of being cut
    ax.set_title(wrap_name(title or "confusion matrix", int(9 * side)) + "\n" + suffix)

    fontsize = max(5.0, min(10.0, 120.0 / k))
    threshold = vmax / 2.0
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            text = cell_text(v, int(cm[i, j]), normalize)
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if v > threshold else "black",
            )
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, color="firebrick", va="bottom")
    fig.tight_layout()
    return _save(fig, path)


@_PLAIN_TEXT
def plot_comparison(
    results: Sequence[EvaluationResult],
    path: str | Path,
    metric: str = "accuracy",
) -> Path:
    """Save a horizontal bar chart of every run on one metric, best at the top.

    For accuracy the bootstrap CI is drawn as error bars: overlapping intervals are the
    honest signal that two runs are not distinguishable on this test split.
    Bars are coloured by the run-name prefix before ``:`` (e.g. image / audio / late).
    """
    if not results:
        raise ValueError("no results to plot")
    table = comparison_table(results)
    if metric not in table.columns or metric in ("name", "n_test"):
        raise ValueError(f"unknown metric {metric!r}; choose from {list(table.columns[1:-1])}")
    ascending = metric in _LOWER_IS_BETTER
    table = table.sort_values([metric, "name"], ascending=[ascending, True], kind="mergesort")
    # barh draws the first row at the bottom; reverse so the best run is on top.
    table = table.iloc[::-1].reset_index(drop=True)
    n = len(table)
    vals = table[metric].to_numpy(dtype=np.float64)
    names = table["name"].astype(str).tolist()

    xerr = None
    if metric == "accuracy":
        lo = table["ci_low"].to_numpy(dtype=np.float64)
        hi = table["ci_high"].to_numpy(dtype=np.float64)
        if np.isfinite(lo).any():
            err_lo = np.where(np.isfinite(lo), vals - lo, 0.0)
            err_hi = np.where(np.isfinite(hi), hi - vals, 0.0)
            xerr = np.vstack([np.clip(err_lo, 0, None), np.clip(err_hi, 0, None)])

    prefixes = [nm.split(":", 1)[0] if ":" in nm else "run" for nm in names]
    palette = [f"C{i}" for i in range(10)]
    prefix_order = sorted(set(prefixes))
    color_of = {p: palette[i % len(palette)] for i, p in enumerate(prefix_order)}
    colors = [color_of[p] for p in prefixes]

    longest = max(len(nm) for nm in names)
    fig = _new_figure(max(8.0, 6.5 + 0.07 * longest), max(3.0, 0.32 * n + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(n)
    ax.barh(
        y,
        np.nan_to_num(vals),
        xerr=xerr,
        color=colors,
        ecolor="black",
        capsize=3 if n <= 40 else 0,
        height=0.7,
    )
    ax.set_yticks(y, labels=names, fontsize=9 if n <= 30 else 7)
    # Value labels go right of the CI whisker so they never collide with the caps.
    label_x = vals if xerr is None else vals + xerr[1]
    for yi, v, lx in zip(y, vals, label_x, strict=True):
        if np.isfinite(v):
            ax.text(lx, yi, f"  {v:.3f}", va="center", ha="left", fontsize=7)
    if metric in _UNIT_INTERVAL:
        ax.set_xlim(0.0, 1.12)
    else:
        top = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
        ax.set_xlim(0.0, top * 1.15 + 1e-9)
    handles = []
    if len(prefix_order) > 1:
        handles += [Patch(color=color_of[p], label=p) for p in prefix_order]
    ks = {len(r.class_names) for r in results}
    if metric in ("accuracy", "balanced_accuracy") and len(ks) == 1:
        chance = 1.0 / ks.pop()
        handles.append(
            ax.axvline(
                chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})"
            )
        )
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    label = metric.replace("_", " ")
    if xerr is not None:
        levels = {r.ci_level for r in results if r.ci_low is not None}
        level = f"{100 * levels.pop():g}% " if len(levels) == 1 else ""
        label += f" (error bars: {level}bootstrap CI)"
    ax.set_xlabel(label + (" - lower is better" if ascending else ""))
    ax.set_title(f"Run comparison: {metric}")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return _save(fig, path, fit_outside=True)


@_PLAIN_TEXT
def plot_saliency(picture: np.ndarray, grid: np.ndarray, caption: str, path: str | Path
                  ) -> Path:
    """Save ``picture`` (H x W x 3, what the backbone saw) with a saliency ``grid`` laid over
    it (negative cells shown as 0, the rest scaled to the map's maximum) under ``caption``."""
    with fonts_for([caption]):
        fig = _new_figure(3.2, 3.6)
        ax = fig.add_subplot(1, 1, 1)
        h, w = picture.shape[:2]
        ax.imshow(picture)
        shown = np.maximum(np.asarray(grid, dtype=np.float64), 0.0)
        ax.imshow(shown / max(float(shown.max()), 1e-12), cmap="inferno", alpha=0.5,
                  extent=(0, w, h, 0), interpolation="bilinear", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title("\n".join(textwrap.wrap(caption, 44)), fontsize=8)
        fig.tight_layout()
        return _save(fig, path)
