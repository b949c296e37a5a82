"""ONNX export as the bundle docs show it: dynamic spatial axes, run by onnxruntime at another size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")  # torch.onnx.export's default (torch.export-based) exporter
ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "cells_attention_unet"
TINY = [4, 8, 16, 32]
DYNAMIC = {"x": {0: "batch", 2: "height", 3: "width"}}  # forward(x) of GridAttentionUNet


@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")  # torch.export internals
def test_cells_network_exports_with_dynamic_spatial_axes(tmp_path: Path) -> None:
    from monai.bundle import ConfigParser, onnx_export

    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "common.json"), str(BUNDLE / "configs" / "inference.json")])
    parser["network_def#channels"] = TINY
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    torch.save(network.state_dict(), tmp_path / "model.pt")

    onnx_file = tmp_path / "model.onnx"
    onnx_export(  # python -m monai.bundle onnx_export network_def ... (bundle README, "MONAI Bundle Commands")
        net_id="network_def",
        filepath=str(onnx_file),
        ckpt_file=str(tmp_path / "model.pt"),
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        config_file=[str(BUNDLE / "configs" / "common.json"), str(BUNDLE / "configs" / "inference.json")],
        input_shape=[1, 1, 64, 64],
        use_trace=True,
        converter_kwargs={"input_names": ["image"], "output_names": ["pred"], "dynamic_shapes": DYNAMIC},
        **{"network_def#channels": TINY},
    )
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", 1, "height", "width"]]

    image = torch.randn(2, 1, 96, 128)  # another batch size and another, non-square size than exported
    (logits,) = session.run(None, {"image": image.numpy()})
    with torch.no_grad():
        expected = network(image)
    assert logits.shape == (2, 2, 96, 128)
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=1e-4)
