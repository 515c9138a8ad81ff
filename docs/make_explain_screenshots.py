"""Regenerate the README's screenshots of the views that explain a sweep (issue 18): the
trials table with two trials selected (and their curves), knob importance, and two sweeps side
by side, each with the selection highlighted.

Run after the two sweeps of the README's "Why" section (the store is ./mlruns.db unless
``--tracking-uri``), with the dev extras installed::

    .venv/bin/python docs/make_explain_screenshots.py [--experiment NAME]

The overlay opens on the experiment's sweep and the next sweep in the store.

It serves the dashboard on 127.0.0.1 and drives it in headless Chromium with the browser
tests' helpers; it exits non-zero on a console error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboards"))

from browser import chrome, console_errors, front_points, serve, wait_for  # noqa: E402

from mvit_lab.dashboards import create_app  # noqa: E402
from mvit_lab.tracking import default_tracking_uri  # noqa: E402


def _tab(driver, label: str) -> None:
    wait_for(driver, lambda d: next((e for e in d.find_elements("css selector", ".tab")
                                     if e.text == label), None), what=label).click()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=default_tracking_uri(ROOT))
    parser.add_argument("--experiment", default="quickstart-nsga2")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    app = create_app(args.tracking_uri, args.experiment, refresh_s=60.0,
                     search_dirs=[ROOT / "experiments"])
    with serve(app) as url, chrome(width=1400, height=1500) as driver:
        driver.get(url)
        wait_for(driver, front_points, what="the front")
        _tab(driver, "Trials")
        wait_for(driver, lambda d: d.find_elements("css selector", "#trials-table tbody tr td"),
                 what="the trials table")
        # the two most accurate trials: sort by top-1 (twice: descending), tick the first two
        header = driver.find_element(
            "css selector", '#trials-table th[data-dash-column="val_top1"] .column-header--sort')
        header.click()
        header.click()
        time.sleep(1.0)
        boxes = driver.find_elements("css selector", "#trials-table td.dash-select-cell input")
        boxes[0].click()
        boxes[1].click()
        wait_for(driver, lambda d: "2 selected" in d.find_element("id", "trials-selected").text,
                 what="the selection")
        wait_for(driver, lambda d: len(d.find_elements(
            "css selector", "#curves .scatterlayer .trace")) == 2, what="the curves")
        time.sleep(1.0)
        driver.save_screenshot(str(out / "dashboard_trials.png"))
        _tab(driver, "Knob importance")
        wait_for(driver, lambda d: d.find_elements("id", "importance-rows"), timeout=300,
                 what="the importance table")
        time.sleep(1.0)
        driver.save_screenshot(str(out / "dashboard_importance.png"))
        _tab(driver, "Sweeps side by side")
        wait_for(driver, lambda d: d.find_elements("id", "overlay-rows"), what="the overlay")
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#overlay-rows tbody tr'))"
            ".map(r => r.innerText);")
        print("side by side:", *rows, sep="\n  ")
        time.sleep(1.0)
        driver.save_screenshot(str(out / "dashboard_overlay.png"))
        errors = console_errors(driver)
    print(f"wrote {out}/dashboard_trials.png, dashboard_importance.png, dashboard_overlay.png")
    if errors:
        print(f"console errors: {errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
