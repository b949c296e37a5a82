"""BundleSpec: what each shipped bundle declares, read from JSON alone, and the CLI asking it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from monai_attn.bundle.lookup import resolve_bundle
from monai_attn.bundle.settings import SETTINGS
from monai_attn.bundle.spec import BundleSpec
from monai_attn.cli import main
from monai_attn.errors import InputError


@pytest.mark.parametrize("bundle, dims, divisor, task", [("ct", 3, 16, "ct"), ("retina", 2, 8, "fundus"),
                                                         ("cells", 2, 8, "em")])
def test_spec_of_each_shipped_bundle(bundle, dims, divisor, task):
    spec = BundleSpec.read(resolve_bundle(bundle))
    assert (spec.spatial_dims, spec.size_divisor, spec.task) == (dims, divisor, task)
    assert len(spec.defaults["roi_size"]) == dims
    assert spec.output_types == (("nifti",) if task == "ct" else ("png",))


def test_size_divisor_is_the_networks_own():
    """The spec's divisor (read from JSON) equals the built network's attribute."""
    from monai_attn.bundle.configs import bundle_parser

    for bundle in ("ct", "retina", "cells"):
        folder = resolve_bundle(bundle)
        network = bundle_parser(folder).get_parsed_content("network_def")
        assert BundleSpec.read(folder).size_divisor == network.size_divisor


def test_display_window_follows_references():
    assert BundleSpec.read(resolve_bundle("ct")).display_window == (-175.0, 250.0)
    assert BundleSpec.read(resolve_bundle("cells")).display_window is None


def test_declared_settings():
    ct, cells = BundleSpec.read(resolve_bundle("ct")), BundleSpec.read(resolve_bundle("cells"))
    assert ct.declares("adaptive_roi") and ct.declares("skip_empty_windows") and ct.declares("backend")
    assert not cells.declares("adaptive_roi") and not cells.declares("postprocess")
    assert set(ct.defaults) <= set(SETTINGS)


def test_expressions_are_not_evaluated(tmp_path):
    config = {"task": "em", "roi_size": "$__import__('os').getcwd()", "overlap": "@missing",
              "network_def": {"_target_": "monai_attn.networks.GridAttentionUNet", "spatial_dims": 2,
                              "channels": "$[1, 2, 3]"}}
    spec = BundleSpec.from_config(config, {"name": "x"})
    assert spec.defaults["roi_size"] is None and spec.defaults["overlap"] is None
    assert spec.size_divisor is None


def test_monai_unet_divisor_from_strides():
    config = {"network_def": {"_target_": "UNet", "spatial_dims": 3, "strides": [2, 2, [2, 2, 1]]}}
    assert BundleSpec.from_config(config, {}).size_divisor == 8


@pytest.mark.parametrize("bundle, roi, message", [
    ("retina", [256, 256, 256], r"^--roi-size takes 2 numbers for the 2-D bundle retina_attention_unet, got 3"),
    ("ct", [96, 96], r"^--roi-size takes 3 numbers for the 3-D bundle abdomen_ct_attention_unet, got 2"),
    ("cells", [101, 96], r"^--roi-size 101 96 is not divisible by 8 .*; try 104 96$"),
])
def test_roi_size_checked_by_the_bundles_dimensions(bundle, roi, message):
    with pytest.raises(InputError, match=message):
        BundleSpec.read(resolve_bundle(bundle)).check_overrides({"roi_size": roi})


def test_undeclared_setting_is_refused_naming_the_bundle():
    with pytest.raises(InputError, match=r"^--adaptive-roi: bundle cells_attention_unet has no 'adaptive_roi' setting"):
        BundleSpec.read(resolve_bundle("cells")).check_overrides({"adaptive_roi": True})
    assert BundleSpec.read(resolve_bundle("retina")).check_overrides({"roi_size": [256, 256]}) == {"roi_size": (256, 256)}


@pytest.mark.parametrize("argv, message", [
    (["--bundle", "cells", "--roi-size", "64", "64", "64"], "--roi-size takes 2 numbers"),
    (["--bundle", "retina", "--no-skip-air"], "--no-skip-air: bundle retina_attention_unet has no 'skip_empty_windows'"),
    (["--bundle", "cells", "--no-postprocess"], "--no-postprocess: bundle cells_attention_unet has no 'postprocess'"),
    (["--roi-size", "96", "96"], "--roi-size takes 3 numbers"),
])
def test_cli_refuses_in_one_line(argv, message, tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    assert main(["segment", "-i", str(image), "-o", str(tmp_path / "out"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_spec_of_a_config_file_and_its_metadata(tmp_path):
    shutil.copytree(resolve_bundle("cells") / "configs", tmp_path / "configs")
    spec = BundleSpec.from_config_file(tmp_path / "configs" / "common.json")
    assert (spec.name, spec.spatial_dims) == ("cells_attention_unet", 2)


def test_spec_of_a_torchscript_file_without_loading_it(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.jit.script(torch.nn.Identity())
    configs = resolve_bundle("retina") / "configs"
    extra = {name: (configs / name).read_text() for name in ("common.json", "inference.json", "metadata.json")}
    torch.jit.save(module, str(tmp_path / "m.ts"), _extra_files=extra)
    spec = BundleSpec.from_torchscript(tmp_path / "m.ts")
    assert (spec.name, spec.spatial_dims, spec.size_divisor) == ("retina_attention_unet", 2, 8)
    torch.jit.save(module, str(tmp_path / "bare.ts"))
    assert BundleSpec.from_torchscript(tmp_path / "bare.ts") is None


def test_reading_a_spec_needs_neither_torch_nor_monai():
    script = ("import sys, json\nfrom monai_attn.bundle import BundleSpec, resolve_bundle\n"
              "BundleSpec.read(resolve_bundle('ct'))\nprint(json.dumps(['torch' in sys.modules, 'monai' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert json.loads(done.stdout) == [False, False], done.stderr
