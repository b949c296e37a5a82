"""The network's back ends: the inferer's ``backend`` setting and ``segment --backend``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_attn.errors import InputError
from monai_attn.inference import SegmentationInferer
from monai_attn.inference.backends import OpenVINONetwork
from test_inference import ThresholdNet, ct_config, one_thread, phantom_hu, tiny_unet, write_nifti  # noqa: F401
from test_segment_cli import run


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(InputError, match="--backend must be one of auto, torch, openvino, got 'tensorrt'"):
        SegmentationInferer((16, 16, 16), backend="tensorrt")


def test_openvino_backend_refuses_attention_maps_and_torchscript() -> None:
    net = tiny_unet()
    inferer = SegmentationInferer((16, 16, 16), precision="fp32", backend="openvino")
    with pytest.raises(InputError, match="attention maps need backend torch"):
        inferer(torch.rand(1, 1, 16, 16, 16), net, attention_maps=True)
    with pytest.raises(InputError, match="not TorchScript"):
        OpenVINONetwork(torch.jit.script(torch.nn.Conv3d(1, 4, 1)), "fp32")


def test_a_missing_openvino_is_one_line_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(InputError, match=r'openvino is missing\): pip install "monai-attn\[openvino\]"'):
        OpenVINONetwork(tiny_unet(), "fp32")


def test_the_onnx_export_is_silent_and_writes_the_model(tmp_path, capfd) -> None:
    pytest.importorskip("onnxscript")
    from monai_attn.inference.backends import export_onnx

    path = export_onnx(tiny_unet(seed=5), torch.zeros(1, 1, 16, 16, 16), tmp_path / "net.onnx")
    assert path.is_file() and path.stat().st_size > 1000
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no exporter progress lines, warnings or notices reach the user


def test_openvino_backend_gives_the_torch_logits_and_follows_the_weights(tmp_path) -> None:
    """Run in a fresh interpreter: after several OpenVINO conversions in one process, a later
    in-process SIGTERM (as the CLI tests send) crashed that process (a real ``segment --backend
    openvino`` process still stops cleanly on SIGTERM, exit 143). Its own cache folder: the
    check counts the back-end choices written there, which other tests' networks would add to."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxscript")
    tests = str(Path(__file__).parent)
    env = {**os.environ, "MONAI_ATTN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), tests, os.environ.get("PYTHONPATH", "")])}
    code = "import test_backends; test_backends.check_openvino_matches_torch_and_follows_the_weights()"
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def check_openvino_matches_torch_and_follows_the_weights() -> None:
    """OpenVINO logits equal torch's; the network is converted once, and again after new weights or statistics."""
    net = tiny_unet(seed=5)
    torch.manual_seed(1)
    image = torch.rand(1, 1, 24, 20, 16) + 0.01  # 2 x 2 x 1 windows of 16^3, batches of 2 and 2
    torch_inferer = SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32", skip_below=0.0)
    openvino_inferer = SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32", skip_below=0.0, backend="openvino")
    expected = torch_inferer(image, net)
    logits = openvino_inferer(image, net)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert openvino_inferer.counts.run == torch_inferer.counts.run == 4

    cpu = torch.device("cpu")
    converted = openvino_inferer.openvino_network(net, cpu, "fp32", attention_maps=False)
    assert openvino_inferer.openvino_network(net, cpu, "fp32", attention_maps=False) is converted  # converted once
    with torch.no_grad():
        net.heads[0].bias.add_(torch.tensor([0.0, 5.0, 0.0, 0.0]))  # new weights, e.g. after a training epoch
    reconverted = openvino_inferer.openvino_network(net, cpu, "fp32", attention_maps=False)
    assert reconverted is not converted
    torch.testing.assert_close(openvino_inferer(image, net), torch_inferer(image, net), atol=1e-4, rtol=1e-4)
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    norm.running_mean.add_(0.1)  # batch-norm statistics are buffers, not parameters
    assert openvino_inferer.openvino_network(net, cpu, "fp32", attention_maps=False) is not reconverted

    auto_inferer = SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32", skip_below=0.0, backend="auto")
    torch.testing.assert_close(auto_inferer(image, net), torch_inferer(image, net), atol=1e-4, rtol=1e-4)
    choices = list(Path(os.environ["MONAI_ATTN_CACHE_DIR"]).glob("openvino/*/choice.json"))
    assert len(choices) == 1 and auto_inferer.counts.backend == json.loads(choices[0].read_text())["backend"]
    thin = torch.rand(1, 1, 24, 20, 8) + 0.01  # thinner than the window: a fitted 8-deep window runs in torch
    torch.testing.assert_close(auto_inferer(thin, net), torch_inferer(thin, net))
    assert auto_inferer.counts.backend == "torch" and auto_inferer.counts.roi_size[2] == 8


def test_network_digest_follows_weights_statistics_and_window_shape() -> None:
    from monai_attn.inference.backends import network_digest

    net = tiny_unet(seed=5)
    first = network_digest(net, (1, 1, 16, 16, 16), "fp32", "ov")
    assert first == network_digest(tiny_unet(seed=5), (1, 1, 16, 16, 16), "fp32", "ov")  # same weights: same key
    assert first != network_digest(net, (1, 1, 32, 16, 16), "fp32", "ov")
    assert first != network_digest(net, (1, 1, 16, 16, 16), "bf16", "ov")
    assert first != network_digest(net, (1, 1, 16, 16, 16), "fp32", "ov2")
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    norm.running_var.mul_(1.5)
    assert first != network_digest(net, (1, 1, 16, 16, 16), "fp32", "ov")
    assert first != network_digest(tiny_unet(seed=6), (1, 1, 16, 16, 16), "fp32", "ov")


def test_cache_folder_that_cannot_be_written_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog) -> None:
    from monai_attn.inference.backends import CACHE_ENV, openvino_cache_dir, writable_folder

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert openvino_cache_dir() == tmp_path / "cache" / "openvino"
    assert writable_folder(openvino_cache_dir() / "abc") == tmp_path / "cache" / "openvino" / "abc"
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert writable_folder(blocker / "openvino") is None
    assert f"Set {CACHE_ENV} to a writable folder" in caplog.text and str(blocker / "openvino") in caplog.text
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert openvino_cache_dir() == tmp_path / "xdg" / "monai-attn" / "openvino"


def test_a_later_process_loads_the_converted_network_instead_of_converting(tmp_path) -> None:
    """Two fresh interpreters (see the test above for why): the first converts and keeps the
    network on disk, the second gives the same logits without exporting again."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxscript")
    outputs = first_and_second_process("test_backends", "convert_or_load", tmp_path)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    (folder,) = (tmp_path / "cache" / "openvino").iterdir()
    assert {p.name for p in folder.iterdir()} == {"network.xml", "network.bin", "compiled"}


def first_and_second_process(module: str, function: str, tmp_path: Path) -> list[np.ndarray]:
    """Run ``module.function(first, out)`` in two fresh interpreters sharing one cache folder,
    ``first`` True then False; the arrays each saved to ``out``."""
    tests = str(Path(__file__).parent)
    env = {**os.environ, "MONAI_ATTN_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), tests, os.environ.get("PYTHONPATH", "")])}
    outputs = []
    for first in (True, False):
        out = tmp_path / f"logits_{first}.npy"
        code = f"import {module}; {module}.{function}({first}, {str(out)!r})"
        result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(np.load(out))
    return outputs


def convert_or_load(must_convert: bool, out: str) -> None:
    """Run a tiny network in OpenVINO; ``must_convert`` False: exporting to ONNX is an error."""
    import monai_attn.inference.backends as backends

    if not must_convert:
        def refuse(*args, **kwargs):
            raise AssertionError("converted again although the cache holds this network")
        backends.export_onnx = refuse
    torch.manual_seed(1)
    image = torch.rand(1, 1, 16, 16, 16)
    logits = OpenVINONetwork(tiny_unet(seed=5), "fp32")(image)
    with torch.no_grad():
        expected = tiny_unet(seed=5)(image)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    np.save(out, logits.numpy())


def test_auto_backend_is_torch_where_openvino_cannot_run(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed
    net, image = tiny_unet(seed=5), torch.rand(1, 1, 24, 20, 16)
    inferer = SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32", skip_below=0.0, backend="auto")
    torch.testing.assert_close(inferer(image, net), SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32",
                                                                      skip_below=0.0)(image, net))
    assert inferer.counts.backend == "torch"
    cpu = torch.device("cpu")
    assert inferer.resolved_backend(net, cpu, "fp32", 1, 4, attention_maps=False, window=(16, 16, 16)) == "torch"
    monkeypatch.delitem(sys.modules, "openvino")
    meta = torch.device("meta")
    assert inferer.resolved_backend(net, meta, "fp32", 1, 4, attention_maps=False, window=(16, 16, 16)) == "torch"
    assert inferer.resolved_backend(net, cpu, "fp32", 1, 4, attention_maps=True, window=(16, 16, 16)) == "torch"


def test_auto_backend_measures_once_per_cpu_and_keeps_the_figures(tmp_path, monkeypatch) -> None:
    """The choice follows the timers, is read back without timing again, and is timed anew on another CPU."""
    pytest.importorskip("openvino")
    import monai_attn.inference.backends as backends

    monkeypatch.setenv(backends.CACHE_ENV, str(tmp_path))
    net, calls = tiny_unet(seed=5), []

    def timers(openvino_seconds: float) -> dict:
        return {"torch": lambda: calls.append("torch") or 1.0, "openvino": lambda: calls.append("ov") or openvino_seconds}

    shape = (1, 1, 16, 16, 16)
    assert backends.fastest_backend(net, "fp32", shape, timers(0.5)) == "openvino" and calls == ["torch", "ov"]
    (record,) = tmp_path.glob("openvino/*/choice.json")
    saved = json.loads(record.read_text())
    assert saved["seconds_per_window"] == {"torch": 1.0, "openvino": 0.5} and saved["window"] == [16, 16, 16]
    assert backends.fastest_backend(net, "fp32", shape, timers(2.0)) == "openvino" and len(calls) == 2  # read back
    assert backends.fastest_backend(net, "bf16", shape, timers(2.0)) == "torch" and len(calls) == 4  # other precision
    monkeypatch.setattr(backends, "cpu_model", lambda: "another CPU")
    assert backends.fastest_backend(net, "fp32", shape, timers(2.0)) == "torch" and len(calls) == 6


def test_segment_refuses_openvino_for_torchscript_before_any_case(tmp_path, capsys) -> None:
    weights = tmp_path / "threshold.ts"
    torch.jit.save(torch.jit.script(ThresholdNet()), str(weights))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ct_config(roi_size=[32, 32, 32], spacing_mm=None, postprocess=False)))
    case = write_nifti(tmp_path / "case.nii.gz", phantom_hu(), np.eye(4))
    out = tmp_path / "out"
    args = ["-i", case, "-o", out / "case.nii.gz", "--model", weights, "--config", config, "--trust-config",
            "--device", "cpu", "--backend", "openvino"]
    code, err = run(args, capsys)
    assert code == 1
    assert err.startswith("error: backend openvino converts a network module, not TorchScript") and err.count("\n") == 1
    assert not out.exists()  # refused before any case ran
