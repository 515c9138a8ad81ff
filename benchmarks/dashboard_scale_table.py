"""Before / after table of ``dashboard_scale.py`` runs made alternately (one repeat each).

    python benchmarks/dashboard_scale_table.py --before A1.json A2.json ... \\
        --after B1.json B2.json ... --out benchmarks/results/dashboard_scale_issue17

Each input is one ``dashboard_scale.py`` result file. Per number of runs and measure: the
median, min and max of the CPU seconds over the files of each side, and the ratio of the
medians. Writes ``OUT.json`` (every value) and ``OUT.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

MEASURES = ("first_load", "tick_idle", "tick_changed", "pareto_cli", "pareto_read")


def _values(files: list[str]) -> dict[int, dict[str, list[float]]]:
    out: dict[int, dict[str, list[float]]] = {}
    for name in files:
        for row in json.loads(Path(name).read_text())["results"]:
            for m in MEASURES:
                for v in row[f"{m}_cpu_s"]["values"]:
                    out.setdefault(row["runs"], {}).setdefault(m, []).append(v)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", nargs="+", required=True)
    parser.add_argument("--after", nargs="+", required=True)
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--after-label", default="after")
    parser.add_argument("--goals", default="first_load=5,tick_idle=0.5,tick_changed=0.5,"
                        "pareto_cli=3", help="goal CPU seconds at the largest size")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    before, after = _values(args.before), _values(args.after)
    goals = {k: float(v) for k, v in (item.split("=") for item in args.goals.split(","))}
    rows = []
    for runs in sorted(set(before) & set(after)):
        for m in MEASURES:
            if m not in before[runs] or m not in after[runs]:
                continue
            b, a = _stats(before[runs][m]), _stats(after[runs][m])
            rows.append(dict(runs=runs, measure=m, before=b, after=a,
                             ratio=b["median"] / a["median"] if a["median"] else None,
                             n_before=len(before[runs][m]), n_after=len(after[runs][m]),
                             goal=goals.get(m) if runs == max(after) else None))
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(dict(
        before=args.before_label, after=args.after_label, before_files=args.before,
        after_files=args.after, rows=rows), indent=1) + "\n")
    lines = [f"| runs | measure (CPU s) | {args.before_label} | {args.after_label} | "
             "before / after | goal |", "|---|---|---|---|---|---|"]
    for r in rows:
        cell = "{median:.2f} ({min:.2f}-{max:.2f})".format
        goal = "" if r["goal"] is None else (
            f"<= {r['goal']:g}: {'met' if r['after']['median'] <= r['goal'] else 'MISSED'}")
        lines.append(f"| {r['runs']:,} | {r['measure']} | {cell(**r['before'])} | "
                     f"{cell(**r['after'])} | {r['ratio']:.1f}x | {goal} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
