"""The "Design spaces" tab and `mvit-lab analyse` over a hand-made design_spaces sweep."""

from __future__ import annotations

import pytest
import yaml
from browser import chrome, console_errors, serve, wait_for
from dashboard_store import TINY, write_sweep
from test_browser import chromium  # noqa: F401  (the session's Chromium, or a skip)

from mvit_lab.dashboards.data import DataError, load_sweep
from mvit_lab.dashboards.design import design_view

WIDTHS = [8, 12, 16, 20, 24, 28]
SPACE = dict(design_spaces=dict(
    plain=dict(base=dict(preset="hiera_t", **TINY), params=dict(embed_dim=dict(choice=WIDTHS))),
    better=dict(base=dict(preset="hiera_t", **TINY, pool_mode="avg"),
                params=dict(embed_dim=dict(choice=WIDTHS)))),
    band=dict(gflops=dict(max=1.0)))


def _trials():
    # the same widths and GFLOPs in both spaces; "better" is 10 points more accurate at each
    out = []
    for space, gain in (("plain", 0.0), ("better", 10.0)):
        for w in WIDTHS:
            model = dict(embed_dim=w, **({"pool_mode": "avg"} if space == "better" else {}))
            out.append(dict(point=f"{space}:embed_dim={w}", seed=0, space=space, model=model,
                            metrics=dict(val_top1=50.0 + w + gain, gflops=w / 100,
                                         throughput=1000.0 / w)))
    return out


@pytest.fixture
def design_store(fixture_copy):
    write_sweep(fixture_copy["uri"], "design", SPACE, dict(val_top1="max", gflops="min"),
                _trials(), mode="design_spaces")
    return fixture_copy


def test_design_view_compares_the_populations(design_store):
    view = design_view(load_sweep(design_store["uri"], "design"), bootstraps=300)
    a = view["analysis"]
    assert [s["name"] for s in a["spaces"]] == ["plain", "better"]
    plain, better = a["spaces"]
    assert plain["n"] == better["n"] == 6
    assert plain["min"] == pytest.approx(100 - 78) and better["min"] == pytest.approx(100 - 88)
    assert better["mean"] == pytest.approx(plain["mean"] - 10)
    # equal GFLOPs distributions: the normalised EDF is the plain one
    assert better["nedf"][1] == pytest.approx(better["edf"][1])
    c = better["vs_first"]
    assert c.ks == pytest.approx(3 / 6)  # 10 points apart on a 4-point grid: half the mass
    assert c.area_diff > 0
    # 6 models: a 25% subsample is one model, so the good range is the whole knob
    good = better["knobs"]["embed_dim"]["good"]
    assert (good.low, good.high) == (8, 28)
    rows = view["table"]["rows"]
    assert rows[0][:2] == ["plain", "6"] and rows[0][6] == "—"
    assert rows[1][6].startswith("0.50 [")


def test_other_sweeps_say_what_the_tab_needs(fixture_store):
    with pytest.raises(DataError, match="'ablation' is a grid search: this tab compares"):
        design_view(load_sweep(fixture_store["uri"], "ablation"))


def test_analyse_prints_the_table_and_writes_the_figures(design_store, tmp_path, capsys):
    from mvit_lab.cli import main

    exp = tmp_path / "design.yaml"
    exp.write_text(yaml.safe_dump(dict(
        name="design", data=dict(dataset="digits"), model=dict(preset="hiera_t", **TINY),
        search=SPACE, objectives=dict(val_top1="max", gflops="min"),
        tracking=dict(uri=design_store["uri"])), sort_keys=False))
    assert main(["analyse", str(exp), "--bootstraps", "200", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "| plain | 6 | 22.00 |" in out and "| better | 6 | 12.00 |" in out
    assert "better is better than plain: normalised-EDF area +" in out
    html = (tmp_path / "o" / "design_spaces.html").read_text()
    assert html.count("plotly-graph-div") >= 5 and len(html) > 3e6  # plotly.js inlined
    assert '<script src="http' not in html
    # a sweep of another mode is one line
    exp.write_text(yaml.safe_dump(dict(
        name="design", data=dict(dataset="digits"), model=dict(preset="hiera_t", **TINY),
        search=dict(grid=dict(pool_mode=["max"])), tracking=dict(uri=design_store["uri"]))))
    assert main(["analyse", str(exp)]) == 2
    assert "its search space is a grid, not design_spaces" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_design_spaces_tab_in_chromium(design_store):
    from mvit_lab.dashboards import create_app

    with serve(create_app(design_store["uri"], "design", refresh_s=2)) as url, \
            chrome(height=1600) as driver:
        driver.get(url)
        tab = wait_for(driver, lambda d: next((e for e in d.find_elements(
            "css selector", ".tab") if e.text == "Design spaces"), None),
            what="the design spaces tab")
        tab.click()
        table = wait_for(driver, lambda d: d.find_elements("id", "design-table"),
                         what="the design spaces table", timeout=60)[0]
        rows = [r.text for r in table.find_elements("css selector", "tbody tr")]
        assert rows[0].startswith("plain 6 22.00") and rows[1].startswith("better 6 12.00")
        # one EDF line per space in the raw and the normalised EDF figures
        for fig in ("design-edf", "design-nedf"):
            assert len(driver.find_elements(
                "css selector", f"#{fig} .scatterlayer .trace")) == 2, fig
        assert driver.find_elements("id", "design-knob-embed_dim")
        assert console_errors(driver) == []
        assert "Traceback" not in driver.page_source


def test_no_verdict_from_a_handful_of_models():
    from mvit_lab.search.design_analysis import analyse_design_spaces, verdicts

    recs = [dict(status="finished", design_space=sp, val_top1=v, gflops=0.02, model={})
            for sp, v in (("a", 10.0), ("a", 11.0), ("b", 50.0), ("b", 52.0))]
    (line,) = verdicts(analyse_design_spaces(recs, bootstraps=50))
    assert line == "b vs a: not compared, 2 and 2 finished models (at least 5 each)"
