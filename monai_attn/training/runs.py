"""Run folders: where a training run writes, so that it never writes into a bundle.

A bundle's ``train.json`` writes its checkpoints (``models/checkpoint_epoch=N.pt``, the best
``models/model.pt``) and TensorBoard events to ``output_dir``, by default a new
``runs/<bundle>/<YYYYmmdd-HHMMSS>/`` under the current folder. Passing an existing run folder
as ``--output_dir`` resumes that run. The shipped ``models/model.pt`` of a bundle changes only
through ``monai-attn publish``.
"""

from __future__ import annotations

import os
import time


def new_run_dir(bundle_name: str, root: str | os.PathLike = "runs") -> str:
    """``<root>/<bundle_name>/<local time as YYYYmmdd-HHMMSS>``, relative to the current folder.

    Only the path: the folder is created by whatever writes into it first.
    """
    return os.path.join(os.fspath(root), bundle_name, time.strftime("%Y%m%d-%H%M%S"))
