"""Settings every test shares: converted networks are cached in a temporary folder, never in the user's cache."""

from __future__ import annotations

import os

import pytest

from monai_attn.inference.backends import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """``$MONAI_ATTN_CACHE_DIR`` in a session folder (subprocesses inherit it)."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before
