"""Regenerate docs/dashboard.png: the dashboard over the quickstart sweep, a front point opened.

Run after ``make quickstart`` (the store is ./mlruns.db), with the dev extras installed::

    make screenshot            # or: .venv/bin/python docs/make_screenshot.py [--out PATH]

It serves the dashboard on 127.0.0.1, opens it in headless Chromium (the browser tests'
helpers), clicks the most accurate point of the first Pareto view, and saves the page (the fronts
and the top of that run's panel).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboards"))

from browser import chrome, click, console_errors, front_points, serve, wait_for  # noqa: E402

from mvit_lab.dashboards import create_app, load_sweep  # noqa: E402
from mvit_lab.dashboards.views import default_views, front_info  # noqa: E402
from mvit_lab.tracking import default_tracking_uri  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=default_tracking_uri(ROOT))
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()
    sweep = load_sweep(args.tracking_uri, args.experiment, search_dirs=[ROOT / "experiments"])
    x, y, color = default_views(sweep)[0]
    front = [p for p in front_info(sweep, x, y, color)["points"] if p["on_front"]]
    best = max(range(len(front)), key=lambda i: front[i]["y"])
    app = create_app(args.tracking_uri, args.experiment, refresh_s=5.0,
                     search_dirs=[ROOT / "experiments"])
    with serve(app) as url, chrome(width=1400, height=1900) as driver:
        start = time.perf_counter()
        driver.get(url)
        points = wait_for(driver, front_points, what="the front")
        wait_for(driver, lambda d: front_points(d, "front-1"), what="the second view")
        print(f"first load to drawn fronts: {time.perf_counter() - start:.1f} s")
        click(driver, points[best])
        wait_for(driver, lambda d: len(d.find_elements(
            "css selector", "#run .js-plotly-plot .main-svg")) >= 2, what="the run panel")
        # move off the plot: the hover label would cover the front (the run panel lists the
        # same architecture differences)
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).move_to_element(driver.find_element("tag name", "h1")).perform()
        time.sleep(1.0)
        driver.save_screenshot(args.out)
        errors = console_errors(driver)
    print(f"wrote {args.out}: run {front[best]['run_id']} ({front[best]['label']})")
    if errors:
        print(f"console errors: {errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
