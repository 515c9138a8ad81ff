"""The data benchmarks run end to end (tiny sizes) and write what they promise."""

from __future__ import annotations

import json
import sys

import pytest
from bench import load


def _run(name, argv, monkeypatch):
    module = load(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    module.main()


def test_video_decode_benchmark_checks_frames_and_reports_ratios(tmp_path, monkeypatch):
    out = tmp_path / "vd"
    _run("video_decode", ["--keyints", "12", "--bframes", "3", "--threads", "NONE",
                          "--seconds", "3", "--size", "64", "48", "--rounds", "2", "--reps", "1",
                          "--out", str(out)], monkeypatch)
    record = json.loads(out.with_suffix(".json").read_text())
    end, views = record["results"]
    assert end["case"] == "16x4 clip at the end" and end["identical"]
    assert end["frame_types"]["B"] > 0 and end["frame_types"]["I"] == 8  # 90 frames / 12
    assert end["ratio"] == pytest.approx(end["median_ms_before"] / end["median_ms_after"])
    assert len(end["cpu_ms_before"]) == 2 and views["case"].startswith("3 views")
    assert "| 16x4 clip at the end | 12 | 3 | NONE |" in out.with_suffix(".md").read_text()


def test_probe_manifest_benchmark(tmp_path, monkeypatch):
    out = tmp_path / "pm"
    _run("probe_manifest", ["--videos", "3", "--seconds", "0.5", "--size", "64", "48",
                            "--rounds", "1", "--out", str(out)], monkeypatch)
    rows = json.loads(out.with_suffix(".json").read_text())["results"]
    assert [(r["probe"], r["build"]) for r in rows][:3] == [
        (True, "first trial (no manifest)"), (True, "later trial (manifest)"),
        (True, "after one file changed")]
    assert len(rows) == 6
