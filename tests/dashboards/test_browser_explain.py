"""Issue 18's views in a real browser (headless Chromium): select trials in the table and see
them highlighted in a front, the parallel coordinates and the curves; knob importance; two
sweeps overlaid; the recipe banner; and the same views in the exported report."""

from __future__ import annotations

import pytest
from browser import chrome, chromium_or_skip, console_errors, front_points, serve, wait_for

from mvit_lab.dashboards.export import export_report


@pytest.fixture(scope="module")
def chromium():
    return chromium_or_skip()


GRAPH_DATA = "return Array.from(document.querySelectorAll('#{} .js-plotly-plot'))" \
             ".map(g => g.data.map(t => [t.name, t.customdata || []]))[0] || [];"


def _traces(driver, graph):
    """``{trace name: customdata}`` of a figure as the browser holds it."""
    return {name: data for name, data in driver.execute_script(GRAPH_DATA.format(graph))}


def _tab(driver, label):
    tab = wait_for(driver, lambda d: next((e for e in d.find_elements("css selector", ".tab")
                                           if e.text == label), None), what=f"the {label} tab")
    tab.click()


def _rows(driver):
    return driver.find_elements("css selector", "#trials-table tbody tr:has(td)")


@pytest.mark.slow
def test_select_filter_highlight_importance_overlay(planted_store, chromium, tmp_path):
    from mvit_lab.dashboards import create_app

    with serve(create_app(planted_store["uri"], "planted", refresh_s=30)) as url, \
            chrome(height=1600) as driver:
        driver.get(url)
        wait_for(driver, front_points, what="the front")
        banner = wait_for(driver, lambda d: d.find_element("id", "recipe-flag").text,
                          what="the recipe flag")
        assert "logged no recipe" in banner  # the fixture's parent run has no train section

        # the trials table: filter an objective's range, then tick two rows
        _tab(driver, "Trials")
        wait_for(driver, lambda d: len(_rows(d)) == 24, what="24 trials in the table")
        cell = driver.find_element(
            "css selector", '#trials-table th.dash-filter[data-dash-column="val_top1"] input')
        cell.send_keys(">= 94\n")
        # top-1 = 70 + embed_dim: the 8 trials with embed_dim 24
        wait_for(driver, lambda d: len(_rows(d)) == 8, what="8 trials with top-1 >= 94")
        assert "8 of 24 trials shown" in driver.find_element("id", "trials-count").text
        boxes = driver.find_elements("css selector", "#trials-table td.dash-select-cell input")
        boxes[0].click()
        boxes[1].click()
        wait_for(driver, lambda d: "2 selected" in d.find_element("id", "trials-selected").text,
                 what="two selected trials")
        ids = driver.execute_script(
            "return Array.from(document.querySelectorAll('#trials-table tbody tr:has(td)'))"
            ".slice(0, 2).map(r => r.querySelector('td[data-dash-column=\"run_id\"]')"
            ".innerText.trim());")
        assert len(set(ids)) == 2 and set(ids) <= set(planted_store["planted_runs"])
        # ... highlighted in the curves of the selected trials
        wait_for(driver, lambda d: len(_traces(d, "curves")) == 2, what="two curves")
        assert {next(iter(v)) for v in _traces(driver, "curves").values()} == set(ids)
        driver.save_screenshot(str(tmp_path / "trials.png"))

        # ... and in both Pareto views and the parallel coordinates
        _tab(driver, "Pareto fronts")
        for graph in ("front-0", "front-1"):
            wait_for(driver, lambda d, g=graph: "selected (2)" in _traces(d, g),
                     what=f"the selection ringed in {graph}")
            assert set(_traces(driver, graph)["selected (2)"]) == set(ids)
        _tab(driver, "Parallel coordinates")
        colors = wait_for(driver, lambda d: d.execute_script(
            "const g = document.querySelector('#parallel .js-plotly-plot');"
            "return g && g.data[0].line.color.length ? g.data[0].line.color : null;"),
            what="the parallel coordinates coloured by the selection")
        assert sorted(colors).count(1) == 2

        # knob importance: embed_dim drives top-1 alone
        _tab(driver, "Knob importance")
        table = wait_for(driver, lambda d: d.find_element("id", "importance-rows").text,
                         what="the importance table")
        first = table.splitlines()[2]  # caption, header, then the most important knob
        assert first.startswith("embed_dim")
        driver.save_screenshot(str(tmp_path / "importance.png"))

        # sweeps side by side: the planted sweep and the other experiment's grid
        _tab(driver, "Sweeps side by side")
        rows = wait_for(driver, lambda d: d.find_elements(
            "css selector", "#overlay-rows tbody tr"), what="the overlay table")
        assert [r.text.split(" / ")[0] for r in rows] == ["planted", "ablation"]
        traces = _traces(driver, "overlay")
        assert any(name.startswith("planted / planted (HV") for name in traces)
        assert any(name.startswith("ablation / ablation (HV") for name in traces)
        assert set(traces["selected"]) == set(ids)  # the selection shows here too
        driver.save_screenshot(str(tmp_path / "overlay.png"))
        assert console_errors(driver) == []
        assert "Traceback" not in driver.page_source


@pytest.mark.slow
def test_report_has_the_same_views(planted_store, chromium, tmp_path):
    path = tmp_path / "report.html"
    export_report(path, planted_store["uri"])
    text = path.read_text()
    for part in ("Knob importance per objective", "Sweeps side by side", "All trials",
                 "logged no recipe", "trials ended"):
        assert part in text, part
    with chrome(height=2400, offline=True) as driver:
        driver.get(path.as_uri())
        wait_for(driver, lambda d: len(d.find_elements(
            "css selector", ".plotly-graph-div .main-svg")) >= 6, what="the report's figures")
        assert console_errors(driver) == []
