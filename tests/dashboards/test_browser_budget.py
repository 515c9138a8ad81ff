"""The Budget tab in a real browser (headless Chromium), on the store of a real replay sweep
with MOASHA (`mvit-lab sweep experiments/replay_digits_moasha.yaml`): the hypervolume over
consumed epochs and the stopped trials' markers are drawn as the data layer computes them,
with no console errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import chrome, chromium_or_skip, console_errors, serve, wait_for

from mvit_lab.dashboards.budget import budget_info
from mvit_lab.dashboards.data import load_sweep
from mvit_lab.tracking import runs_dataframe

ROOT = Path(__file__).parents[2]
EXPERIMENT = ROOT / "experiments" / "replay_digits_moasha.yaml"
NAME = "replay_digits_moasha"

FIGURE = ("const g = document.querySelector('#budget .js-plotly-plot');"
          "if (!g || !g.data || !g.data.length) return null;"
          "return g.data.map(t => ({name: t.name, x: Array.from(t.x || []),"
          " y: Array.from(t.y || []), ids: Array.from(t.customdata || [])}));")
# the points drawn, per trace, in drawing order
DRAWN = ("return Array.from(document.querySelectorAll('#budget .scatterlayer .trace'))"
         ".map(t => t.querySelectorAll('path.point').length);")


@pytest.fixture(scope="module")
def chromium():
    return chromium_or_skip()


@pytest.fixture(scope="module")
def replay_store(tmp_path_factory):
    """The shipped replay experiment swept for real (a Ray session of its own)."""
    root = tmp_path_factory.mktemp("replay-store")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "mvit_lab.cli", "sweep", str(EXPERIMENT)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(uri=f"sqlite:///{root / 'mlruns.db'}", output=done.stdout)


def _tab(driver, label):
    tab = wait_for(driver, lambda d: next((e for e in d.find_elements("css selector", ".tab")
                                           if e.text == label), None), what=f"the {label} tab")
    tab.click()


@pytest.mark.slow
def test_budget_tab_draws_hypervolume_and_where_trials_stopped(replay_store, chromium,
                                                               tmp_path):
    from mvit_lab.dashboards import create_app

    runs = runs_dataframe(replay_store["uri"], NAME)
    runs = runs[runs["parent_run_id"].notna()]
    stopped = set(runs[runs["tag.status"] == "stopped"]["run_id"])
    finished = set(runs[runs["tag.status"] == "finished"]["run_id"])
    assert stopped and finished, replay_store["output"]
    sweep = load_sweep(replay_store["uri"], NAME)
    want = budget_info(sweep.records, sweep.objectives)
    with serve(create_app(replay_store["uri"], NAME, refresh_s=30)) as url, \
            chrome(height=1200) as driver:
        driver.get(url)
        _tab(driver, "Budget")
        traces = wait_for(driver, lambda d: d.execute_script(FIGURE), what="the budget figure")
        by_name = {t["name"]: t for t in traces}
        assert set(by_name) == {"hypervolume", "finished", "stopped"}
        hv = by_name["hypervolume"]
        assert hv["x"] == pytest.approx([s["epochs"] for s in want["steps"]])
        assert hv["y"] == pytest.approx([s["hypervolume"] for s in want["steps"]])
        assert hv["y"][-1] > 0 and hv["y"] == sorted(hv["y"])  # grows with the budget
        # every epoch the sweep consumed: 9 per finished trial, the stopping epoch per stopped
        stops = runs[runs["tag.status"] == "stopped"]["tag.stopped_epoch"].astype(float)
        assert hv["x"][-1] == pytest.approx(9 * len(finished) + stops.sum())
        assert set(by_name["stopped"]["ids"]) == stopped
        assert sorted(by_name["stopped"]["x"]) == sorted(stops)
        assert set(by_name["finished"]["ids"]) == finished
        # ... and drawn: a marker per step, per finished and per stopped trial
        drawn = wait_for(driver, lambda d: (lambda n: n if sum(n) else None)(
            d.execute_script(DRAWN)), what="the budget figure's markers")
        assert sorted(drawn) == sorted([len(want["steps"]), len(finished), len(stopped)])
        driver.save_screenshot(str(tmp_path / "budget.png"))
        assert console_errors(driver) == []
        assert "Traceback" not in driver.page_source
