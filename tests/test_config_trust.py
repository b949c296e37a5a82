"""The trust boundary for configs: what an untrusted config may hold, and the exact refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_attn.config_trust import check_config_trusted
from monai_attn.errors import InputError

ADVICE = "a config from outside the package may not run code; pass --trust-config if you trust it"
SAFE = {
    "network_def": {"_target_": "monai_attn.networks.GridAttentionUNet", "spatial_dims": 3, "channels": [8, 16]},
    "loss": {"_target_": "torch.nn.CrossEntropyLoss"},
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


@pytest.mark.parametrize(
    "config, where, why",
    [
        ({"segmenter": {"overlap": "$__import__('os').system('touch x') or 0.5"}}, "segmenter::overlap",
         "is a $-expression ($__import__('os').system('touch x') or 0.5), which runs as Python"),
        ({"a": ["x", {"b": "$@roi"}]}, "a::1::b", "is a $-expression ($@roi), which runs as Python"),
        ({"net": {"_target_": "os.system", "command": "id"}}, "net::_target_",
         "'os.system' is outside monai.*, monai_attn.*, torch.*"),
        ({"net": {"_target_": "monaix.evil.Thing"}}, "net::_target_",
         "'monaix.evil.Thing' is outside monai.*, monai_attn.*, torch.*"),
        ({"net": {"_target_": "$eval(1)"}}, "net::_target_", "'$eval(1)' is not a plain module.name"),
        ({"net": {"_target_": 5}}, "net::_target_", "'5' is not a plain module.name"),
        ({"net": {"_target_": "Compose", "_mode_": "debug"}}, "net::_mode_", "'debug' is not one of default, callable"),
        ({"x": "%../elsewhere.json#a"}, "x", "macro '%../elsewhere.json#a' reads a file outside the config's folder"),
        ({"x": "%/etc/passwd.json::a"}, "x", "macro '%/etc/passwd.json::a' reads a file outside the config's folder"),
        ({"_target_": "builtins.exec"}, "_target_", "'builtins.exec' is outside monai.*, monai_attn.*, torch.*"),
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


def test_allow_list_can_be_narrowed(tmp_path):
    config = {"loss": {"_target_": "torch.nn.CrossEntropyLoss"}}
    check_config_trusted(config, tmp_path / "c.json")
    with pytest.raises(InputError, match=r"loss::_target_ 'torch.nn.CrossEntropyLoss' is outside monai.\*"):
        check_config_trusted(config, tmp_path / "c.json", allowed_prefixes=("monai.",))


def test_macro_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.json").write_text("{}")
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "link.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(InputError, match="reads a file outside"):
        check_config_trusted({"x": "%link.json#a"}, folder / "c.json")
    check_config_trusted({"x": "%sub/inside.json#a"}, folder / "c.json")


@pytest.mark.parametrize(
    "target, why",
    [
        ("monai.utils.run_cmd", "'monai.utils.run_cmd' runs code, downloads, or reads or writes pickles "
                                "(denied: monai.utils.run_cmd)"),
        ("monai.utils.misc.run_cmd", "(denied: monai.utils.misc.run_cmd)"),
        ("monai.bundle.run", "(denied: monai.bundle.*)"),
        ("monai.utils.module.look_up", "(denied: monai.utils.module.*)"),
        ("torch.load", "(denied: torch.load)"),
        ("torch.save", "(denied: torch.save)"),
        ("torch.hub.load", "(denied: torch.hub.*)"),
        ("torch.utils.cpp_extension.load_inline", "(denied: torch.utils.cpp_extension.*)"),
        ("monai.apps.download_and_extract", "(denied: monai.apps.download_and_extract)"),
        ("run_cmd", "'run_cmd' resolves to a MONAI callable that runs code, downloads or unpickles"),
        ("ConfigParser", "'ConfigParser' resolves to a MONAI callable"),
        ("optional_import", "'optional_import' resolves to a MONAI callable"),
    ],
)
def test_callables_that_run_code_are_refused_inside_allowed_prefixes(tmp_path, target, why):
    with pytest.raises(InputError) as err:
        check_config_trusted({"step": {"_target_": target, "cmd_list": ["id"]}}, tmp_path / "c.json")
    assert str(err.value).startswith(f"{tmp_path / 'c.json'}: step::_target_ '{target}' ")
    assert why in str(err.value)


def test_lookalikes_of_denied_names_are_allowed(tmp_path):
    config = {"a": {"_target_": "torch.loader_free_name"}, "b": {"_target_": "LoadImaged"},
              "c": {"_target_": "monai.bundles_are_not_this"}, "d": {"_target_": "torch.nn.Module.load_state_dict"}}
    check_config_trusted(config, tmp_path / "c.json")
