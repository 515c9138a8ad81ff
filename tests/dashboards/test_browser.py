"""The dashboard in a real browser (headless Chromium): the live app over a finished sweep,
live refresh, bad input, and the exported HTML opened offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml
from browser import (
    chrome,
    chromium_or_skip,
    click,
    console_errors,
    front_points,
    serve,
    wait_for,
    wait_http,
)
from dashboard_store import copy_store
from filelock import FileLock

from mvit_lab.dashboards.data import load_sweep
from mvit_lab.dashboards.export import export_report
from mvit_lab.dashboards.views import front_info
from mvit_lab.tracking import Tracker

# cost measurements kept short: these tests check sweeps, not timings
QUICK_MEASURE = dict(batch=8, protocol=dict(warmup_s=0.05, block_s=0.02, min_blocks=3, max_s=1))
TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _shared_dir(tmp_path_factory, worker_id):
    """A folder every xdist worker of this session sees (pytest-xdist's recipe)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def chromium(tmp_path_factory, worker_id):
    with FileLock(str(_shared_dir(tmp_path_factory, worker_id) / "chromium.lock")):
        return chromium_or_skip()


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory, worker_id):
    """A real finished sweep (4 trials, `mvit-lab sweep` in a subprocess), run once per
    session whichever xdist worker asks first."""
    root = _shared_dir(tmp_path_factory, worker_id) / "dashboard-sweep"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            root.mkdir(exist_ok=True)
            (root / "exp.yaml").write_text(yaml.safe_dump(dict(
                name="small", data=dict(dataset="digits"), model=TINY,
                train=dict(epochs=2, batch_size=128, lr=0.003, threads=1),
                search=dict(grid=dict(embed_dim=[8, 16], pool_mode=["max", "avg"])),
                objectives=dict(val_top1="max", gflops="min", throughput="max"),
                budget=dict(concurrency=2), tracking=dict(uri="mlruns.db"),
                measure=QUICK_MEASURE), sort_keys=False))
            env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
            # Ray's workers run at nice 15: slow beside the other xdist worker's tests
            done = subprocess.run([sys.executable, "-m", "mvit_lab.cli", "sweep", "exp.yaml"],
                                  cwd=root, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, done.stderr[-3000:]
            (root / "done").write_text(done.stdout)
    return dict(dir=root, uri=f"sqlite:///{root / 'mlruns.db'}", experiment="small")


@pytest.mark.slow
def test_dashboard_in_chromium(small_sweep, chromium, tmp_path):
    port = 18050 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "mvit_lab.cli", "dashboard", "--tracking-uri",
         small_sweep["uri"], "--port", str(port), "--refresh", "2"],
        cwd=small_sweep["dir"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(url, proc=server)
        with chrome(height=1900) as driver:
            start = time.perf_counter()
            driver.get(url)
            points = wait_for(driver, front_points, what="the front's points")
            load_s = time.perf_counter() - start
            wait_for(driver, lambda d: front_points(d, "front-1"), what="the second view")
            table = driver.find_element("id", "experiment-counts").text
            assert "small" in table and "finished" in table
            # the highlighted points are exactly the front of the data layer
            sweep = load_sweep(small_sweep["uri"], "small")
            info = front_info(sweep, "gflops", "val_top1")
            front_ids = {p["run_id"] for p in info["points"] if p["on_front"]}
            assert len(points) == len(front_ids) >= 1
            click(driver, points[0])
            shown = wait_for(driver, lambda d: d.find_elements("id", "run-id"),
                             what="the run panel")[0].text
            assert shown in front_ids
            panel = driver.find_element("id", "run").text
            for part in ("Architecture vs the search space's base", "Cost per stage",
                         "Per-epoch curves", "Full config", "mlflow ui --backend-store-uri"):
                assert part in panel
            wait_for(driver, lambda d: len(d.find_elements(
                "css selector", "#run .js-plotly-plot .main-svg")) >= 2, what="run figures")
            driver.save_screenshot(str(tmp_path / "dashboard.png"))
            assert console_errors(driver) == []
            assert "Traceback" not in driver.page_source
        print(f"first load to drawn front: {load_s:.1f} s")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.slow
def test_page_refreshes_live_without_reloading(fixture_copy, chromium):
    from mvit_lab.dashboards import create_app

    def counts(d):
        return d.find_element("id", "experiment-counts").text

    with serve(create_app(fixture_copy["uri"], "ablation", refresh_s=0.5)) as url, \
            chrome() as driver:
        driver.get(url)
        wait_for(driver, lambda d: len(front_points(d)) == 2, what="the two-point front")
        wait_for(driver, lambda d: "ablation 1 8 1 5 1 1" in counts(d),  # 1 running, 5 done
                 what="the counts")
        driver.execute_script("window.__not_reloaded = true;")
        # the running trial finishes with the best top-1 so far: it joins the front
        running = fixture_copy["ablation_runs"][-1]
        tracker = Tracker(fixture_copy["uri"], "ablation")
        tracker.log_metrics(running, dict(val_top1=96.0, gflops=2.0), step=3)
        tracker.set_tags(running, dict(status="finished"))
        tracker.finish(running)
        wait_for(driver, lambda d: len(front_points(d)) == 3, timeout=30,
                 what="the new trial on the front")
        # the counts come from the tick's own read: at most one tick behind the figures
        wait_for(driver, lambda d: "ablation 1 8 0 6 1 1" in counts(d), timeout=10,
                 what="the counts to show the trial finished")
        assert driver.execute_script("return window.__not_reloaded === true;")
        assert console_errors(driver) == []


@pytest.mark.slow
def test_reads_slower_than_the_refresh_still_show(fixture_store, chromium, monkeypatch):
    """A browser drops a callback's answer when the callback is triggered again first: the
    interval must not tick while a read is in flight (a loaded machine, a remote store)."""
    from mvit_lab.dashboards import create_app
    from mvit_lab.dashboards.data import StoreReader

    read = StoreReader.overview

    def slow(self):
        time.sleep(1.0)
        return read(self)

    monkeypatch.setattr(StoreReader, "overview", slow)
    with serve(create_app(fixture_store["uri"], "ablation", refresh_s=0.3)) as url, \
            chrome() as driver:
        driver.get(url)
        wait_for(driver, lambda d: len(front_points(d)) == 2, timeout=30,
                 what="the front despite 1 s reads every 0.3 s")


@pytest.mark.slow
def test_bad_input_shows_a_message_never_a_traceback(fixture_store, migrated_db, chromium,
                                                    tmp_path, monkeypatch):
    from mvit_lab.dashboards import create_app

    cases = [
        (copy_store(migrated_db, tmp_path / "empty"), None, "message", "has no runs yet"),
        (f"sqlite:///{tmp_path / 'missing.db'}", None, "message", "no MLflow store at"),
        (fixture_store["uri"], "failing", "front-message-0",
         "no finished trials in sweep 'failing'"),
        (fixture_store["uri"], "no_throughput", "front-message-0",
         "metric 'throughput' is missing from all 2 finished trials"),
        ("http://127.0.0.1:9", None, "message", "cannot reach the MLflow store"),
    ]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with chrome() as driver:
        for uri, experiment, element, text in cases:
            with serve(create_app(uri, experiment, refresh_s=60)) as url:
                driver.get(url)
                wait_for(driver, lambda d, e=element, t=text: t in d.find_element("id", e).text,
                         timeout=30, what=f"{text!r} in #{element} for {uri}")
                assert "Traceback" not in driver.page_source
                assert console_errors(driver) == [], uri
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.slow
def test_exported_report_renders_offline(small_sweep, chromium, tmp_path):
    from mlflow import MlflowClient

    path = tmp_path / "report.html"
    export_report(path, small_sweep["uri"], "small", search_dirs=[small_sweep["dir"]])
    # the sweep logged the same report (and its front figures) to its parent run
    parent = load_sweep(small_sweep["uri"], "small").parent_run_id
    logged = {a.path for a in MlflowClient(small_sweep["uri"]).list_artifacts(parent)}
    assert {"report.html", "pareto_val_top1_vs_gflops.html",
            "pareto_val_top1_vs_throughput.html"} <= logged
    with chrome(height=2400, offline=True) as driver:
        driver.get(path.as_uri())
        wait_for(driver, lambda d: len(d.find_elements(
            "css selector", ".plotly-graph-div .main-svg")) >= 3, what="the report's figures")
        assert driver.find_elements("css selector", ".scatterlayer .trace path.point")
        assert "Pareto front of val_top1 (max), gflops (min), throughput (max)" in \
            driver.find_element("tag name", "body").text
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert console_errors(driver) == []


@pytest.mark.slow
def test_ladders_side_by_side_tab(fixture_copy, chromium):
    """A second run of the fixture ladder (as with MAE) appears next to the first."""
    from dashboard_store import LADDER_SPACE, LADDER_TRIALS, write_sweep

    from mvit_lab.dashboards import create_app

    mae = [dict(t, metrics=dict(t["metrics"], val_top1=t["metrics"]["val_top1"] + 5.0))
           for t in LADDER_TRIALS if t["seed"] == 0]
    write_sweep(fixture_copy["uri"], "ladder-mae", LADDER_SPACE,
                dict(val_top1="max", throughput="max"), mae, mode="ladder")
    with serve(create_app(fixture_copy["uri"], "ladder", refresh_s=2)) as url, \
            chrome() as driver:
        driver.get(url)
        tab = wait_for(driver, lambda d: next((e for e in d.find_elements(
            "css selector", ".tab") if e.text == "Ladders side by side"), None),
            what="the ladders tab")
        tab.click()
        table = wait_for(driver, lambda d: d.find_elements("id", "ladders-table-0"),
                         what="the side-by-side table")[0]
        rows = [r.text for r in table.find_elements("css selector", "tbody tr")]
        # a_first: scratch 90 / 92 (mean 91), MAE 95 (seed 0 + 5): +4.00
        assert rows[0] == "a_first 0.02 91.00 ± 1.41 (2) 95.00 (n = 1) +4.00"
        assert len(driver.find_elements("css selector", "#ladders-0 .scatterlayer .trace")) == 2
        assert console_errors(driver) == []
