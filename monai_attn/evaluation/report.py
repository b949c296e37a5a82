"""Evaluation reports: ``summary.json``, ``per_case.csv``, ``summary.md`` and ``boxplot.png``.

``summary.json`` is laid out as nnU-Net v2's ``compute_metrics_on_folder`` writes it, so
scripts written for nnU-Net read it unchanged: ``metric_per_case`` (per case
``prediction_file``, ``reference_file`` and ``metrics`` keyed by label-id strings ``"1"``,
``"2"``, ... with ``Dice``, ``IoU``, ``FP``, ``TP``, ``FN``, ``TN``, ``n_pred``, ``n_ref``),
``mean`` (label-id string -> metric -> mean over cases, NaN left out) and ``foreground_mean``
(metric -> mean of the class means). Our further metrics (precision, recall, volumes, HD95,
NSD, status) sit beside nnU-Net's in the same per-class dictionaries, and everything else
(organ names, SD, median, outcome counts, failures) under extra top-level keys, which nnU-Net's
``load_summary_json`` ignores. NaN is written as ``null``. ``per_case.csv`` has one row per case
and class. ``summary.md`` is a Markdown table of mean +- standard deviation per class that also
reads well in a terminal. Every file is written to a temporary name first and then renamed, so
a report folder never holds a half written file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_attn import __version__
from monai_attn.evaluation.metrics import EMPTY_CLASS_POLICY, METRIC_FIELDS, CaseResult, ClassMetrics
from monai_attn.io.atomic import atomic_path

#: nnU-Net v2's per-class metric keys, in its order.
NNUNET_FIELDS: tuple[str, ...] = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")

#: Our metrics written beside nnU-Net's in each per-class dictionary of ``summary.json``: the
#: per-class values that nnU-Net's keys do not already hold (Dice, IoU and the voxel counts).
EXTRA_FIELDS: tuple[str, ...] = tuple(
    f for f in METRIC_FIELDS if f not in ("dice", "iou", "nsd_tolerance_mm", "status") and not f.endswith("_voxels")
)

#: Per-class values averaged in the summaries (the NSD tolerance and the status are not).
SUMMARY_FIELDS: tuple[str, ...] = NNUNET_FIELDS + EXTRA_FIELDS

#: Outcome counts per class (``ClassMetrics.status`` values).
STATUSES: tuple[str, ...] = ("ok", "missed", "spurious", "both_empty")


def class_entry(metrics: ClassMetrics) -> dict[str, float | int | str]:
    """One class of one case as ``summary.json`` stores it: nnU-Net's keys, then ours."""
    values = metrics.as_dict()
    entry: dict[str, float | int | str] = {
        "Dice": metrics.dice,
        "IoU": metrics.iou,
        "FP": metrics.fp_voxels,
        "TP": metrics.tp_voxels,
        "FN": metrics.fn_voxels,
        "TN": metrics.tn_voxels,
        "n_pred": metrics.tp_voxels + metrics.fp_voxels,
        "n_ref": metrics.tp_voxels + metrics.fn_voxels,
    }
    entry.update({f: values[f] for f in EXTRA_FIELDS})
    entry["nsd_tolerance_mm"] = metrics.nsd_tolerance_mm
    entry["status"] = metrics.status
    return entry


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def _sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (n - 1 in the denominator); NaN for a single value (no spread)."""
    return float(np.std(values, ddof=1)) if values.size > 1 else math.nan


#: Per-case metrics of the whole label map (not of one class): each case's value and their mean and SD.
CASE_FIELDS = ("pixel_error", "rand_error", "vi_split", "vi_merge")


def _stat(values: Iterable[float], fn: Any) -> float:
    finite = _finite(values)
    return float(fn(finite)) if finite.size else math.nan


def class_values(results: Sequence[CaseResult], label: int, name: str) -> list[float]:
    """Values of metric ``name`` (a :data:`SUMMARY_FIELDS` key) of class ``label`` over cases
    (NaN where the case lacks the class)."""
    values = []
    for result in results:
        metrics = result.metrics.get(label)
        values.append(float(class_entry(metrics)[name]) if metrics is not None else math.nan)
    return values


def summarize(
    results: Sequence[CaseResult],
    label_names: Mapping[int, str],
    failures: Sequence[Any] = (),
    *,
    prediction_dir: str | None = None,
    reference_dir: str | None = None,
    unmatched_predictions: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``summary.json`` document (NaN kept as float NaN; :func:`to_json` writes null).

    Per-class dictionaries (``mean``, ``std``, ``median``, ``cases_per_class``,
    ``nsd_tolerance_mm`` and each case's ``metrics``) are keyed by the label value as a string,
    as nnU-Net writes them; ``labels`` maps organ name -> label value (as nnU-Net's
    ``dataset.json`` does).
    """
    labels = list(label_names)
    per_class: dict[str, dict[str, dict[str, float]]] = {"mean": {}, "std": {}, "median": {}}
    counts: dict[str, dict[str, int]] = {}
    for label in labels:
        key = str(label)
        for name, fn in (("mean", np.mean), ("std", _sample_std), ("median", np.median)):
            per_class[name][key] = {f: _stat(class_values(results, label, f), fn) for f in SUMMARY_FIELDS}
        statuses = [r.metrics[label].status for r in results if label in r.metrics]
        counts[key] = {status: statuses.count(status) for status in STATUSES}
        counts[key]["n"] = counts[key]["ok"] + counts[key]["missed"] + counts[key]["spurious"]
    tolerances = {
        str(label): next((r.metrics[label].nsd_tolerance_mm for r in results if label in r.metrics), math.nan)
        for label in labels
    }
    return {
        "metric_per_case": [
            {
                "prediction_file": r.prediction_file,
                "reference_file": r.reference_file,
                "metrics": {str(label): class_entry(r.metrics[label]) for label in labels if label in r.metrics},
                "case_id": r.case_id,
                "spacing_mm": list(r.spacing_mm),
                "seconds": r.seconds,
                **{name: getattr(r, name) for name in CASE_FIELDS},
            }
            for r in results
        ],
        **{name: {"mean": _stat((getattr(r, name) for r in results), np.mean),
                  "std": _stat((getattr(r, name) for r in results), _sample_std)} for name in CASE_FIELDS},
        "mean": per_class["mean"],
        "foreground_mean": {
            f: _stat((per_class["mean"][str(label)][f] for label in labels), np.mean) for f in SUMMARY_FIELDS
        },
        "monai_attn_version": __version__,
        "prediction_dir": prediction_dir,
        "reference_dir": reference_dir,
        "labels": {label_names[label]: label for label in labels},
        "std": per_class["std"],
        "median": per_class["median"],
        "cases_per_class": counts,
        "nsd_tolerance_mm": tolerances,
        "empty_class_policy": EMPTY_CLASS_POLICY,
        "n_cases": len(results) + len(failures),
        "n_evaluated": len(results),
        "n_failed": len(failures),
        "failures": [{"case_id": f.case_id, "reason": f.reason} for f in failures],
        "unmatched_predictions": list(unmatched_predictions),
    }


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def to_json(document: Mapping[str, Any]) -> str:
    """Strict JSON text (NaN and infinities as ``null``), indented."""
    return json.dumps(_nan_to_none(dict(document)), indent=2, allow_nan=False) + "\n"


def per_case_csv(results: Sequence[CaseResult], label_names: Mapping[int, str]) -> str:
    """CSV text: one row per case and class, columns ``case_id, label, class`` + metric fields + files."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case_id", "label", "class", *METRIC_FIELDS, "prediction_file", "reference_file"])
    for result in results:
        for label, name in label_names.items():
            if label not in result.metrics:
                continue
            values = result.metrics[label].as_dict()
            row = [repr(v) if isinstance(v, float) else v for v in (values[f] for f in METRIC_FIELDS)]
            writer.writerow([result.case_id, label, name, *row, result.prediction_file or "", result.reference_file or ""])
    return buffer.getvalue()


def _mean_sd(mean: float, sd: float, digits: int, signed: bool = False) -> str:
    """``mean ± sd``; the mean alone when there is no spread (a single case: SD is NaN)."""
    if not math.isfinite(mean):
        return "–"
    sign = "+" if signed else ""
    if not math.isfinite(sd):
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} ± {sd:.{digits}f}"


def render_markdown(summary: Mapping[str, Any]) -> str:
    """``summary.md``: a table of mean ± SD per class, failures and the empty-class policy."""
    lines = ["# Segmentation evaluation", ""]
    if summary.get("prediction_dir") or summary.get("reference_dir"):
        lines += [f"Prediction: `{summary.get('prediction_dir')}`, reference: `{summary.get('reference_dir')}`.", ""]
    lines += [
        f"{summary['n_evaluated']} of {summary['n_cases']} cases evaluated, {summary['n_failed']} failed. "
        "Mean ± SD over cases (the mean alone for a single case); n = cases where the class is present in the reference or the prediction.",
        "",
        "| class | n | Dice | IoU | precision | recall | HD95 (mm) | NSD | tol. (mm) | vol. diff (mL) | missed | spurious |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    def plain(value: float, digits: int) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"

    mean, std = summary["mean"], summary["std"]
    for name, label in summary["labels"].items():
        key = str(label)
        m, s, c = mean[key], std[key], summary["cases_per_class"][key]
        tol = summary["nsd_tolerance_mm"][key]
        tol_text = f"{tol:g}" if math.isfinite(tol) else "–"
        lines.append(
            f"| {name} ({label}) | {c['n']} | {_mean_sd(m['Dice'], s['Dice'], 3)} | {_mean_sd(m['IoU'], s['IoU'], 3)} "
            f"| {_mean_sd(m['precision'], s['precision'], 3)} | {_mean_sd(m['recall'], s['recall'], 3)} "
            f"| {_mean_sd(m['hd95_mm'], s['hd95_mm'], 2)} | {_mean_sd(m['nsd'], s['nsd'], 3)} "
            f"| {tol_text} | {_mean_sd(m['volume_diff_ml'], s['volume_diff_ml'], 1, signed=True)} "
            f"| {c['missed']} | {c['spurious']} |"
        )
    fg = summary["foreground_mean"]
    lines.append(
        f"| **foreground mean** | | {plain(fg['Dice'], 3)} | {plain(fg['IoU'], 3)} | {plain(fg['precision'], 3)} "
        f"| {plain(fg['recall'], 3)} | {plain(fg['hd95_mm'], 2)} | {plain(fg['nsd'], 3)} | | "
        f"{plain(fg['volume_diff_ml'], 1)} | | |"
    )
    error = summary.get("pixel_error", {})
    if math.isfinite(error.get("mean", math.nan)):
        lines += ["", "Pixel error (fraction of pixels whose label differs from the reference; for two classes "
                  f"the ISBI 2012 pixel error): {_mean_sd(error['mean'], error['std'], 4)}"]
    rand, split, merge = (summary.get(name, {}) for name in ("rand_error", "vi_split", "vi_merge"))
    if math.isfinite(rand.get("mean", math.nan)):
        lines += ["", "Cells between membranes (4-connected, as the ISBI 2012 challenge ranked them; lower is "
                  f"better): adapted Rand error {_mean_sd(rand['mean'], rand['std'], 4)}, variation of information "
                  f"split {_mean_sd(split['mean'], split['std'], 3)} and merge "
                  f"{_mean_sd(merge['mean'], merge['std'], 3)} nats"]
    lines += ["", f"Empty classes: {summary['empty_class_policy']}", ""]
    if summary["failures"]:
        lines += [f"## Failed cases ({len(summary['failures'])})", ""]
        lines += [f"- `{f['case_id']}`: {f['reason']}" for f in summary["failures"]]
        lines.append("")
    if summary["unmatched_predictions"]:
        lines += [
            f"Predictions without a reference (not evaluated): {', '.join(summary['unmatched_predictions'])}",
            "",
        ]
    return "\n".join(lines)


def _replace_atomically(path: Path, write: Any) -> None:
    """Call ``write(partial_path)`` on a partial file beside ``path``, then rename it to ``path``."""
    with atomic_path(path) as partial:
        write(partial)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so readers see either the old or the complete new file."""
    _replace_atomically(Path(path), lambda tmp: tmp.write_text(text))


def plot_boxplot(
    runs: Mapping[str, Sequence[CaseResult]], label_names: Mapping[int, str], path: str | os.PathLike
) -> None:
    """Box plots of Dice and HD95 (mm) per organ; several runs are drawn side by side per organ.

    Args:
        runs: ``{run name: results}``; one run gives one box per organ.
        label_names: ``{label value: organ name}``, the organs on the x axis.
        path: PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = list(label_names)
    n_runs = len(runs)
    width = 0.8 / n_runs
    panel_width = max(4.5, 1.3 * len(labels) * (1 + 0.35 * (n_runs - 1)))
    fig, axes = plt.subplots(1, 2, figsize=(2 * panel_width, 4.2))
    colors = plt.get_cmap("tab10").colors
    rng = np.random.default_rng(0)
    for ax, field, title in ((axes[0], "Dice", "Dice"), (axes[1], "hd95_mm", "HD95 (mm)")):
        for k, (run_name, results) in enumerate(runs.items()):
            positions = [i + (k - (n_runs - 1) / 2) * width for i in range(len(labels))]
            data = [_finite(class_values(results, label, field)) for label in labels]
            drawn = [(p, d) for p, d in zip(positions, data) if d.size]
            if drawn:
                box = ax.boxplot(
                    [d for _, d in drawn],
                    positions=[p for p, _ in drawn],
                    widths=width * 0.8,
                    patch_artist=True,
                    showfliers=False,
                    medianprops={"color": "black"},
                )
                for patch in box["boxes"]:
                    patch.set(facecolor=colors[k % len(colors)], alpha=0.45)
                for p, d in drawn:
                    jitter = rng.uniform(-width * 0.2, width * 0.2, d.size)
                    ax.plot(p + jitter, d, "o", ms=3, color=colors[k % len(colors)], alpha=0.9)
            if n_runs > 1:
                ax.plot([], [], "s", color=colors[k % len(colors)], alpha=0.6, label=run_name)
        ax.set_xticks(range(len(labels)), [label_names[label] for label in labels])
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if field == "Dice":
            ax.set_ylim(0.0, 1.02)
        else:
            ax.set_ylim(0.0, max(1.0, ax.get_ylim()[1]))
        if n_runs > 1:
            ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _replace_atomically(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def write_report(
    results: Sequence[CaseResult],
    out_dir: str | os.PathLike,
    label_names: Mapping[int | str, str],
    failures: Sequence[Any] = (),
    *,
    prediction_dir: str | None = None,
    reference_dir: str | None = None,
    unmatched_predictions: Sequence[str] = (),
) -> str:
    """Write ``summary.json``, ``per_case.csv``, ``summary.md`` and ``boxplot.png`` to ``out_dir``.

    Args:
        results: per-case metrics (e.g. ``EvaluationRun.results`` or ``MultiOrganMetric.case_results()``).
        out_dir: report folder, created if needed.
        label_names: ``{label value: organ name}`` (keys may be strings, as in JSON configs).
        failures: objects with ``case_id`` and ``reason`` (``CaseFailure``).
        prediction_dir, reference_dir, unmatched_predictions: recorded in the summary.

    Returns:
        The text of ``summary.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # background 0 is reported only when it was evaluated (named explicitly, e.g. EM cell interior)
    background_evaluated = any(0 in r.metrics for r in results)
    names = {int(label): str(name) for label, name in label_names.items() if int(label) != 0 or background_evaluated}
    summary = summarize(
        results,
        names,
        failures,
        prediction_dir=prediction_dir,
        reference_dir=reference_dir,
        unmatched_predictions=unmatched_predictions,
    )
    markdown = render_markdown(summary)
    write_text_atomically(out / "summary.json", to_json(summary))
    write_text_atomically(out / "per_case.csv", per_case_csv(results, names))
    write_text_atomically(out / "summary.md", markdown)
    plot_boxplot({"prediction": results}, names, out / "boxplot.png")
    return markdown
