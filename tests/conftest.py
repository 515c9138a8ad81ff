from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Dataset manifests go to a fresh cache per test, not the user's ~/.cache."""
    monkeypatch.setenv("MVIT_LAB_CACHE", str(tmp_path_factory.mktemp("mvit-lab-cache")))
