"""Search algorithms on the replay table: random, TPE and NSGA-II, each with and without
MOASHA, over many seeds; hypervolume against consumed epochs.

    python benchmarks/search_algorithms.py [--table benchmarks/replay/digits_small]
        [--seeds 20] [--workers 4] [--budget-tables 2]

Each sweep is an event simulation (:func:`mvit_lab.search.replay.simulate`): Optuna's sampler
asks, ``workers`` trials run at once, an epoch takes its recorded seconds, and MOASHA is the
same Ray ``TrialScheduler`` sweeps use, called through its ``on_trial_result`` hook. Ray Tune
itself is not in the loop: 120 replayed sweeps through Tune's controller would take hours on
two shared cores, for bookkeeping that does not change a decision.

Hypervolume: of the finished trials' final (val_top1, gflops, throughput), against the
reference (the table's worst value of each), as a fraction of the whole table's. Reported:
the mean curve with a 95% Student-t interval, and per algorithm the epochs each sweep needs to
reach 90% of the best final hypervolume (that of the whole table), with and without stopping.
Writes ``benchmarks/results/search_algorithms.{json,md,html}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import stats

from mvit_lab.search.moasha import MOASHAConfig, MOASHAScheduler
from mvit_lab.search.pareto import hypervolume, parse_objectives
from mvit_lab.search.replay import load_replay_table, simulate

ROOT = Path(__file__).parents[1]
OBJECTIVES = parse_objectives({"val_top1": "max", "gflops": "min", "throughput": "max"})
TARGET = 0.9


def _sampler(name: str, seed: int):
    import optuna

    return {"random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=16),
            }[name]()


def _interval(values: list[float]) -> list[float]:
    mean = statistics.mean(values)
    if len(values) < 2:
        return [mean, mean]
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return [mean - half, mean + half]


def _reference(table) -> tuple[list[float], float]:
    finals = [[table.result(i, table.epochs)[o.name] for o in OBJECTIVES]
              for i in range(len(table.points))]
    x = np.asarray(finals)
    ref = [float(x[:, j].min() if o.sense == "max" else x[:, j].max())
           for j, o in enumerate(OBJECTIVES)]
    return ref, hypervolume(finals, [o.sense for o in OBJECTIVES], ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT / "benchmarks" / "replay" / "digits_small"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget-tables", type=float, default=2.0,
                        help="budget in multiples of the epochs that train the whole table")
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--algorithms", nargs="+", default=["random", "tpe", "nsga2"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                             "search_algorithms"))
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="no simulation: merge the runs of earlier results (one process per "
                             "algorithm, side by side) into --out")
    args = parser.parse_args()
    if args.combine:
        return _write(Path(args.out), _combine(args.combine))
    table = load_replay_table(args.table)
    ref, best = _reference(table)
    budget = args.budget_tables * len(table.points) * table.epochs
    grid = np.linspace(0, budget, 101)
    moasha = MOASHAConfig(grace_period=args.grace_period,
                          reduction_factor=args.reduction_factor, max_t=table.epochs)
    runs: dict[str, dict] = {}
    started = time.perf_counter()
    for alg in args.algorithms:
        for stopping in (False, True):
            name = f"{alg}+moasha" if stopping else alg
            curves, reach, stopped, finished = [], [], [], []
            for seed in range(args.seeds):
                sched = MOASHAScheduler(moasha, OBJECTIVES) if stopping else None
                sim = simulate(table, OBJECTIVES, _sampler(alg, seed), scheduler=sched,
                               workers=args.workers, budget=budget, reference=ref)
                frac = [sim.at(b) / best for b in grid]
                curves.append(frac)
                hit = next((c for c, h in zip(sim.consumed, sim.hypervolume)
                            if h >= TARGET * best), None)
                reach.append(hit)
                stopped.append(sim.stopped)
                finished.append(sim.finished)
            c = np.asarray(curves)
            reached = [r for r in reach if r is not None]
            runs[name] = dict(
                algorithm=alg, moasha=stopping, mean=c.mean(0).tolist(),
                low=[_interval(list(col))[0] for col in c.T],
                high=[_interval(list(col))[1] for col in c.T],
                epochs_to_target=reach, **_reach_summary(reach),
                final_fraction_mean=float(c[:, -1].mean()),
                stopped_mean=statistics.mean(stopped), finished_mean=statistics.mean(finished))
            print(f"{name:14s} reached {TARGET:.0%} in {len(reached)}/{args.seeds} sweeps; "
                  f"median {runs[name]['epochs_to_target_median']} epochs; final "
                  f"{runs[name]['final_fraction_mean']:.3f}; stopped {statistics.mean(stopped)}"
                  f" ({time.perf_counter() - started:.0f}s)", flush=True)
    ratios = _ratios(runs)
    result = dict(
        table=os.path.relpath(Path(args.table).resolve(), ROOT), points=len(table.points),
        epochs=table.epochs, objectives={o.name: o.sense for o in OBJECTIVES},
        reference=ref, best_hypervolume=best, target=TARGET, budget_epochs=budget,
        budget_grid=grid.tolist(), seeds=args.seeds, workers=args.workers,
        moasha=dict(grace_period=moasha.grace_period,
                    reduction_factor=moasha.reduction_factor, max_t=moasha.max_t,
                    rungs=moasha.rungs(0)),
        runs=runs, median_ratio_with_over_without=ratios,
        seconds=time.perf_counter() - started)
    _write(Path(args.out), result)


def _reach_summary(reach: list[float | None]) -> dict:
    """The median over every seed, a sweep that never reached the target counting as
    infinitely late (None when half or more never reached it); mean and interval over the
    sweeps that reached it."""
    reached = [r for r in reach if r is not None]
    median = statistics.median([math.inf if r is None else r for r in reach])
    return dict(reached=len(reached),
                epochs_to_target_median=None if math.isinf(median) else median,
                epochs_to_target_mean=statistics.mean(reached) if reached else None,
                epochs_to_target_interval=_interval(reached) if reached else None)


def _ratios(runs: dict) -> dict[str, float]:
    out = {}
    for run in runs.values():
        without = runs.get(run["algorithm"])
        if run["moasha"] and without and run["epochs_to_target_median"] and \
                without["epochs_to_target_median"]:
            out[run["algorithm"]] = (run["epochs_to_target_median"]
                                     / without["epochs_to_target_median"])
    return out


def _combine(paths: list[str]) -> dict:
    parts = [json.loads(Path(p).read_text()) for p in paths]
    result = dict(parts[0], runs={}, seconds=sum(p["seconds"] for p in parts))
    for part in parts:
        if part["budget_grid"] != result["budget_grid"] or part["seeds"] != result["seeds"]:
            raise SystemExit(f"{paths}: the results were run with different budgets or seeds")
        result["runs"].update(part["runs"])
    for run in result["runs"].values():  # summaries of this version of the script
        run.update(_reach_summary(run["epochs_to_target"]))
    result["median_ratio_with_over_without"] = _ratios(result["runs"])
    return result


def _write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(result))
    _figure(result).write_html(out.with_suffix(".html"), include_plotlyjs="cdn")
    print(f"wrote {out}.json, .md, .html")


def _markdown(r: dict) -> str:
    lines = [f"# Search algorithms on the replay table ({r['points']} points x {r['epochs']} "
             f"epochs)", "",
             f"{r['seeds']} seeds each, {r['workers']} workers, budget {r['budget_epochs']:.0f}"
             f" epochs; MOASHA rungs at epochs {r['moasha']['rungs']} (reduction factor "
             f"{r['moasha']['reduction_factor']:g}). Epochs to reach {r['target']:.0%} of the "
             "whole table's hypervolume:", "",
             "(median over all seeds, a sweep that never reached it counting as infinitely "
             "late; mean over the sweeps that reached it)", "",
             "| algorithm | reached | median | mean [95% CI] | final HV fraction | "
             "stopped / finished per sweep |", "|---|---|---|---|---|---|"]
    for name, run in r["runs"].items():
        ci = run["epochs_to_target_interval"]
        mean = (f"{run['epochs_to_target_mean']:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]"
                if ci else "-")
        median = run["epochs_to_target_median"]
        lines.append(f"| {name} | {run['reached']}/{r['seeds']} | "
                     f"{'-' if median is None else f'{median:.0f}'} | {mean} | "
                     f"{run['final_fraction_mean']:.3f} | {run['stopped_mean']:.1f} / "
                     f"{run['finished_mean']:.1f} |")
    lines += ["", "Median epochs with MOASHA / without: " + ", ".join(
        f"{k} {v:.2f}" for k, v in r["median_ratio_with_over_without"].items()), ""]
    return "\n".join(lines)


def _figure(r: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = {"random": "#1f77b4", "tpe": "#2ca02c", "nsga2": "#d62728"}
    for name, run in r["runs"].items():
        color = colors.get(run["algorithm"], "#555")
        dash = "solid" if run["moasha"] else "dot"
        x = r["budget_grid"]
        fig.add_trace(go.Scatter(x=x + x[::-1], y=run["high"] + run["low"][::-1],
                                 fill="toself", line=dict(width=0), fillcolor=color,
                                 opacity=0.12, hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=run["mean"], name=name,
                                 line=dict(color=color, dash=dash)))
    fig.add_hline(y=r["target"], line=dict(color="#999", dash="dash"))
    fig.update_layout(xaxis_title="consumed epochs", yaxis_title="hypervolume / whole table's",
                      title=f"{r['seeds']} seeds, mean and 95% interval", template="plotly_white")
    return fig


if __name__ == "__main__":
    main()
