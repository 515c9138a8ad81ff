"""benchmarks/estimators.py: the two figures it compares are the protocol's, old and new."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench import load

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "estimators.py"


@pytest.fixture(scope="module")
def bench():
    return load("estimators")


def test_window_is_blocks_v2s_figure_and_every_is_blocks_v3s(bench):
    ratios = [1.0, 1.3, 1.04, 1.04, 1.04, 1.04, 1.04, 0.96, 1.0, 0.96, 1.0]
    assert bench.window(ratios) == 1.04  # five blocks that agree with each other
    assert bench.every(ratios) == 1.04  # the median of all eleven
    assert bench.every([1.0, 0.96, 1.04, 1.5, 0.98]) == 1.0
    assert bench.first([3.0, 1.0, 1.0, 1.0, 1.0, 9.0]) == 1.0


def test_compare_measures_how_far_apart_repeats_land(bench):
    # two repeats of one architecture: blocks [model s, reference s]
    records = [dict(arch="a", blocks=[[1.0, 1.0]] * 5),
               dict(arch="a", blocks=[[1.0, 1.1]] * 5)]
    row = bench.compare(records)["all (blocks-v3)"]
    assert row["pairs"] == 1 and row["median"] == pytest.approx(0.1)


def test_the_recorded_comparison_reads_back(tmp_path):
    recorded = Path(__file__).parents[1] / "benchmarks" / "results" / "estimators_train.json"
    data = json.loads(recorded.read_text())
    assert len(data["records"]) == 18 and data["mode"] == "train"
    out = subprocess.run([sys.executable, str(SCRIPT), "--analyse", str(recorded)],
                         capture_output=True, text=True, check=True).stdout
    assert "| all (blocks-v3) | 0.87% |" in out
