"""The reference benchmark script runs end to end and writes what it promises."""

from __future__ import annotations

import json
import sys

import pytest
from bench import load


@pytest.fixture(scope="module")
def bench():
    return load("compare_references")


def test_compare_writes_json_and_markdown(bench, tmp_path, monkeypatch):
    out = tmp_path / "cpu"
    monkeypatch.setattr(sys, "argv", ["compare_references.py", "--models", "hiera_t",
                                      "--batch", "1", "--rounds", "2", "--iters", "1",
                                      "--warmup", "1", "--out", str(out)])
    bench.main()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["device_name"] and record["versions"]["timm"] != "not installed"
    (result,) = record["results"]
    assert result["reference"] == "timm hiera_tiny_224" and len(result["rounds"]) == 2
    assert result["ratio"] == pytest.approx(
        result["ours_items_per_s"] / result["reference_items_per_s"])
    assert result["gflops"] == pytest.approx(4.901, rel=1e-3)
    assert "| hiera_t | timm hiera_tiny_224 |" in out.with_suffix(".md").read_text()


def test_every_pair_names_a_preset_and_a_reference(bench):
    from mvit_lab import list_presets

    assert set(bench.PAIRS) <= set(list_presets())
    assert {source for source, _ in bench.PAIRS.values()} == {"timm", "torchvision", "hiera"}
