"""Write a run's results to disk: metrics.json, per-model text reports, plots, Markdown, HTML.

``metrics.json`` is the source of truth: :func:`load_results` reads it back so that
:func:`write_reports` can re-render every artefact from a saved run without retraining.
The HTML report is self-contained (images embedded as base64 data URIs) so it can be
mailed or attached to a ticket as one file.

Long on purpose: the Markdown and the HTML report are rendered from the same sections here,
so that the two never disagree.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import FileProblem, read_json_object, written_atomically
from .metrics import EvaluationResult, comparison_table
from .ordering import order_caption, table_order
from .rounding import fmt, supported_decimals

log = logging.getLogger(__name__)

METRICS_FILENAME = "metrics.json"
SCHEMA_VERSION = 1
_MAX_SAFE_LEN = 100
_EXPLAINED_TITLE = "Where the image model looked on its most confident test errors"
_CI_CAPTION = ("The accuracy CI is a percentile bootstrap; its level and resampling unit "
               "(source groups or frames) are given in each run's section. Figures have the "
               "{d} decimals the CIs' width supports (metrics.json keeps every digit).")


def safe_name(name: str) -> str:
    """Filesystem- and URL-safe stem for a run name ("image:vgg19+svm" -> "image_vgg19+svm")."""
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._")
    return stem[:_MAX_SAFE_LEN] or "run"


def _unique_safe_names(names: Sequence[str]) -> list[str]:
    """Safe stems, de-duplicated case-insensitively ("a:b" and "a/b" must not overwrite)."""
    seen: set[str] = set()
    out: list[str] = []
    for nm in names:
        base = safe_name(nm)
        stem, i = base, 2
        while stem.lower() in seen:
            stem = f"{base}-{i}"
            i += 1
        seen.add(stem.lower())
        out.append(stem)
    return out


def _table_caption(table: pd.DataFrame, decimals: int) -> str:
    return f"{order_caption(table)} {_CI_CAPTION.format(d=decimals)}"


def _sections(results: Sequence[EvaluationResult]) -> list[list[EvaluationResult]]:
    """Runs grouped where their test results are identical (same confusion matrix, CI and
    report), in table order: eight perfect runs read as one section, not eight copies."""
    groups: dict[tuple, list[EvaluationResult]] = {}
    for r in results:
        key = (np.asarray(r.confusion_matrix).tobytes(), r.ci_low, r.ci_high,
               r.classification_report, r.bootstrap_unit)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _rounded_report(text: str, d: int) -> str:
    """scikit-learn's per-class report (stored with 4 decimals) at ``d`` decimals, each figure
    right-aligned in its old width so the columns still line up."""
    return re.sub(r"\b\d+\.\d{4}\b", lambda m: fmt(float(m.group()), d).rjust(len(m.group())),
                  text)


def _section_title(group: Sequence[EvaluationResult]) -> str:
    return group[0].name if len(group) == 1 else f"{len(group)} runs with identical test results"


def _section_lines(group: Sequence[EvaluationResult], d: int) -> list[str]:
    """The figures of one section as plain sentences (Markdown and HTML share them)."""
    r = group[0]
    lines = [f"runs: {', '.join(g.name for g in group)}"] if len(group) > 1 else []
    lines.append(f"accuracy {fmt(r.accuracy, d)}, {_ci_sentence(r, d)}")
    loss = (f"log-loss {fmt(r.log_loss, d)}, " if len(group) == 1 else "")
    lines.append(f"balanced accuracy {fmt(r.balanced_accuracy, d)}, macro F1 "
                 f"{fmt(r.macro_f1, d)}, weighted F1 {fmt(r.weighted_f1, d)}, {loss}"
                 f"n_test {r.n_test}")
    if len(group) > 1:  # probabilities differ even where every prediction agrees
        lines.append("log-loss: " + ", ".join(f"{g.name} {fmt(g.log_loss, d)}" for g in group))
    return lines


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows as plain Python values (full float precision, NaN -> None)."""
    records = []
    for row in table.to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, str):
                rec[k] = v
            elif pd.isna(v):
                rec[k] = None
            elif k == "n_test":
                rec[k] = int(v)
            else:
                rec[k] = float(v)
        records.append(rec)
    return records


def _display_table(table: pd.DataFrame, d: int) -> tuple[list[str], list[list[str]]]:
    """Comparison table as header + string rows, with the CI folded into one column and the
    column that ranks the rows marked."""
    ranks = {"val": "val acc.", "cv": "CV acc."}.get(table_order(table))
    header = [
        "rank",
        "name",
        "accuracy",
        "accuracy CI",
        "balanced acc.",
        "macro P",
        "macro R",
        "macro F1",
        "log-loss",
        "n_test",
        "val acc.",
        "CV acc.",
    ]
    header = [f"{h} (ranks)" if h == ranks else h for h in header]
    rows = []
    for i, r in enumerate(table.itertuples(index=False), start=1):
        ci = (
            "-"
            if (pd.isna(r.ci_low) or pd.isna(r.ci_high))
            else f"[{fmt(r.ci_low, d)}, {fmt(r.ci_high, d)}]"
        )
        rows.append(
            [
                str(i),
                str(r.name),
                fmt(r.accuracy, d),
                ci,
                fmt(r.balanced_accuracy, d),
                fmt(r.macro_precision, d),
                fmt(r.macro_recall, d),
                fmt(r.macro_f1, d),
                fmt(r.log_loss, d),
                str(int(r.n_test)),
                fmt(r.val_accuracy, d),
                fmt(r.cv_accuracy, d),
            ]
        )
    return header, rows


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_fence(text: str) -> str:
    """Fenced code block whose fence is longer than any backtick run inside the text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _ci_sentence(r: EvaluationResult, d: int) -> str:
    if r.ci_low is None or r.ci_high is None:
        return "no bootstrap CI"
    unit = (
        f"resampling {r.n_groups} source groups"
        if r.bootstrap_unit == "group"
        else "resampling frames (no groups given: may be optimistic)"
    )
    return (
        f"{100 * r.ci_level:g}% CI [{fmt(r.ci_low, d)}, {fmt(r.ci_high, d)}] "
        f"({r.n_bootstrap} bootstrap resamples, {unit})"
    )


def _write_text_atomic(path: Path, text: str) -> None:
    with written_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _render_markdown(
    title: str,
    class_names: Sequence[str],
    results_sorted: Sequence[EvaluationResult],
    table: pd.DataFrame,
    stems: dict[str, str],
    config_text: str | None,
    notes: Sequence[str] | None,
    explained: Sequence[Mapping[str, str]] = (),
) -> str:
    d = supported_decimals(table)
    header, rows = _display_table(table, d)
    lines = [f"# {title}", ""]
    lines.append(
        f"{len(results_sorted)} runs, {len(class_names)} classes: "
        + ", ".join(f"`{c}`" for c in class_names)
    )
    lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        "## Comparison",
        "",
        _table_caption(table, d),
        "",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if h == "name" else "---:" for h in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines += ["", "![run comparison](plots/comparison.png)", ""]
    if explained:
        lines += [f"## {_EXPLAINED_TITLE}", ""]
        lines += [f"![{_md_cell(e['caption'])}]({e['png']})" for e in explained] + [""]
    if config_text:
        lines += ["## Configuration", "", _md_fence(config_text), ""]
    lines += ["## Per-model results", ""]
    for group in _sections(results_sorted):
        r = group[0]
        lines += [f"### {_md_cell(_section_title(group))}", ""]
        lines += [f"- {_md_cell(x)}" for x in _section_lines(group, d)]
        lines += [
            "",
            _md_fence(_rounded_report(r.classification_report, d)),
            "",
            f"![confusion matrix: {_md_cell(r.name)}](plots/confusion_{stems[r.name]}.png)",
            "",
        ]
    return "\n".join(lines)


def _img_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; }
section.model { border-top: 1px solid #ddd; margin-top: 2em; }
"""


def _render_html(
    title: str,
    class_names: Sequence[str],
    results_sorted: Sequence[EvaluationResult],
    table: pd.DataFrame,
    stems: dict[str, str],
    images: dict[str, Path],
    comparison_png: Path,
    config_text: str | None,
    notes: Sequence[str] | None,
    explained: Sequence[Mapping[str, str]] = (),
    out_dir: Path = Path("."),
) -> str:
    esc = html.escape
    d = supported_decimals(table)
    header, rows = _display_table(table, d)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{len(results_sorted)} runs, {len(class_names)} classes: "
        + ", ".join(f"<code>{esc(c)}</code>" for c in class_names)
        + "</p>",
    ]
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{esc(n)}</li>" for n in notes]
        parts.append("</ul>")
    parts += [
        "<h2>Comparison</h2>",
        f"<p>{esc(_table_caption(table, d))}</p>",
        "<table>",
    ]
    parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = []
        for h, c in zip(header, row, strict=True):
            if h == "name":
                cells.append(f'<td><a href="#model-{esc(stems[c])}">{esc(c)}</a></td>')
            else:
                cells.append(f'<td class="num">{esc(c)}</td>')
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts += ["</tbody>", "</table>"]
    parts.append(f'<p><img src="{_img_data_uri(comparison_png)}" alt="run comparison chart"></p>')
    if explained:
        parts.append(f"<h2>{esc(_EXPLAINED_TITLE)}</h2><p>")
        parts += [f'<img src="{_img_data_uri(out_dir / e["png"])}" alt="{esc(e["caption"])}">'
                  for e in explained if (out_dir / e["png"]).is_file()]
        parts.append("</p>")
    if config_text:
        parts += ["<h2>Configuration</h2>", f"<pre>{esc(config_text)}</pre>"]
    parts.append("<h2>Per-model results</h2>")
    for group in _sections(results_sorted):
        r = group[0]
        parts.append(f'<section class="model" id="model-{esc(stems[r.name])}">')
        # every run of the group keeps the anchor the table links to
        parts += [f'<span id="model-{esc(stems[g.name])}"></span>' for g in group[1:]]
        parts += [
            f"<h3>{esc(_section_title(group))}</h3>",
            "<ul>",
            *[f"<li>{esc(x)}</li>" for x in _section_lines(group, d)],
            "</ul>",
            f"<pre>{esc(_rounded_report(r.classification_report, d))}</pre>",
            f'<p><img src="{_img_data_uri(images[r.name])}" '
            f'alt="{esc("confusion matrix: " + r.name)}"></p>',
            "</section>",
        ]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write_reports(
    results: Sequence[EvaluationResult],
    out_dir: str | Path,
    class_names: Sequence[str],
    title: str = "scenefusion run",
    config_text: str | None = None,
    notes: list[str] | None = None,
    drawn: Mapping[str, tuple[np.ndarray, Path]] | None = None,
    drawn_comparison: Path | None = None,
    explained: Sequence[Mapping[str, str]] = (),
) -> dict[str, Path]:
    """Write every report artefact for a set of runs evaluated on the same test split.

    Returns a dict of paths: ``metrics_json``, ``report_md``, ``report_html``,
    ``comparison_plot``, and per run ``report:<name>`` and ``confusion:<name>``.
    ``drawn`` holds confusion matrices already drawn elsewhere (run name -> (counts, PNG),
    see :mod:`.background`); one is moved into place only if its counts are the result's.
    ``drawn_comparison`` is the comparison chart drawn elsewhere from these same results.
    ``explained`` lists saliency pictures already in the run folder (``png`` relative to it,
    ``caption``), shown in their own section and kept in metrics.json for re-rendering.
    Run names must be unique; class names must match every result's, because comparing
    runs that were scored against different label sets would be meaningless.
    """
    if not results:
        raise ValueError("no results to report")
    names = [r.name for r in results]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate run names: {dupes}")
    class_names = [str(c) for c in class_names]
    for r in results:
        if list(r.class_names) != class_names:
            raise ValueError(
                f"run {r.name!r} was scored with classes {r.class_names}, expected {class_names}"
            )

    out = Path(out_dir)
    reports_dir, plots_dir = out / "reports", out / "plots"
    reports_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)

    table = comparison_table(results)
    by_name = {r.name: r for r in results}
    results_sorted = [by_name[n] for n in table["name"]]
    stems = dict(zip(names, _unique_safe_names(names), strict=True))
    paths: dict[str, Path] = {}

    payload = {
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "class_names": class_names,
        "config_text": config_text,
        "notes": list(notes or []),
        "results": [r.to_dict() for r in results],
        "comparison": _json_records(table),
        "explained_errors": [dict(e) for e in explained],
    }
    metrics_path = out / METRICS_FILENAME
    _write_text_atomic(
        metrics_path, json.dumps(payload, indent=2, allow_nan=False, ensure_ascii=False)
    )
    paths["metrics_json"] = metrics_path

    images: dict[str, Path] = {}
    d = supported_decimals(table)
    for r in results_sorted:
        stem = stems[r.name]
        txt = reports_dir / f"{stem}.txt"
        txt.write_text(
            f"{r.name}\n\naccuracy {fmt(r.accuracy, d)}, {_ci_sentence(r, d)}\n\n"
            f"{_rounded_report(r.classification_report, d)}",
            encoding="utf-8",
        )
        paths[f"report:{r.name}"] = txt
        png = plots_dir / f"confusion_{stem}.png"
        ready = (drawn or {}).get(r.name)
        if (ready is not None and ready[1].is_file()
                and np.array_equal(ready[0], r.confusion_matrix)):
            shutil.move(ready[1], png)
        else:
            from .plots import plot_confusion_matrix  # matplotlib only when drawing here

            plot_confusion_matrix(r, class_names, png, normalize=True)
        images[r.name] = png
        paths[f"confusion:{r.name}"] = png
    comparison_png = plots_dir / "comparison.png"
    if drawn_comparison is not None and drawn_comparison.is_file():
        shutil.move(drawn_comparison, comparison_png)
    else:
        from .plots import plot_comparison

        plot_comparison(results, comparison_png)
    paths["comparison_plot"] = comparison_png

    md = _render_markdown(title, class_names, results_sorted, table, stems, config_text, notes,
                          explained)
    md_path = out / "report.md"
    _write_text_atomic(md_path, md)
    paths["report_md"] = md_path

    page = _render_html(
        title,
        class_names,
        results_sorted,
        table,
        stems,
        images,
        comparison_png,
        config_text,
        notes,
        explained,
        out,
    )
    html_path = out / "report.html"
    _write_text_atomic(html_path, page)
    paths["report_html"] = html_path
    log.info("wrote reports for %d runs to %s", len(results), out)
    return paths


def load_results(out_dir: str | Path) -> list[EvaluationResult]:
    """Read the results back from ``<out_dir>/metrics.json`` (or a path to that file)."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / METRICS_FILENAME
    data = read_json_object(path, required=("results",))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise FileProblem(path, f"unsupported metrics schema_version {version!r}")
    try:
        return [EvaluationResult.from_dict(d) for d in data["results"]]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise FileProblem(path, f"a result does not have the expected fields ({exc})") from None
