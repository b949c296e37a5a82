"""Segmentation evaluation: per-case, per-class metrics, reports and paired comparisons.

- :mod:`~monai_attn.evaluation.metrics`: Dice, IoU, precision, recall, volumes, HD95, NSD.
- :mod:`~monai_attn.evaluation.cases`: pairing prediction/reference files and evaluating folders.
- :mod:`~monai_attn.evaluation.report`: ``summary.json``, ``per_case.csv``, ``summary.md``, ``boxplot.png``.
- :mod:`~monai_attn.evaluation.compare`: paired differences with Wilcoxon signed-rank p-values.
- :mod:`~monai_attn.evaluation.handlers`: :class:`MultiOrganMetric`, :class:`ReportWriter` and
  :class:`VerticalCupDiscRatioError` (fundus)
  for MONAI bundle evaluate configs (imported on first use, as they need torch).

Example::

    from monai_attn.evaluation import evaluate_folders, write_report
    run = evaluate_folders("preds/", "labelsTr/", {1: "spleen", 2: "kidney", 3: "pancreas"})
    print(write_report(run.results, "report/", run.label_names, run.failures))
"""

from __future__ import annotations

import importlib
from typing import Any

from monai_attn.evaluation.cases import CaseFailure, EvaluationRun, evaluate_folders, read_label_map
from monai_attn.evaluation.compare import PairedDifference, paired_differences, write_comparison
from monai_attn.evaluation.labels import NsdTolerances, parse_label_spec, parse_tolerances, read_label_names
from monai_attn.evaluation.metrics import (
    EMPTY_CLASS_POLICY,
    CaseResult,
    ClassMetrics,
    class_metrics,
    evaluate_label_maps,
)
from monai_attn.evaluation.report import summarize, write_report

_LAZY = {
    "MultiOrganMetric": "monai_attn.evaluation.handlers",
    "ReportWriter": "monai_attn.evaluation.handlers",
    "VerticalCupDiscRatioError": "monai_attn.evaluation.handlers",
}

__all__ = [
    "EMPTY_CLASS_POLICY",
    "CaseFailure",
    "CaseResult",
    "ClassMetrics",
    "EvaluationRun",
    "MultiOrganMetric",
    "NsdTolerances",
    "PairedDifference",
    "ReportWriter",
    "VerticalCupDiscRatioError",
    "class_metrics",
    "evaluate_folders",
    "evaluate_label_maps",
    "paired_differences",
    "parse_label_spec",
    "parse_tolerances",
    "read_label_map",
    "read_label_names",
    "summarize",
    "write_comparison",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
