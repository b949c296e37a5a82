"""Int8 networks (``precision int8``): calibration windows, the refusals, agreement with fp32."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from monai_attn.errors import InputError
from monai_attn.inference import PhantomCalibration, SegmentationInferer
from monai_attn.inference.backends import OpenVINONetwork
from monai_attn.inference.devices import resolve_precision
from monai_attn.inference.quantize import quantized, tiles
from monai_attn.presets import ct_inference_transforms
from test_backends import first_and_second_process
from test_inference import tiny_unet


def test_tiles_cover_the_volume_with_the_last_window_flush_and_padding_where_short() -> None:
    volume = np.arange(10 * 5 * 3, dtype=np.float32).reshape(1, 10, 5, 3) + 1
    windows = list(tiles(volume, (4, 4, 4)))
    assert len(windows) == 3 * 2 * 1 and all(w.shape == (1, 4, 4, 4) for w in windows)
    np.testing.assert_array_equal(windows[-1][0, :, :, :3], volume[0, 6:10, 1:5, :])  # flush with the ends
    assert not windows[0][0, :, :, 3].any()  # z is 3 deep: padded with zeros (air)
    covered = set()
    for w in windows:
        covered |= set(w[w > 0].tolist())
    assert covered == set(volume.ravel().tolist())


def test_phantom_calibration_windows_are_reproducible_network_inputs() -> None:
    preprocessing = ct_inference_transforms(spacing_mm=(4.0, 4.0, 4.0), hu_window=(-175, 250),
                                            body_threshold_hu=-500, body_margin_mm=10)
    calibration = PhantomCalibration(preprocessing, cases=1)
    first, second = calibration.windows((1, 1, 32, 32, 32)), calibration.windows((1, 1, 32, 32, 32))
    assert len(first) >= 4 and all(w.shape == (1, 1, 32, 32, 32) and w.dtype == np.float32 for w in first)
    assert all(0.0 <= w.min() and 0.0 < w.max() <= 1.0 for w in first)  # scaled HU window, no empty window
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert calibration.name == "1 CT phantoms of seed 9000"


def test_int8_is_refused_in_torch_off_the_cpu_and_without_calibration() -> None:
    inferer = SegmentationInferer((16, 16, 16), precision="int8", backend="torch")
    with pytest.raises(InputError, match="precision int8 runs in OpenVINO: use --backend openvino or auto"):
        inferer(torch.rand(1, 1, 16, 16, 16), tiny_unet())
    with pytest.raises(InputError, match="precision int8 runs on the CPU"):
        resolve_precision("int8", torch.device("cuda"))
    with pytest.raises(InputError, match="int8 needs calibration windows"):
        OpenVINONetwork(tiny_unet(), "int8")


def test_a_missing_nncf_is_one_line_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(InputError, match=r'int8 needs nncf .*pip install "monai-attn\[openvino\]"'):
        quantized(None, [])


class RandomWindows:
    """Calibration stand-in: seeded random windows (the real one generates CT phantoms)."""

    name = "8 random windows"

    def windows(self, shape):
        generator = np.random.default_rng(0)
        return [generator.random(shape, dtype=np.float32) for _ in range(8)]


def test_int8_network_agrees_with_fp32_and_a_later_process_loads_it(tmp_path) -> None:
    """Fresh interpreters, as for the other OpenVINO conversions (tests/test_backends.py)."""
    for module in ("openvino", "onnxscript", "nncf"):
        pytest.importorskip(module)
    outputs = first_and_second_process("test_quantize", "quantise_or_load", tmp_path)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def quantise_or_load(must_quantise: bool, out: str) -> None:
    """Int8 logits of a tiny network against fp32; ``must_quantise`` False: quantising again is an error."""
    import monai_attn.inference.quantize as quantize

    if not must_quantise:
        def refuse(*args, **kwargs):
            raise AssertionError("quantised again although the cache holds this network")
        quantize.quantized = refuse
    net = tiny_unet(seed=5)
    image = torch.from_numpy(RandomWindows().windows((1, 1, 16, 16, 16))[3])
    logits = OpenVINONetwork(net, "int8", RandomWindows())(image)
    with torch.no_grad():
        expected = net(image)
    agreement = float((logits.argmax(1) == expected.argmax(1)).float().mean())
    error = float((logits - expected).abs().max() / expected.abs().max())
    assert agreement > 0.95 and error < 0.1, (agreement, error)
    assert not torch.equal(logits, expected)  # int8 indeed: not the fp32 network's exact logits
    np.save(out, logits.numpy())
