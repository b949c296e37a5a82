"""Does quality control predict accuracy? QC status and uncertainty against Dice, per organ.

``monai-attn evaluate`` calls :func:`qc_versus_dice` when the prediction folder holds the
``<case>_qc.json`` files that ``monai-attn segment --statistics`` writes. For each organ it
tabulates the cases by QC status (how many, their mean Dice, how many truly failed with
Dice < 0.5) and reports the share of true failures that QC flagged (``warn``, ``fail`` or
``partial``), the share of good results (Dice >= 0.5) it flagged ``fail`` (false alarms), and the
Spearman correlation between the organ's entropy and its Dice.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from monai_attn.evaluation.metrics import CaseResult

logger = logging.getLogger(__name__)

#: Dice below which an organ's result counts as a true failure.
FAILURE_DICE = 0.5
STATUSES = ("ok", "partial", "warn", "fail")


def read_qc(prediction_dir: str | Path, case_ids: Sequence[str]) -> dict[str, dict]:
    """``case id -> QC document`` for the cases whose ``<case>_qc.json`` is in ``prediction_dir``.

    A file that is not such a document (broken JSON, no ``organs`` with a known ``status`` per
    organ) is left out with a warning naming it: it must not stop the evaluation.
    """
    found = {}
    for case_id in case_ids:
        path = Path(prediction_dir) / f"{case_id}_qc.json"
        if not path.is_file():
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            organs = document["organs"]
            if not isinstance(organs, dict) or not all(
                    isinstance(o, dict) and o.get("status") in STATUSES for o in organs.values()):
                raise ValueError("an organ without a known status")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            logger.warning("%s: not a QC report of segment (%s); left out of qc_vs_dice.md", path, error)
            continue
        found[case_id] = document
    return found


def qc_versus_dice(results: Sequence[CaseResult], qc: Mapping[str, dict], label_names: Mapping[int, str]) -> dict:
    """Per organ: cases by QC status with mean Dice, detection of true failures, entropy-Dice correlation."""
    table = {}
    for label, name in label_names.items():
        rows = []
        for result in results:
            organ = qc.get(result.case_id, {}).get("organs", {}).get(name)
            metrics = result.metrics.get(label)
            if organ is None or metrics is None or math.isnan(metrics.dice):
                continue
            rows.append((organ["status"], metrics.dice, organ.get("entropy")))
        if not rows:
            continue
        by_status = {}
        for status in STATUSES:
            dice = [d for s, d, _ in rows if s == status]
            if dice:
                by_status[status] = {"cases": len(dice), "mean_dice": float(np.mean(dice)),
                                     "dice_below_0.5": int(sum(d < FAILURE_DICE for d in dice))}
        failures = [s for s, d, _ in rows if d < FAILURE_DICE]
        good = [s for s, d, _ in rows if d >= FAILURE_DICE]
        pairs = [(e, d) for _, d, e in rows if e is not None]
        rho = float(stats.spearmanr(*zip(*pairs))[0]) if len(pairs) >= 3 and len({p[0] for p in pairs}) > 1 else None
        table[name] = {
            "by_status": by_status,
            "true_failures": len(failures),
            "failures_flagged": sum(s != "ok" for s in failures),
            "good_results": len(good),
            "good_flagged_fail": sum(s == "fail" for s in good),
            "spearman_entropy_dice": rho,
        }
    return table


def render_qc_markdown(table: Mapping[str, dict]) -> str:
    """The :func:`qc_versus_dice` table as Markdown."""
    lines = ["## Quality control against Dice", "",
             "| organ | QC status | cases | mean Dice | Dice < 0.5 |", "|---|---|--:|--:|--:|"]
    for name, row in table.items():
        for status, cell in row["by_status"].items():
            lines.append(f"| {name} | {status} | {cell['cases']} | {cell['mean_dice']:.3f} | {cell['dice_below_0.5']} |")
    lines += ["", "| organ | true failures flagged | good results flagged fail | Spearman(entropy, Dice) |",
              "|---|--:|--:|--:|"]
    for name, row in table.items():
        rho = "n/a" if row["spearman_entropy_dice"] is None else f"{row['spearman_entropy_dice']:+.2f}"
        lines.append(f"| {name} | {row['failures_flagged']} of {row['true_failures']} | "
                     f"{row['good_flagged_fail']} of {row['good_results']} | {rho} |")
    return "\n".join(lines) + "\n"
