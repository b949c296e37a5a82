"""Paired comparison of two segmentation methods evaluated on the same cases.

For each class and metric (Dice, HD95, NSD) the comparison takes the cases where both
methods have a finite value, and reports both means, the mean and median of the paired
difference B - A, how many cases B wins, and the two-sided Wilcoxon signed-rank p-value
(``scipy.stats.wilcoxon``, zero differences dropped as in Wilcoxon's original test; exact
distribution for small n). This is the table a U-Net vs Attention U-Net comparison reports.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from monai_attn.evaluation.metrics import CaseResult
from monai_attn.evaluation.report import to_json, write_text_atomically

#: Compared metrics and whether a higher value is better.
COMPARED_METRICS: dict[str, bool] = {"dice": True, "hd95_mm": False, "nsd": True}

_METRIC_TITLES = {"dice": "Dice", "hd95_mm": "HD95 (mm)", "nsd": "NSD"}


@dataclass(frozen=True)
class PairedDifference:
    """Paired statistics of one metric of one class; differences are B - A."""

    class_name: str
    label: int
    metric: str
    n_pairs: int
    mean_a: float
    mean_b: float
    mean_diff: float
    median_diff: float
    b_better: int
    p_value: float


def wilcoxon_p_value(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when all differences are 0, NaN for none."""
    if differences.size == 0:
        return math.nan
    if not np.any(differences != 0):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_differences(
    results_a: Sequence[CaseResult],
    results_b: Sequence[CaseResult],
    label_names: Mapping[int, str],
    metrics: Mapping[str, bool] = COMPARED_METRICS,
) -> list[PairedDifference]:
    """Paired statistics of method B against method A for every class and metric.

    Cases are paired by ``case_id``; a case enters a metric's statistics when both methods
    have a finite value (failed cases, both-empty classes and NaN HD95 are left out).
    """
    by_case_b = {r.case_id: r for r in results_b}
    rows = []
    for label, name in label_names.items():
        for metric, higher_is_better in metrics.items():
            a_values, b_values = [], []
            for result_a in results_a:
                result_b = by_case_b.get(result_a.case_id)
                if result_b is None or label not in result_a.metrics or label not in result_b.metrics:
                    continue
                a = float(result_a.metrics[label].as_dict()[metric])
                b = float(result_b.metrics[label].as_dict()[metric])
                if math.isfinite(a) and math.isfinite(b):
                    a_values.append(a)
                    b_values.append(b)
            a_arr, b_arr = np.asarray(a_values), np.asarray(b_values)
            diff = b_arr - a_arr
            empty = diff.size == 0
            rows.append(
                PairedDifference(
                    class_name=name,
                    label=int(label),
                    metric=metric,
                    n_pairs=int(diff.size),
                    mean_a=math.nan if empty else float(a_arr.mean()),
                    mean_b=math.nan if empty else float(b_arr.mean()),
                    mean_diff=math.nan if empty else float(diff.mean()),
                    median_diff=math.nan if empty else float(np.median(diff)),
                    b_better=int(np.count_nonzero(diff > 0 if higher_is_better else diff < 0)),
                    p_value=wilcoxon_p_value(diff),
                )
            )
    return rows


def render_comparison_markdown(rows: Sequence[PairedDifference], name_a: str, name_b: str) -> str:
    """Markdown table of the paired comparison (A = baseline, B = compared method)."""

    def num(value: float, digits: int, signed: bool = False) -> str:
        return f"{value:{'+' if signed else ''}.{digits}f}" if math.isfinite(value) else "–"

    lines = [
        f"# Paired comparison: B = {name_b} vs A = {name_a}",
        "",
        "Differences are B − A over cases where both have a value; p: two-sided Wilcoxon signed-rank test.",
        "",
        f"| class | metric | n | {name_a} (A) | {name_b} (B) | mean B − A | median B − A | B better | p |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        digits = 2 if row.metric == "hd95_mm" else 3
        p = f"{row.p_value:.3g}" if math.isfinite(row.p_value) else "–"
        lines.append(
            f"| {row.class_name} | {_METRIC_TITLES.get(row.metric, row.metric)} | {row.n_pairs} "
            f"| {num(row.mean_a, digits)} | {num(row.mean_b, digits)} | {num(row.mean_diff, digits, True)} "
            f"| {num(row.median_diff, digits, True)} | {row.b_better}/{row.n_pairs} | {p} |"
        )
    return "\n".join(lines) + "\n"


def write_comparison(
    rows: Sequence[PairedDifference], out_dir: str | os.PathLike, name_a: str, name_b: str
) -> str:
    """Write ``comparison.json``, ``comparison.csv`` and ``comparison.md``; return the Markdown."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_comparison_markdown(rows, name_a, name_b)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(PairedDifference.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    document = {"a": name_a, "b": name_b, "differences": "b - a", "rows": [asdict(row) for row in rows]}
    write_text_atomically(out / "comparison.json", to_json(document))
    write_text_atomically(out / "comparison.csv", buffer.getvalue())
    write_text_atomically(out / "comparison.md", markdown)
    return markdown
