"""The trust boundary for configs: what an untrusted config may hold, and the exact refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_attn.bundle.trust import check_config_trusted
from monai_attn.errors import InputError

ADVICE = "a config from outside the package may not run code; pass --trust-config if you trust it"
SAFE = {
    "network_def": {"_target_": "monai_attn.networks.GridAttentionUNet", "spatial_dims": 3, "channels": [8, 16]},
    "loss": {"_target_": "torch.nn.CrossEntropyLoss"},
    "reader": {"_target_": "LoadImaged", "keys": "image", "reader": "NibabelReader"},
    "preprocessing": {"_target_": "Compose", "transforms": [{"_target_": "monai.transforms.LoadImaged", "keys": "image"}]},
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@roi", "_mode_": "default"},
    "roi": [96, 96, 96],
    "copy": "%#roi",
    "sibling": "%other.json#roi",
    "deep": {"list": [1, "text with $ inside", {"price": "10 $"}]},
}


def test_installed_bundle_configs_hold_code_and_are_refused():
    """The shipped bundles use $-expressions (they are trusted because they ship with the package)."""
    config_path = Path("bundles/abdomen_ct_attention_unet/configs/inference.json")
    with pytest.raises(InputError, match=r"is a \$-expression"):
        check_config_trusted(json.loads(config_path.read_text()), config_path)


def test_a_config_of_plain_values_and_allowed_targets_passes(tmp_path):
    check_config_trusted(SAFE, tmp_path / "config.json")  # returns None, raises nothing


OUTSIDE = "which is not on the allow-list of classes a config may build"


@pytest.mark.parametrize(
    "config, where, why",
    [
        ({"segmenter": {"overlap": "$__import__('os').system('touch x') or 0.5"}}, "segmenter::overlap",
         "is a $-expression ($__import__('os').system('touch x') or 0.5), which runs as Python"),
        ({"a": ["x", {"b": "$@roi"}]}, "a::1::b", "is a $-expression ($@roi), which runs as Python"),
        ({"net": {"_target_": "os.system", "command": "id"}}, "net::_target_",
         "'os.system' does not resolve to a class under monai, monai_attn, torch, ignite"),
        ({"net": {"_target_": "monaix.evil.Thing"}}, "net::_target_",
         "'monaix.evil.Thing' does not resolve to a class under monai, monai_attn, torch, ignite"),
        ({"net": {"_target_": "$eval(1)"}}, "net::_target_", "'$eval(1)' is not a plain module.name"),
        ({"net": {"_target_": 5}}, "net::_target_", "'5' is not a plain module.name"),
        ({"net": {"_target_": "Compose", "_mode_": "debug"}}, "net::_mode_", "'debug' is not one of default, callable"),
        ({"x": "%../elsewhere.json#a"}, "x", "macro '%../elsewhere.json#a' reads a file outside the config's folder"),
        ({"x": "%/etc/passwd.json::a"}, "x", "macro '%/etc/passwd.json::a' reads a file outside the config's folder"),
        ({"_target_": "builtins.exec"}, "_target_", "'builtins.exec' does not resolve to a class under"),
    ],
    ids=["expression", "reference-expression", "os-target", "lookalike-prefix", "expression-target", "non-string-target",
         "debug-mode", "macro-parent", "macro-absolute", "top-level-target"],
)
def test_the_first_offending_key_path_is_named(tmp_path, config, where, why):
    source = tmp_path / "cfg.json"
    with pytest.raises(InputError) as err:
        check_config_trusted(config, source)
    message = str(err.value)
    assert message.startswith(f"{source}: {where} {why}")
    assert message.endswith(ADVICE)


def test_the_first_offence_in_document_order_is_reported(tmp_path):
    config = {"ok": 1, "first": {"_target_": "subprocess.run"}, "second": "$x"}
    with pytest.raises(InputError, match=r"first::_target_ 'subprocess.run'"):
        check_config_trusted(config, tmp_path / "c.json")


def test_macro_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.json").write_text("{}")
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "link.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(InputError, match="reads a file outside"):
        check_config_trusted({"x": "%link.json#a"}, folder / "c.json")
    check_config_trusted({"x": "%sub/inside.json#a"}, folder / "c.json")


def test_a_macro_file_inside_the_folder_is_checked_whole(tmp_path):
    (tmp_path / "parts.json").write_text(json.dumps({"a": 1, "b": {"_target_": "torch.os.system", "command": "id"}}))
    with pytest.raises(InputError) as err:
        check_config_trusted({"x": "%parts.json#a"}, tmp_path / "c.json")
    assert str(err.value).startswith(f"{tmp_path / 'parts.json'}: b::_target_ 'torch.os.system' resolves to callable")
    (tmp_path / "loop.json").write_text(json.dumps({"a": "%loop.json#a"}))  # a macro cycle ends, refused or not
    check_config_trusted({"x": "%loop.json#a"}, tmp_path / "c.json")


# ------------------------------------------------------------------------------------------------
# adversarial suite: routes to code through allowed packages; each must be refused
# ------------------------------------------------------------------------------------------------
ROUTES = {
    "attribute-through-torch": "torch.os.system",
    "attribute-through-monai": "monai.os.system",
    "attribute-through-package": "monai_attn.inference.models.os.system",
    "exec-with-source": "torch.fx.graph_module._exec_with_source",
    "builtins-through-torch": "torch.builtins.eval",
    "subprocess-through-monai": "monai.utils.misc.subprocess.run",
    "getattr-chain-globals": "monai.transforms.Compose.__init__.__globals__",
    "metaclass": "monai.transforms.Compose.__class__",
    "subclasses": "torch.nn.Module.__subclasses__",
    "method": "torch.nn.Module.load_state_dict",
    "run-cmd": "monai.utils.run_cmd",
    "run-cmd-bare": "run_cmd",
    "config-parser-bare": "ConfigParser",
    "bundle-run": "monai.bundle.run",
    "optional-import": "monai.utils.optional_import",
    "torch-load": "torch.load",
    "torch-hub": "torch.hub.load",
    "cpp-extension": "torch.utils.cpp_extension.load_inline",
    "jit-load": "torch.jit.load",
    "lambda-transform": "Lambdad",
    "lambda-scheduler": "torch.optim.lr_scheduler.LambdaLR",
    "persistent-dataset": "monai.data.PersistentDataset",
    "torchvision-wrapper": "monai.transforms.TorchVisiond",
    "trusted-loader": "monai_attn.bundle.configs.bundle_parser",
    "segmenter-factory": "monai_attn.inference.Segmenter.from_bundle",
    "cli-main": "monai_attn.cli.main",
    "download": "monai.apps.download_and_extract",
    "network-that-downloads": "monai.networks.nets.TorchVisionFCModel",
}


@pytest.mark.parametrize("target", list(ROUTES.values()), ids=list(ROUTES))
def test_adversarial_targets_are_refused(tmp_path, target):
    with pytest.raises(InputError) as err:
        check_config_trusted({"step": {"_target_": target, "command": "touch pwned"}}, tmp_path / "c.json")
    assert str(err.value).startswith(f"{tmp_path / 'c.json'}: step::_target_ '{target}' ")
    assert str(err.value).endswith(ADVICE)


@pytest.mark.parametrize("key, value", [("reader", "subprocess.run"), ("writer", "os.system"),
                                        ("reader", ["NibabelReader", "monai.utils.run_cmd"])])
def test_names_monai_resolves_inside_arguments_are_refused(tmp_path, key, value):
    with pytest.raises(InputError, match=rf"step::{key} .* is not one of MONAI's image readers or writers"):
        check_config_trusted({"step": {"_target_": "LoadImaged", "keys": "image", key: value}}, tmp_path / "c.json")


def test_partial_and_callable_mode_only_wrap_allowed_objects(tmp_path):
    check_config_trusted({"f": {"_target_": "monai.transforms.ScaleIntensityRange", "_mode_": "callable"}},
                         tmp_path / "c.json")
    with pytest.raises(InputError, match="not on the allow-list"):
        check_config_trusted({"f": {"_target_": "torch.functools.partial", "func": "@g", "_mode_": "callable"}},
                             tmp_path / "c.json")


def test_the_same_class_is_allowed_whatever_path_reaches_it(tmp_path):
    for target in ("Compose", "monai.transforms.Compose", "monai.transforms.compose.Compose", "torch.nn.CrossEntropyLoss"):
        check_config_trusted({"t": {"_target_": target}}, tmp_path / "c.json")


def test_every_target_of_the_shipped_configs_is_allowed():
    """The allow-list covers what the package's own configs build (their $-expressions aside)."""
    from monai_attn.bundle.trust import is_allowed_object, resolve_target

    targets = set()

    def collect(node):
        if isinstance(node, dict):
            targets.update(v for k, v in node.items() if k == "_target_")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    for path in Path("bundles").glob("*/configs/*.json"):
        collect(json.loads(path.read_text()))
    refused = sorted(t for t in targets if not is_allowed_object(resolve_target(t)))
    assert len(targets) > 30 and refused == []


# ------------------------------------------------------------------------------------------------
# end to end: `segment` refuses the reported routes before anything runs
# ------------------------------------------------------------------------------------------------
def _segment(tmp_path, capsys, *extra) -> tuple[int, str]:
    import nibabel as nib
    import numpy as np

    from monai_attn.cli import main

    case = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), str(case))
    code = main(["segment", "-i", str(case), "-o", str(tmp_path / "out.nii.gz"), *map(str, extra)])
    return code, capsys.readouterr().err


def test_segment_refuses_a_config_that_reaches_os_system_through_torch(tmp_path, capsys):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.json"
    config.write_text(json.dumps({"network_def": {"_target_": "torch.os.system", "command": f"touch {marker}"}}))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    code, err = _segment(tmp_path, capsys, "--model", weights, "--config", config)
    assert code != 0 and not marker.exists()
    assert f"{config}: network_def::_target_ 'torch.os.system' resolves to callable system" in err
    assert "Traceback" not in err and not (tmp_path / "out.nii.gz").exists()


def test_segment_refuses_a_copied_bundle_whose_metadata_holds_code(tmp_path, capsys):
    import shutil

    from monai_attn.bundle.configs import is_shipped_bundle

    marker = tmp_path / "pwned"
    bundle = tmp_path / "bundle"
    shutil.copytree("bundles/abdomen_ct_attention_unet", bundle, ignore=shutil.ignore_patterns("*.pt", "docs"))
    assert is_shipped_bundle(bundle)  # an exact copy of the configs is the shipped bundle
    meta_path = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["network_data_format"]["outputs"]["pred"]["channel_def"]["1"] = f"$__import__('os').system('touch {marker}')"
    meta_path.write_text(json.dumps(meta, indent=4))
    assert not is_shipped_bundle(bundle)
    code, err = _segment(tmp_path, capsys, "--bundle", bundle)
    assert code != 0 and not marker.exists()
    assert "is a $-expression" in err and "pass --trust-config if you trust it" in err


def test_a_shipped_config_beside_foreign_metadata_is_not_trusted():
    from monai_attn.bundle.configs import matches_shipped_bundle

    folder = Path("bundles/abdomen_ct_attention_unet/configs")
    configs = {name: json.loads((folder / name).read_text()) for name in ("common.json", "inference.json")}
    meta = json.loads((folder / "metadata.json").read_text())
    assert matches_shipped_bundle(configs, meta)
    assert not matches_shipped_bundle(configs, {**meta, "version": "$print(1)"})
    assert not matches_shipped_bundle({}, meta)
