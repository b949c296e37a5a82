"""Bundle lookup: folder paths, full names and the short names from each bundle's metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from monai_attn.bundle import lookup as bundle_lookup, package_data
from monai_attn.bundle.lookup import DEFAULT_BUNDLE_NAME, default_bundle, installed_bundles, resolve_bundle
from monai_attn.commands import segment
from monai_attn.datasets import DATASETS_DIR
from monai_attn.errors import InputError
from monai_attn.training import bundle_dir

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SHORT = {"abdomen_ct_attention_unet": "ct", "retina_attention_unet": "retina", "cells_attention_unet": "cells"}


def test_source_checkout_finds_the_top_level_folders():
    assert package_data.shipped_folder("bundles") == BUNDLES
    assert DATASETS_DIR == REPO / "datasets"
    assert installed_bundles() == {name: BUNDLES / name for name in sorted(SHORT)}


def test_installed_package_folder_wins_over_the_checkout(tmp_path, monkeypatch):
    """A wheel puts the bundles inside the package; that copy is the one used."""
    package = tmp_path / "site-packages" / "monai_attn"
    shutil.copytree(BUNDLES / "cells_attention_unet" / "configs", package / "bundles" / "cells_attention_unet" / "configs")
    monkeypatch.setattr(package_data.importlib.resources, "files", lambda name: package)
    assert package_data.shipped_folder("bundles") == package / "bundles"
    assert installed_bundles() == {"cells_attention_unet": package / "bundles" / "cells_attention_unet"}
    with pytest.raises(FileNotFoundError, match="without its dataset_descriptors folder"):
        package_data.shipped_folder("dataset_descriptors")


@pytest.mark.parametrize("name", sorted(SHORT))
def test_full_and_short_names_give_the_bundle_folder(name):
    assert json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())["short_name"] == SHORT[name]
    assert resolve_bundle(name) == BUNDLES / name
    assert resolve_bundle(SHORT[name]) == BUNDLES / name


def test_folder_path_is_taken_as_it_is(tmp_path, monkeypatch):
    assert resolve_bundle(tmp_path) == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ct").mkdir()
    assert resolve_bundle("ct") == Path("ct"), "an existing folder comes before the short name"


def test_unknown_bundle_lists_the_known_names(tmp_path):
    with pytest.raises(InputError) as err:
        resolve_bundle(tmp_path / "missing")
    assert str(err.value) == (
        f"{tmp_path / 'missing'}: no such bundle: not a folder, nor one of abdomen_ct_attention_unet (ct), "
        "cells_attention_unet (cells), retina_attention_unet (retina)"
    )


def test_default_bundle_is_the_ct_bundle():
    assert DEFAULT_BUNDLE_NAME == "abdomen_ct_attention_unet"
    assert default_bundle() == BUNDLES / "abdomen_ct_attention_unet"
    assert resolve_bundle(segment.DEFAULT_BUNDLE) == default_bundle()


def test_broken_metadata_is_named(tmp_path, monkeypatch):
    (tmp_path / "b" / "configs").mkdir(parents=True)
    (tmp_path / "b" / "configs" / "metadata.json").write_text("{")
    monkeypatch.setattr(bundle_lookup, "shipped_folder", lambda name: tmp_path)
    with pytest.raises(InputError, match=r"b/configs/metadata.json: unreadable bundle metadata"):
        installed_bundles()


def test_bundle_dir_prefers_a_bundle_copy_in_the_current_folder(tmp_path, monkeypatch):
    copy = tmp_path / "bundles" / "retina_attention_unet"
    shutil.copytree(BUNDLES / "retina_attention_unet" / "configs", copy / "configs")
    monkeypatch.chdir(tmp_path)
    assert Path(bundle_dir("retina_attention_unet")) == copy
    monkeypatch.chdir(copy)
    assert Path(bundle_dir("retina_attention_unet")) == copy
    assert Path(bundle_dir("cells_attention_unet")) == BUNDLES / "cells_attention_unet", "then the installed ones"
    with pytest.raises(InputError, match=r"bundle 'ct' not found in .* or the installed bundles \(abdomen_ct"):
        bundle_dir("ct")  # configs name bundles in full
