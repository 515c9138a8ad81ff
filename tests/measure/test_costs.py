"""Costs measured once per (architecture, device, dtype, batch, mode), under the device lock."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from mvit_lab import get_config
from mvit_lab.measure import costs as costs_module
from mvit_lab.measure.costs import CostCache, cost_key, cost_metrics, cost_tags, measure_costs
from mvit_lab.measure.speed import Protocol

TINY = dict(input_size=(1, 32, 32), embed_dim=8, num_heads=1, depths=(1, 1, 1, 1),
            num_classes=3)
QUICK = Protocol(warmup_s=0.01, block_s=0.01, min_blocks=2, target_spread=10.0, max_s=2)


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MVIT_LAB_LOCK_DIR", str(tmp_path / "locks"))


def test_the_key_changes_with_each_thing_a_cost_depends_on():
    cfg = get_config("hiera_t", **TINY)
    base = dict(cfg=cfg, device="cpu x (2 threads)", dtype="float32", batch_size=8,
                mode="infer", protocol=QUICK.name, torch_version="2.9.0")
    key = cost_key(**base)
    assert key == cost_key(**base)  # stable
    variants = [dict(cfg=cfg.replace(embed_dim=16)), dict(device="cpu x (1 threads)"),
                dict(dtype="bfloat16"), dict(batch_size=16), dict(mode="train"),
                dict(protocol=Protocol().name), dict(torch_version="2.10.0")]
    keys = {cost_key(**{**base, **v}) for v in variants}
    assert key not in keys and len(keys) == len(variants)
    # what a cost does not depend on: the training recipe, the seed (not in the key at all),
    # and how the config was reached (a preset + overrides vs the same knobs spelt out)
    spelt = get_config("hiera_t").replace(**TINY)
    assert cost_key(**{**base, "cfg": spelt}) == key


def test_a_repeated_architecture_is_measured_once(tmp_path, monkeypatch):
    calls = []
    real = costs_module.measure_throughput
    monkeypatch.setattr(costs_module, "measure_throughput",
                        lambda *a, **k: calls.append(k["mode"]) or real(*a, **k))
    cache = CostCache(tmp_path / "cache")
    cfg = get_config("hiera_t", **TINY)
    first, cached = measure_costs(cfg, batch_size=2, protocol=QUICK, cache=cache)
    # on the CPU each mode first calibrates the node's reference speed, then measures
    assert calls == ["infer", "infer", "train", "train"]
    assert cached == {"infer": False, "train": False}
    again, cached = measure_costs(cfg, batch_size=2, protocol=QUICK, cache=CostCache(
        tmp_path / "cache"))  # a resumed sweep: a new process, the same folder
    assert len(calls) == 4 and cached == {"infer": True, "train": True}
    assert again == first
    measure_costs(cfg, batch_size=4, protocol=QUICK, cache=cache, modes=("infer",))
    assert len(calls) == 6  # another batch is another cost (and another calibration)
    metrics = cost_metrics(first)
    assert set(metrics) == {"throughput", "latency_ms", "peak_memory_mb", "train_throughput",
                            "train_latency_ms", "train_peak_memory_mb"}
    assert metrics["throughput"] == pytest.approx(2 / (metrics["latency_ms"] / 1e3))
    tags = cost_tags(first, cached)
    assert tags["cost_infer_source"] == "cache"
    # on the CPU the protocol label (and so the cache key) says the reference was timed
    assert tags["cost_protocol"] == Protocol(**{**QUICK.__dict__, "reference": True}).name
    assert tags["cost_protocol"].endswith("vs ref-v1)")
    assert first["infer"].isolated and first["infer"].blocks >= 2


def test_an_unisolated_figure_is_reported_but_never_cached(tmp_path, monkeypatch):
    import contextlib

    from mvit_lab.measure.isolation import DeviceLock

    @contextlib.contextmanager
    def timed_out(self, timeout=None):
        yield None  # as when a co-tenant stays inside one step past the timeout

    monkeypatch.setattr(DeviceLock, "exclusive", timed_out)
    cache = CostCache(tmp_path / "cache")
    records, _ = measure_costs(get_config("hiera_t", **TINY), batch_size=2, protocol=QUICK,
                               cache=cache, modes=("infer",))
    assert not records["infer"].isolated and cache.records() == []


def test_a_damaged_entry_is_measured_again(tmp_path):
    cache = CostCache(tmp_path)
    cfg = get_config("hiera_t", **TINY)
    records, _ = measure_costs(cfg, batch_size=2, protocol=QUICK, cache=cache,
                               modes=("infer",))
    (tmp_path / f"{records['infer'].key}.json").write_text("{not json")
    _, cached = measure_costs(cfg, batch_size=2, protocol=QUICK, cache=cache,
                              modes=("infer",))
    assert cached == {"infer": False} and json.loads(
        (tmp_path / f"{records['infer'].key}.json").read_text())["key"] == records["infer"].key


def _measure_in_child(cache_dir, lock_dir, out):
    import os

    os.environ["MVIT_LAB_LOCK_DIR"] = lock_dir
    _, cached = measure_costs(get_config("hiera_t", **TINY), batch_size=2, protocol=QUICK,
                              cache=CostCache(cache_dir), modes=("infer",))
    with open(out, "w") as f:
        json.dump(cached, f)


def test_co_tenants_asking_for_one_architecture_measure_it_once(tmp_path):
    # two trials of one architecture reach the lock together: the second finds the first's
    # figure in the cache once it gets the lock
    ctx = multiprocessing.get_context("spawn")  # torch computes in the children: no fork
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_measure_in_child,
                         args=(tmp_path / "cache", str(tmp_path / "locks"), o)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    flags = sorted(json.loads(o.read_text())["infer"] for o in outs)
    assert flags == [False, True]
    assert len(CostCache(tmp_path / "cache").records()) == 1


def test_cpu_costs_are_ratios_to_a_reference_at_the_nodes_calibrated_speed(tmp_path,
                                                                           monkeypatch):
    """On the CPU a cost is the architecture's speed relative to the reference model, timed in
    the same window, times the node's reference speed, calibrated once and kept: a second
    architecture (or a second sweep) reuses the calibration; the raw figure is kept."""
    monkeypatch.setenv("MVIT_LAB_CACHE", str(tmp_path / "node"))
    timings = []
    real = costs_module.measure_throughput
    monkeypatch.setattr(costs_module, "measure_throughput", lambda *a, **k: timings.append(
        k["protocol"].reference) or real(*a, **k))
    cfg = get_config("hiera_t", **TINY)
    records, cached = measure_costs(cfg, batch_size=2, protocol=QUICK,
                                    cache=CostCache(tmp_path / "a"), modes=("infer",))
    r = records["infer"]
    assert timings == [False, True]  # the calibration (the reference alone), then the ratio
    assert r.reference_ratio > 0 and r.reference_calibration > 0 and r.raw_items_per_s > 0
    assert r.items_per_s == pytest.approx(r.reference_ratio * r.reference_calibration)
    assert r.latency_ms == pytest.approx(2e3 / r.items_per_s)
    assert "vs ref-v1" in r.protocol
    calibrations = list((tmp_path / "node" / "calibration").glob("*.json"))
    assert len(calibrations) == 1
    saved = json.loads(calibrations[0].read_text())
    assert saved["items_per_s"] == r.reference_calibration and saved["reference"] == "ref-v1"
    tags = cost_tags(records, cached)
    assert float(tags["cost_infer_raw"]) == pytest.approx(r.raw_items_per_s, rel=1e-3)
    assert float(tags["cost_infer_reference_ratio"]) == pytest.approx(r.reference_ratio,
                                                                      rel=1e-3)
    assert tags["cost_reference"].startswith("ref-v1")
    # another architecture, a fresh sweep cache: the node's calibration is read, not redone
    other, _ = measure_costs(cfg.replace(embed_dim=16), batch_size=2, protocol=QUICK,
                             cache=CostCache(tmp_path / "b"), modes=("infer",))
    assert timings == [False, True, True]
    assert other["infer"].reference_calibration == r.reference_calibration
    # reference off (a GPU's default): the figure as timed, no ratio
    plain, _ = measure_costs(cfg, batch_size=2, cache=CostCache(tmp_path / "c"),
                             protocol=Protocol(**{**QUICK.__dict__, "reference": False}),
                             modes=("infer",))
    assert plain["infer"].reference_ratio is None and plain["infer"].raw_items_per_s is None
    assert "ref" not in plain["infer"].protocol and "cost_reference" not in cost_tags(
        plain, {"infer": False})
