"""Reading thousands of runs: the dashboard's first load and refresh tick, and `mvit-lab pareto`.

    python benchmarks/dashboard_scale.py --runs 1000 5000     # writes results/dashboard_scale.*

A synthetic store is built through the tracking module's ``Tracker`` (its create, tag and
finish steps; the 90 metric values of a run in one batch): one sweep, each trial a child run
with 61 params, 90 metric values (8 metrics over 10 epochs, 10 at steps 0 and 10) and the
trial tags, every tenth trial still running. On a loaded 2-core machine the tracking module
wrote ~0.5-2 runs a second, so ``--base`` runs are written that way and the store is then
replicated to each size with SQL on MLflow's own tables (every row of a trial copied under a
new run id and trial id), once, into ``--cache``.

Measured, each ``--repeats`` times in this process (CPU seconds by ``time.process_time``, wall
by ``time.perf_counter``):

- ``first_load``: a fresh :class:`StoreReader`'s overview and sweep, and the data of the two
  default Pareto views: what the page's first load computes;
- ``tick_idle``: a refresh tick of a warm reader when nothing changed (the reader as the app
  makes it: the tick's reads share one store refresh, which is due at each tick);
- ``tick_changed``: a refresh tick after one running trial logged an epoch (its metrics and a
  tag), the case of a live sweep;
- ``pareto``: `mvit-lab pareto EXPERIMENT` in a subprocess (``pareto_cli``: its CPU seconds
  from ``getrusage(RUSAGE_CHILDREN)`` and wall, imports included), and its reading and front
  in this process (``pareto_read``).

Two versions of the code side by side: run the script with ``PYTHONPATH`` at each checkout
(``git archive REV mvit_lab | tar -x -C DIR``) and a ``--label`` for each.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 10
PER_EPOCH = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "train_seconds",
             "eval_seconds")  # 8 x 10 = 80 values
AT_START = ("gflops", "params", "throughput", "latency_ms", "peak_memory_mb")  # step 0
AT_END = ("train_throughput", "train_latency_ms", "train_peak_memory_mb", "overhead_seconds",
          "measure_seconds")  # step 10: 80 + 5 + 5 = 90 values


def _params(i: int) -> dict[str, Any]:
    """61 flattened params: a varied small config's knobs plus train / data / seed."""
    from mvit_lab.presets import get_config
    from mvit_lab.tracking import flatten_params

    cfg = get_config("mvitv2_t").replace(embed_dim=16 + 8 * (i % 7), depths=(1, 1 + i % 3, 2, 1))
    params = flatten_params(dict(model=cfg.to_dict(), train=dict(
        epochs=EPOCHS, lr=0.001 * (1 + i % 5), batch_size=32, warmup_epochs=1, seed=i % 3),
        data=dict(dataset="moving_digits", num_train=1000), seed=i % 3))
    keys = sorted(params)[:61]
    while len(keys) < 61:
        keys.append(f"extra.k{len(keys)}")
        params[keys[-1]] = "x"
    return {k: params[k] for k in keys}


def build_store(path: Path, runs: int, experiment: str = "scale") -> dict[str, float]:
    """A store of ``runs`` trials under one sweep, written through ``Tracker``."""
    from mvit_lab.tracking import Tracker, default_tracking_uri, ensure_experiment

    path.mkdir(parents=True, exist_ok=True)
    uri = default_tracking_uri(path)
    start = time.perf_counter()
    ensure_experiment(experiment, uri)
    tracker = Tracker(uri, experiment)
    parent = tracker.start_parent(experiment, {"experiment.objectives.val_top1": "max",
                                               "experiment.objectives.gflops": "min"},
                                  dict(algorithm="random", search_mode="params",
                                       objectives="val_top1:max,gflops:min,throughput:max"))
    from mlflow.entities import Metric

    from mvit_lab.tracking import PARENT_TAG

    stamp = int(time.time() * 1000)
    for i in range(runs):
        tags = dict(trial_id=f"t{i:05d}", point=f"p{i}", seed=str(i % 3), status="running",
                    search_mode="params")
        # Tracker.start_child looks the trial id up first (a search per run, slow at
        # thousands): its create step is called directly, the metrics in one batch
        run = tracker._create(f"p{i} seed={i % 3}", _params(i), {**tags, PARENT_TAG: parent})
        metrics = [Metric(k, v, stamp, 0) for k, v in dict(
            gflops=0.01 * (1 + i % 17), params=1e5 * (1 + i % 7), throughput=100.0 + i % 50,
            latency_ms=3.0, peak_memory_mb=50.0).items()]
        for epoch in range(1, EPOCHS + 1):
            top1 = 50 + (i * 7919 % 4000) / 100 * epoch / EPOCHS
            metrics += [Metric(k, v, stamp + epoch, epoch) for k, v in dict(
                epoch=epoch, train_loss=2.0 / epoch, val_loss=2.1 / epoch, val_top1=top1,
                val_top5=90.0, lr=0.001, train_seconds=1.0, eval_seconds=0.2).items()]
        metrics += [Metric(k, v, stamp + EPOCHS, EPOCHS) for k, v in dict(
            train_throughput=50.0, train_latency_ms=6.0, train_peak_memory_mb=80.0,
            overhead_seconds=0.5, measure_seconds=1.0).items()]
        tracker.client.log_batch(run, metrics=metrics)
        if i % 10 != 9:  # every tenth trial is still running
            tracker.set_tags(run, dict(status="finished", truncated="false"))
            tracker.finish(run)
        if (i + 1) % 100 == 0:
            print(f"  built {i + 1}/{runs} runs ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    return dict(build_s=time.perf_counter() - start)


def replicate(db: Path, runs: int) -> None:
    """Copy the child runs of ``db`` (rows of runs, tags, params, metrics, latest_metrics)
    under new ids until it holds ``runs`` children."""
    import sqlite3
    import uuid

    con = sqlite3.connect(db)
    try:
        kids = [r[0] for r in con.execute(
            "SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' ORDER BY run_uuid")]
        cols = {t: [c[1] for c in con.execute(f"PRAGMA table_info({t})")]
                for t in ("runs", "tags", "params", "metrics", "latest_metrics")}
        rows = {t: {} for t in cols}
        for t in cols:
            key = "run_uuid"
            for row in con.execute(f"SELECT * FROM {t}"):
                rows[t].setdefault(row[cols[t].index(key)], []).append(row)
        have, copy = len(kids), 0
        while have < runs:
            copy += 1
            for old in kids[: runs - have]:
                new = uuid.uuid4().hex
                for t, names in cols.items():
                    i = names.index("run_uuid")
                    out = []
                    for row in rows[t].get(old, []):
                        row = list(row)
                        row[i] = new
                        if t == "tags" and row[names.index("key")] == "trial_id":
                            row[names.index("value")] = f"{row[names.index('value')]}c{copy}"
                        out.append(row)
                    con.executemany(f"INSERT INTO {t} VALUES ({','.join('?' * len(names))})",
                                    out)
                have += 1
        con.commit()
    finally:
        con.close()


def _timed(fn: Any) -> tuple[float, float, Any]:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c, time.perf_counter() - w, out


def _page_data(reader: Any, experiment: str) -> Any:
    from mvit_lab.dashboards.views import default_views, front_info

    reader.overview()
    sweep = reader.sweep(experiment)
    for x, y, color in default_views(sweep, 2):
        front_info(sweep, x, y, color)
    return sweep


def measure(db: Path, experiment: str, repeats: int) -> dict[str, Any]:
    from mvit_lab.dashboards.data import StoreReader
    from mvit_lab.tracking import Tracker, default_tracking_uri

    uri = default_tracking_uri(db.parent)
    out: dict[str, list[float]] = {}
    # the app's reader freezes what it keeps (older checkouts have no such switch)
    app_reader = ({"freeze_gc": True} if "freeze_gc" in
                  inspect.signature(StoreReader).parameters else {})

    def add(name: str, cpu: float, wall: float) -> None:
        out.setdefault(f"{name}_cpu_s", []).append(cpu)
        out.setdefault(f"{name}_wall_s", []).append(wall)

    tracker = Tracker(uri, experiment)
    for r in range(repeats):
        # as the app reads: a tick's callbacks share one store refresh (max_age_s), and the
        # ticks are seconds apart, so each tick below starts with a refresh due
        reader = StoreReader(uri, **app_reader)  # as dashboards.create_app makes it
        cpu, wall, sweep = _timed(lambda reader=reader: _page_data(reader, experiment))
        add("first_load", cpu, wall)
        n = len(sweep.records)
        time.sleep(reader.max_age_s)
        cpu, wall, _ = _timed(lambda reader=reader: _page_data(reader, experiment))
        add("tick_idle", cpu, wall)
        running = next(rec["run_id"] for rec in sweep.records if rec["status"] == "running")
        tracker.log_metrics(running, dict(val_top1=60.0 + r, epoch=EPOCHS + 1 + r),
                            step=EPOCHS + 1 + r)
        tracker.set_tags(running, dict(status="running", note=f"tick{r}"))
        time.sleep(reader.max_age_s)
        cpu, wall, after = _timed(lambda reader=reader: _page_data(reader, experiment))
        add("tick_changed", cpu, wall)
        rec = next(x for x in after.records if x["run_id"] == running)
        assert rec["val_top1"] == 60.0 + r, "the changed run was not re-read"
        exp_file = db.parent / "exp.yaml"
        exp_file.write_text(json.dumps(dict(
            name=experiment, data=dict(dataset="digits"), model=dict(preset="mvitv2_t"),
            search=dict(params=dict(embed_dim=dict(choice=[16, 24]))),
            objectives=dict(val_top1="max", gflops="min"), tracking=dict(uri=uri))))
        env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
        w, c = time.perf_counter(), _children_cpu()
        done = subprocess.run([sys.executable, "-m", "mvit_lab.cli", "pareto", str(exp_file)],
                              capture_output=True, text=True, env=env, cwd=db.parent)
        add("pareto_cli", _children_cpu() - c, time.perf_counter() - w)
        assert done.returncode == 0, done.stderr[-2000:]
        cpu, wall, _ = _timed(lambda exp_file=exp_file: _pareto_in_process(exp_file))
        add("pareto_read", cpu, wall)
    summary = {k: dict(median=statistics.median(v), min=min(v), max=max(v), values=v)
               for k, v in out.items()}
    summary["records"] = n
    return summary


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pareto_in_process(exp_file: Path) -> None:
    from mvit_lab.cli import main

    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            assert main(["pareto", str(exp_file)]) == 0
        finally:
            sys.stdout = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--base", type=int, default=500,
                        help="runs written through the Tracker before replicating")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", default=str(Path.home() / ".cache/mvit-lab/bench-stores"))
    parser.add_argument("--label", default="after", help="before / after: names the result")
    parser.add_argument("--out", default="benchmarks/results/dashboard_scale")
    parser.add_argument("--build-only", action="store_true", help="build the stores and stop")
    args = parser.parse_args()
    results = []
    for n in args.runs:
        cached = Path(args.cache) / f"runs{n}"
        build = None
        base = Path(args.cache) / f"base{args.base}"
        if not (base / "mlruns.db").is_file():
            print(f"writing {args.base} runs through the Tracker into {base} (once)", flush=True)
            built = build_store(base / "tmp", args.base)
            shutil.move(str(base / "tmp" / "mlruns.db"), str(base / "mlruns.db"))
            (base / "build.json").write_text(json.dumps(built))
        if not (cached / "mlruns.db").is_file():
            cached.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            shutil.copy(base / "mlruns.db", cached / "tmp.db")
            replicate(cached / "tmp.db", n)
            (cached / "tmp.db").rename(cached / "mlruns.db")
            (cached / "build.json").write_text(json.dumps(dict(
                json.loads((base / "build.json").read_text()), base_runs=args.base,
                replicate_s=time.perf_counter() - start)))
        build = build or json.loads((cached / "build.json").read_text())
        if args.build_only:
            print(f"{n} runs: built in {build['build_s']:.0f} s", flush=True)
            continue
        work = Path(args.cache) / f"work{n}-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(cached / "mlruns.db", work / "mlruns.db")
        try:
            print(f"measuring {n} runs", flush=True)
            row = dict(runs=n, build_s=build["build_s"], **measure(work / "mlruns.db", "scale",
                                                                    args.repeats))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append(row)
        print(json.dumps({k: (v["median"] if isinstance(v, dict) else v)
                          for k, v in row.items()}), flush=True)
    record = dict(label=args.label, host=platform.node(), cpus=os.cpu_count(),
                  load_avg=os.getloadavg(), python=platform.python_version(),
                  repeats=args.repeats, results=results,
                  note="CPU seconds by time.process_time in one process; the machine was "
                       "shared (see load_avg), so compare ratios from one run")
    out = Path(f"{args.out}_{args.label}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
