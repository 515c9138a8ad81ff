"""Regenerate docs/design_spaces.png: the dashboard's "Design spaces" tab over a sweep.

    python docs/make_design_spaces_png.py --experiment design-spaces-ladder [--out PATH]

It serves the dashboard on 127.0.0.1, opens it in headless Chromium (the browser tests'
helpers), opens the tab, waits for its table and EDF figures, and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboards"))

from browser import chrome, console_errors, serve, wait_for  # noqa: E402

from mvit_lab.dashboards import create_app  # noqa: E402
from mvit_lab.tracking import default_tracking_uri  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=default_tracking_uri(ROOT))
    parser.add_argument("--experiment", default="design-spaces-ladder")
    parser.add_argument("--out", default=str(ROOT / "docs" / "design_spaces.png"))
    args = parser.parse_args()
    app = create_app(args.tracking_uri, args.experiment, refresh_s=30.0)
    with serve(app) as url, chrome(width=1400, height=2300) as driver:
        driver.get(url)
        tab = wait_for(driver, lambda d: next((e for e in d.find_elements(
            "css selector", ".tab") if e.text == "Design spaces"), None), what="the tab")
        tab.click()
        wait_for(driver, lambda d: d.find_elements("id", "design-table"), timeout=300,
                 what="the design spaces table")
        wait_for(driver, lambda d: len(d.find_elements(
            "css selector", "#design-spaces .main-svg")) >= 4, what="the figures")
        time.sleep(1.0)
        driver.execute_script("document.getElementById('tabs').scrollIntoView();")
        driver.save_screenshot(args.out)
        errors = console_errors(driver)
    print(f"wrote {args.out}")
    if errors:
        print(f"console errors: {errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
