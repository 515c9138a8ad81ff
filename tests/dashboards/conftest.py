"""Fixture stores for the dashboard tests (the sweeps are described in dashboard_store.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dashboard_store import (
    ABLATION_SPACE,
    ABLATION_TRIALS,
    LADDER_SPACE,
    LADDER_TRIALS,
    PLANTED_SPACE,
    PLANTED_TRIALS,
    copy_store,
    write_sweep,
)

from mvit_lab.tracking import default_tracking_uri, ensure_experiment


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An empty store, migrated once (Alembic takes seconds)."""
    base = tmp_path_factory.mktemp("empty-store")
    ensure_experiment("warmup", default_tracking_uri(base))
    return base / "mlruns.db"


@pytest.fixture(scope="session")
def fixture_db(tmp_path_factory, migrated_db) -> dict[str, Any]:
    """The hand-made sweeps; read-only (tests that write use ``fixture_copy``)."""
    base = tmp_path_factory.mktemp("fixture-store")
    uri = copy_store(migrated_db, base)
    ablation, ablation_runs = write_sweep(uri, "ablation", ABLATION_SPACE,
                                          dict(val_top1="max", gflops="min"), ABLATION_TRIALS)
    ladder, _ = write_sweep(uri, "ladder", LADDER_SPACE, dict(val_top1="max", throughput="max"),
                            LADDER_TRIALS, mode="ladder")
    write_sweep(uri, "failing", ABLATION_SPACE, dict(val_top1="max", gflops="min"), [
        dict(point="pool_mode=max", seed=s, model=dict(pool_mode="max"), status="failed",
             reason="RuntimeError: out of memory") for s in (0, 1)])
    write_sweep(uri, "no_throughput", ABLATION_SPACE, dict(val_top1="max", throughput="max"),
                [dict(t, metrics={k: v for k, v in t["metrics"].items() if k != "throughput"})
                 for t in ABLATION_TRIALS[:2]])
    return dict(uri=uri, db=base / "mlruns.db", ablation=ablation, ladder=ladder,
                ablation_runs=ablation_runs)


@pytest.fixture
def fixture_store(fixture_db) -> dict[str, Any]:
    return fixture_db


@pytest.fixture
def fixture_copy(fixture_db, tmp_path) -> dict[str, Any]:
    """A private copy of the fixture store, for tests that write to it."""
    return dict(fixture_db, uri=copy_store(fixture_db["db"], tmp_path / "store"))


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory, migrated_db) -> dict[str, Any]:
    """Issue 18's store (its own, so the counts the other tests check stay): ``planted``, a
    sampled sweep where embed_dim alone drives top-1 and mlp_ratio alone GFLOPs, and
    ``ablation`` (the grid above) in a second experiment to set beside it."""
    base = tmp_path_factory.mktemp("planted-store")
    uri = copy_store(migrated_db, base)
    planted, planted_runs = write_sweep(uri, "planted", PLANTED_SPACE,
                                        dict(val_top1="max", gflops="min"), PLANTED_TRIALS,
                                        mode="params")
    ablation, _ = write_sweep(uri, "ablation", ABLATION_SPACE,
                              dict(val_top1="max", gflops="min"), ABLATION_TRIALS)
    return dict(uri=uri, db=base / "mlruns.db", planted=planted, planted_runs=planted_runs,
                ablation=ablation)
