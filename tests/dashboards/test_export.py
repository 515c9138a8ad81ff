"""The static export: one self-contained HTML file, and `mvit-lab dashboard --export`."""

from __future__ import annotations

import re

import pytest
from dashboard_store import copy_store

from mvit_lab.cli import main
from mvit_lab.dashboards.data import DataError
from mvit_lab.dashboards.export import export_report


def test_export_is_one_self_contained_file(fixture_store, tmp_path):
    out = export_report(tmp_path / "r" / "report.html", fixture_store["uri"])
    text = (tmp_path / "r" / "report.html").read_text()
    assert out["bytes"] == len(text.encode()) and out["bytes"] > 3e6  # plotly.js is inlined
    assert sorted(out["experiments"]) == ["ablation", "failing", "ladder", "no_throughput"]
    # nothing loads from anywhere: no script or stylesheet sources, plotly.js once
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link" not in text
    assert text.count("* plotly.js v") == 1 and text.count("Plotly.newPlot(") >= 4
    # the figures and tables of each sweep, and messages where a view cannot be drawn
    assert "Ablation: pool_mode" in text and "92.00 ± 4.97" in text
    assert "the Hiera paper&#x27;s Table 1" in text and "3.00x" in text
    assert "no finished trials in sweep &#x27;failing&#x27;" in text
    assert "RuntimeError: out of memory" in text
    assert "metric &#x27;throughput&#x27; is missing from all 2 finished trials" in text
    assert "Traceback" not in text


def test_export_of_one_experiment_and_bad_requests(fixture_store, migrated_db, tmp_path):
    out = export_report(tmp_path / "one.html", fixture_store["uri"], "ladder")
    assert out["experiments"] == ["ladder"]
    assert "Ablation" not in (tmp_path / "one.html").read_text()
    with pytest.raises(DataError, match="experiment 'nope' has no runs .* ablation"):
        export_report(tmp_path / "x.html", fixture_store["uri"], "nope")
    empty = copy_store(migrated_db, tmp_path / "empty")
    with pytest.raises(DataError, match="has no runs yet: nothing to export"):
        export_report(tmp_path / "x.html", empty)
    assert not (tmp_path / "x.html").exists()


def test_cli_export(fixture_store, tmp_path, capsys):
    path = tmp_path / "report.html"
    assert main(["dashboard", "--tracking-uri", fixture_store["uri"], "--experiment",
                 "ablation", "--export", str(path)]) == 0
    assert re.match(rf"wrote {path} \(\d\.\d MB, self-contained\): ablation",
                    capsys.readouterr().out)
    assert main(["dashboard", "--tracking-uri", str(tmp_path / "none.db"), "--export",
                 str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mvit-lab: error: tracking_uri: no MLflow store at")
    assert "Traceback" not in err
