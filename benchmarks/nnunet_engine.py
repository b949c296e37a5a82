"""nnU-Net v2's sliding-window engine as an inferer of :class:`monai_attn.inference.Segmenter`.

The ``nnunet`` baseline of ``inference.py`` keeps everything of ``monai-attn segment``
(reading, body crop, resampling, intensity window, post-processing, inversion, writing) and
swaps only the network stage for ``nnUNetPredictor.predict_sliding_window_return_logits``:
tiles of the model's ``roi_size`` at tile step 0.5, Gaussian weighting, no mirroring, fp32
on the CPU (nnU-Net uses autocast only on CUDA), logits accumulated in float16 as nnU-Net
does. The comparison is then between two sliding-window engines on the same input and
network.

nnunetv2 is not a dependency of monai-attn: :func:`nnunet_missing` says why the baseline
cannot run, and ``inference.py`` skips it with that message.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

#: nnU-Net's tile step (fraction of the tile size), its default.
TILE_STEP = 0.5


def nnunet_missing() -> str | None:
    """None when nnunetv2's predictor imports; otherwise a one-line reason to skip the baseline."""
    if importlib.util.find_spec("nnunetv2") is None:
        return "nnunetv2 is not installed (pip install nnunetv2)"
    try:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor  # noqa: F401
    except ImportError as err:
        return f"nnunetv2 does not import: {err}"
    return None


class NnUNetEngine:
    """Callable like :class:`~monai_attn.inference.SegmentationInferer`: ``(inputs, network) -> logits``.

    Args:
        roi_size: nnU-Net's ``patch_size`` (tile size in voxels).
        num_classes: output channels of the network.
        device: where the network runs (``"cpu"`` or ``"cuda"``).

    After each call :attr:`windows_run` is the number of tiles that went through the network.
    """

    def __init__(self, roi_size: Sequence[int], num_classes: int, device: str) -> None:
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.predictor = nnUNetPredictor(
            tile_step_size=TILE_STEP, use_gaussian=True, use_mirroring=False,
            perform_everything_on_device=device.startswith("cuda"), device=torch.device(device),
            verbose=False, allow_tqdm=False,
        )
        # what predict_sliding_window_return_logits reads of a trained model folder's plans
        self.predictor.configuration_manager = SimpleNamespace(patch_size=[int(r) for r in roi_size])
        self.predictor.label_manager = SimpleNamespace(num_segmentation_heads=int(num_classes))
        self.predictor.allowed_mirroring_axes = None
        self.windows_run = 0

    def __call__(self, inputs: Any, network: Any, attention_maps: bool = False) -> Any:
        """(1, C, *S) network input -> (1, classes, *S) float32 logits."""
        if attention_maps:
            raise ValueError("the nnU-Net engine does not stitch attention maps")
        counted = [0]
        hook = network.register_forward_pre_hook(lambda module, args: counted.__setitem__(0, counted[0] + args[0].shape[0]))
        try:
            self.predictor.network = network
            image = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs  # a MetaTensor's plain tensor
            logits = self.predictor.predict_sliding_window_return_logits(image[0].float())
        finally:
            hook.remove()
        self.windows_run = counted[0]
        return logits.float()[None]
