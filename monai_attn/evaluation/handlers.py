"""The evaluation metrics as a MONAI metric and an ignite handler, for bundle evaluate configs.

:class:`MultiOrganMetric` runs the same per-class computation as ``monai-attn evaluate``
(:func:`monai_attn.evaluation.metrics.evaluate_label_maps`) on each batch an evaluator
produces, keeps the per-case results, and aggregates to the foreground-mean Dice (or another
metric) for the key metric. :class:`ReportWriter` writes the report folder when the run ends.
In a bundle ``evaluate.json``::

    "metric": {"_target_": "monai_attn.evaluation.MultiOrganMetric",
               "label_names": {"1": "spleen", "2": "kidney", "3": "pancreas"},
               "nsd_tolerance_mm": {"1": 1.0, "2": 1.0, "3": 2.0}},
    "key_metric": {"val_mean_dice": {"_target_": "IgniteMetricHandler", "metric_fn": "@metric",
                   "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
    "handlers": [{"_target_": "monai_attn.evaluation.ReportWriter", "metric": "@metric",
                  "output_dir": "$@output_dir + '/report'"}]

Case ids come from the label's ``filename_or_obj`` metadata when the label is a MetaTensor.
With distributed evaluation the metric values are gathered across ranks but the case ids are
those of the local rank; ids are then numbered ``case_0000``, ... instead.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.metrics import CumulativeIterationMetric

from monai_attn.label_names import foreground_names
from monai_attn.evaluation.cases import case_id as file_case_id
from monai_attn.evaluation.metrics import DEFAULT_NSD_TOLERANCE_MM, CaseResult, ClassMetrics, evaluate_label_maps
from monai_attn.evaluation.report import SUMMARY_FIELDS, summarize, write_report

logger = logging.getLogger(__name__)

#: ClassMetrics fields stored per class in the metric buffer (float64), in constructor order.
_STORED_FIELDS: tuple[str, ...] = tuple(ClassMetrics.__dataclass_fields__)


def _label_map(tensor: torch.Tensor) -> np.ndarray:
    """(C, *spatial) label map (C = 1) or one-hot/probabilities (C > 1) -> (*spatial) integer labels."""
    array = tensor.detach().cpu()
    if array.shape[0] == 1:
        return np.rint(array[0].numpy()).astype(np.int32)
    return torch.argmax(array, dim=0).numpy().astype(np.int32)


class MultiOrganMetric(CumulativeIterationMetric):
    """Dice, IoU, precision, recall, volumes, HD95 and NSD per class for each case of a batch.

    Args:
        label_names: ``{label value: organ name}`` of the classes to evaluate (JSON-style
            string keys are accepted); background 0 is ignored.
        nsd_tolerance_mm: NSD tolerance, one for all classes or ``{label value: mm}``.
        aggregate_metric: metric that :meth:`aggregate` averages (one of
            ``report.SUMMARY_FIELDS``, e.g. ``"Dice"``, ``"hd95_mm"``, ``"nsd"``).

    ``y_pred`` and ``y`` are batch-first (B, C, H, W[, D]) tensors or lists of channel-first
    tensors; C = 1 means a label map, C > 1 a one-hot or probability map (argmax over C).
    Spacing (mm) comes from the ``spacing`` keyword, else from ``y``'s affine when ``y`` is a
    MetaTensor, else 1 per axis. Each call returns a (B, classes, fields) float64 tensor.
    """

    def __init__(
        self,
        label_names: Mapping[int | str, str],
        nsd_tolerance_mm: float | Mapping[int | str, float] = DEFAULT_NSD_TOLERANCE_MM,
        aggregate_metric: str = "Dice",
    ) -> None:
        self._case_ids: list[str] = []
        self._case_spacings: list[tuple[float, ...]] = []
        super().__init__()
        self.label_names = foreground_names(label_names)
        if not self.label_names:
            raise ValueError("label_names lists no foreground class")
        if isinstance(nsd_tolerance_mm, Mapping):
            self.nsd_tolerance_mm = {
                label: float(nsd_tolerance_mm.get(label, nsd_tolerance_mm.get(str(label), DEFAULT_NSD_TOLERANCE_MM)))
                for label in self.label_names
            }
        else:
            self.nsd_tolerance_mm = {label: float(nsd_tolerance_mm) for label in self.label_names}
        if aggregate_metric not in SUMMARY_FIELDS:
            raise ValueError(f"aggregate_metric {aggregate_metric!r} is not one of {SUMMARY_FIELDS}")
        self.aggregate_metric = aggregate_metric

    def reset(self) -> None:
        super().reset()
        self._case_ids = []
        self._case_spacings = []

    @staticmethod
    def _spacings(y: torch.Tensor, spacing: Any) -> list[tuple[float, ...]]:
        batch, spatial = y.shape[0], y.ndim - 2
        if spacing is not None:
            values = np.asarray(spacing, dtype=float)
            rows = values.reshape(batch, spatial) if values.ndim == 2 else np.broadcast_to(values, (batch, spatial))
            return [tuple(float(v) for v in row) for row in rows]
        if isinstance(y, MetaTensor):
            affine = y.affine.detach().cpu()
            affines = list(affine) if affine.ndim == 3 else [affine] * batch
            return [tuple(float(v) for v in affine_to_spacing(a, r=spatial)) for a in affines]
        return [(1.0,) * spatial] * batch

    @staticmethod
    def _case_names(y: torch.Tensor, batch: int, first_index: int) -> list[str]:
        names = y.meta.get("filename_or_obj") if isinstance(y, MetaTensor) else None
        if isinstance(names, str):
            names = [names]
        if isinstance(names, Sequence) and len(names) == batch:
            return [file_case_id(str(n)) or os.path.basename(str(n)) for n in names]
        return [f"case_{first_index + i:04d}" for i in range(batch)]

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if y_pred.ndim < 3 or y_pred.shape[0] != y.shape[0] or y_pred.shape[2:] != y.shape[2:]:
            raise ValueError(f"y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must be (B, C, *spatial) alike")
        spacings = self._spacings(y, kwargs.get("spacing"))
        labels = list(self.label_names)
        out = torch.empty((y.shape[0], len(labels), len(_STORED_FIELDS)), dtype=torch.float64)
        for b in range(y.shape[0]):
            metrics = evaluate_label_maps(
                _label_map(y_pred[b]), _label_map(y[b]), spacings[b], labels, self.nsd_tolerance_mm
            )
            for c, label in enumerate(labels):
                values = metrics[label]
                out[b, c] = torch.tensor([float(getattr(values, f)) for f in _STORED_FIELDS], dtype=torch.float64)
        self._case_ids += self._case_names(y, y.shape[0], len(self._case_ids))
        self._case_spacings += spacings
        return out

    def case_results(self) -> list[CaseResult]:
        """Per-case results of everything seen since the last :meth:`reset`."""
        buffer = self.get_buffer()
        if buffer is None:
            return []
        local = len(self._case_ids) == buffer.shape[0]
        ids = self._case_ids if local else [f"case_{i:04d}" for i in range(buffer.shape[0])]
        spacings = self._case_spacings if local else [()] * buffer.shape[0]
        results = []
        for case_name, spacing, rows in zip(ids, spacings, buffer):
            metrics = {}
            for label, row in zip(self.label_names, rows.tolist()):
                values = dict(zip(_STORED_FIELDS, row))
                for count in ("tp_voxels", "fp_voxels", "fn_voxels", "tn_voxels"):
                    values[count] = int(values[count])
                metrics[label] = ClassMetrics(**values)
            results.append(CaseResult(case_id=case_name, metrics=metrics, spacing_mm=spacing, seconds=math.nan))
        return results

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Foreground mean of ``aggregate_metric``: the mean over classes of the per-class means."""
        summary = summarize(self.case_results(), self.label_names)
        return torch.tensor(summary["foreground_mean"][self.aggregate_metric], dtype=torch.float64)


class VerticalCupDiscRatioError(CumulativeIterationMetric):
    """Absolute error of the vertical cup-to-disc ratio per case (fundus), for bundle evaluation.

    The ratio is :func:`monai_attn.fundus.fundus_statistics`' ``vertical_cup_to_disc_ratio``
    (largest disc component, in the photograph's rows) of the prediction and of the reference.
    A prediction without disc counts as ratio 0; a reference without disc gives NaN, left out
    of the mean. ``y_pred`` and ``y`` are as for :class:`MultiOrganMetric`; each call returns
    a (B, 1) float64 tensor, :meth:`aggregate` the mean absolute error.
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        from monai_attn.fundus import fundus_statistics

        if y_pred.ndim != 4 or y_pred.shape[0] != y.shape[0] or y_pred.shape[2:] != y.shape[2:]:
            raise ValueError(f"y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must be (B, C, X, Y) alike")
        errors = []
        for b in range(y.shape[0]):
            truth = fundus_statistics(_label_map(y[b]))["vertical_cup_to_disc_ratio"]
            predicted = fundus_statistics(_label_map(y_pred[b]))["vertical_cup_to_disc_ratio"]
            errors.append(math.nan if truth is None else abs(float(predicted or 0.0) - float(truth)))
        return torch.tensor(errors, dtype=torch.float64)[:, None]

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean absolute error over the cases with a reference disc."""
        values = self.get_buffer()
        if values is None or not isinstance(values, torch.Tensor) or values.numel() == 0:
            return torch.tensor(math.nan, dtype=torch.float64)
        return torch.nanmean(values.double())


class ReportWriter:
    """Ignite handler: writes the evaluation report folder of a :class:`MultiOrganMetric` when the run ends."""

    def __init__(self, metric: MultiOrganMetric, output_dir: str | os.PathLike) -> None:
        self.metric = metric
        self.output_dir = output_dir

    def attach(self, engine: Any) -> None:
        """Write the report on ``Events.COMPLETED`` of ``engine``."""
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any = None) -> str:
        """Write ``summary.json``, ``per_case.csv``, ``summary.md`` and ``boxplot.png``; return the Markdown
        (and say in the log where the report went)."""
        markdown = write_report(self.metric.case_results(), self.output_dir, self.metric.label_names)
        logger.info("evaluation report written to %s", os.path.abspath(self.output_dir))
        return markdown
