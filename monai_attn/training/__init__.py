"""The few training pieces the bundles' configs need that MONAI does not provide.

- :func:`~monai_attn.training.bundles.bundle_dir`: where a bundle lives, so that
  ``python -m monai.bundle run`` works from the repository root or the bundle folder.
- :func:`~monai_attn.training.runs.new_run_dir`: the default run folder of a training run,
  ``runs/<bundle>/<timestamp>/``, outside the bundle whose weights it must not overwrite.
- :func:`~monai_attn.training.schedules.warmup_lr_schedule`: AdamW-friendly linear warm-up
  followed by cosine or polynomial decay, stepped per iteration.
- :class:`~monai_attn.training.inferers.PrecisionInferer`: runs any MONAI inferer under
  autocast (bf16/fp16) and in channels-last layout, returning float32 logits.
- :func:`~monai_attn.training.checkpoints.last_checkpoint` and
  :class:`~monai_attn.training.checkpoints.KeyMetricState`: resuming an interrupted run from
  its newest complete epoch checkpoint without forgetting the best validation score.

Example (bundle ``train.json``)::

    "resume_checkpoint": "$monai_attn.training.last_checkpoint(@run_ckpt_dir)",
    "lr_scheduler": {"_target_": "monai_attn.training.warmup_lr_schedule", "optimizer": "@optimizer",
                     "total_steps": "$@epochs * len(@train#dataloader)", "warmup_steps": 50}
"""

from monai_attn.training.bundles import bundle_dir
from monai_attn.training.checkpoints import KeyMetricState, last_checkpoint
from monai_attn.training.inferers import PrecisionInferer
from monai_attn.training.runs import new_run_dir
from monai_attn.training.schedules import LR_SCHEDULES, warmup_lr_schedule

__all__ = [
    "LR_SCHEDULES",
    "KeyMetricState",
    "PrecisionInferer",
    "bundle_dir",
    "last_checkpoint",
    "new_run_dir",
    "warmup_lr_schedule",
]
