"""The few training pieces the bundles' configs need that MONAI does not provide.

- :func:`~monai_attn.bundle.lookup.bundle_dir`: where a bundle lives, so that
  ``python -m monai.bundle run`` works from the repository root or the bundle folder.
- :func:`~monai_attn.training.runs.new_run_dir`: the default run folder of a training run,
  ``runs/<bundle>/<timestamp>/``, outside the bundle whose weights it must not overwrite.
- :func:`~monai_attn.training.schedules.warmup_lr_schedule`: AdamW-friendly linear warm-up
  followed by cosine or polynomial decay, stepped per iteration.
- :class:`~monai_attn.training.inferers.PrecisionInferer`: runs any MONAI inferer under
  autocast (bf16/fp16) and in channels-last layout, returning float32 logits.
- :func:`~monai_attn.training.checkpoints.last_checkpoint`,
  :class:`~monai_attn.training.checkpoints.EpochCheckpointSaver` and
  :class:`~monai_attn.training.checkpoints.KeyMetricState`: resuming an interrupted run from
  its newest complete epoch checkpoint without forgetting the best validation score, keeping
  the last two epoch checkpoints.
- :func:`~monai_attn.training.distributed.distributed_sampler`: the torchrun workflows' data
  sharing, with a one-line error when there are fewer cases than processes.
- :class:`~monai_attn.training.summary.TrainingSummary`: at the end of a run, the last weights
  and a ``model.pt`` always written (the last epoch's, with a warning, when validation never
  ran) and a summary with the publish command.
- :func:`~monai_attn.training.errors.one_line_errors`: input errors end a bundle run as one
  line ``error: <message>`` instead of a traceback.

Example (bundle ``train.json``)::

    "resume_checkpoint": "$monai_attn.training.last_checkpoint(@run_ckpt_dir)",
    "lr_scheduler": {"_target_": "monai_attn.training.warmup_lr_schedule", "optimizer": "@optimizer",
                     "total_steps": "$@epochs * len(@train#dataloader)", "warmup_steps": 50}
"""

from monai_attn.bundle.lookup import bundle_dir
from monai_attn.training.checkpoints import EpochCheckpointSaver, KeyMetricState, last_checkpoint
from monai_attn.training.distributed import default_backend, distributed_sampler
from monai_attn.training.errors import one_line_errors
from monai_attn.training.inferers import PrecisionInferer
from monai_attn.training.runs import new_run_dir
from monai_attn.training.schedules import LR_SCHEDULES, warmup_lr_schedule
from monai_attn.training.summary import TrainingSummary

__all__ = [
    "LR_SCHEDULES",
    "bundle_dir",
    "default_backend",
    "distributed_sampler",
    "EpochCheckpointSaver",
    "KeyMetricState",
    "last_checkpoint",
    "new_run_dir",
    "one_line_errors",
    "TrainingSummary",
    "PrecisionInferer",
    "warmup_lr_schedule",
]
