"""Are a sweep's cost axes reproducible? The same grid sweep, run twice into fresh stores.

    python benchmarks/cost_stability.py                      # this checkout
    python benchmarks/cost_stability.py --code OLD_CHECKOUT  # e.g. a worktree of an older commit

Six small digits models (pool_mode x embed_dim on the quickstart's base), two trials at a time
with 2 threads each on one node: co-tenants, as trials sharing a GPU are. Each architecture's
``throughput`` (and ``train_throughput``, where the code measures it) is compared between the
two runs: the median and the worst relative difference ``|a - b| / min(a, b)``. Then every
architecture is measured standalone in this process by ``mvit-lab profile`` (the same threads
and batch as the trials; on the CPU priced against the reference model as the sweeps are, and
raw with ``--reference off``) and the sweeps' throughput ranking is compared with each
(Spearman rho). Also reported: the seconds spent measuring, per distinct architecture
and per trial. Writes ``benchmarks/results/cost_stability_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

BASE = dict(preset="mvitv2_t", input_size=[1, 16, 16], patch_kernel=[1, 3, 3],
            patch_stride=[1, 2, 2], patch_padding=[0, 1, 1], depths=[1, 2, 1], embed_dim=16,
            num_heads=1, kv_stride=[1, 2, 2], num_classes=10)
GRID = dict(pool_mode=["conv", "max", "avg"], embed_dim=[16, 32])


def experiment(name: str, threads: int, epochs: int, new_code: bool) -> dict:
    exp = dict(name=name, data=dict(dataset="digits"), model=dict(preset="mvitv2_t"),
               train=dict(epochs=epochs, batch_size=64, lr=0.003, warmup_epochs=1,
                          threads=threads),
               search=dict(base=BASE, grid=GRID),
               objectives=dict(val_top1="max", gflops="min", throughput="max"),
               budget=dict(seeds=[0], concurrency=2), resources=dict(cpus=1),
               tracking=dict(uri="mlruns.db"))
    if new_code:
        exp["measure"] = dict(batch=32)
    return exp


def run_sweep(code: Path, workdir: Path, exp: dict) -> float:
    workdir.mkdir(parents=True)
    (workdir / "exp.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(code))
    env.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mvit_lab.cli", "sweep", "exp.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"sweep failed in {workdir}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def read_trials(workdir: Path, name: str) -> dict[str, dict]:
    from mvit_lab.tracking import runs_dataframe

    runs = runs_dataframe(f"sqlite:///{workdir}/mlruns.db", name)
    runs = runs[runs["parent_run_id"].notna()]
    out = {}
    for _, row in runs.iterrows():
        rec = {k: row.get(f"metric.{k}") for k in ("throughput", "train_throughput",
                                                    "measure_seconds")}
        rec = {k: (None if v is None or v != v else float(v)) for k, v in rec.items()}
        rec.update(source=row.get("tag.cost_infer_source"), device=row.get("tag.device"))
        out[row["tag.point"]] = rec
    return out


def differences(a: dict, b: dict, metric: str) -> dict | None:
    pairs = [(a[p][metric], b[p][metric]) for p in a if p in b
             and a[p][metric] is not None and b[p][metric] is not None]
    if not pairs:
        return None
    diffs = [abs(x - y) / min(x, y) for x, y in pairs]
    return dict(n=len(diffs), median=statistics.median(diffs), worst=max(diffs),
                each=[round(d, 4) for d in diffs])


def standalone(points: list[str], threads: int, batch: int,
               reference: str = "auto") -> dict[str, float]:
    """Each architecture measured alone by ``mvit-lab profile`` (in this process, its JSON
    read back): on the CPU by default with the reference model, priced at the node's
    calibrated reference speed as the sweeps' costs are; ``reference="off"``: the raw
    figure."""
    import contextlib
    import io

    import torch

    from mvit_lab.cli import main as cli
    from mvit_lab.config import ArchConfig
    from mvit_lab.search.space import Point, parse_space, resolve_point

    torch.set_num_threads(threads)
    space = parse_space(dict(base=BASE, grid=GRID))
    by_name = {p.name: p for p in space.points()}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in points:
            cfg = resolve_point(space, ArchConfig(), by_name[name] if name in by_name else
                                Point(name, {}, {}))
            arch = Path(tmp) / "arch.json"
            arch.write_text(json.dumps(cfg.to_dict()))
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                code = cli(["profile", str(arch), "--batch", str(batch), "--json",
                            "--reference", reference])
            if code:
                raise RuntimeError(f"mvit-lab profile failed for {name}")
            speed = json.loads(text.getvalue())["speed"]
            out[name] = speed.get("calibrated_items_per_s") or speed["items_per_s"]
    return out


def spearman(a: dict, b: dict) -> float:
    from scipy.stats import spearmanr

    keys = [k for k in a if k in b and a[k] is not None and b[k] is not None]
    return float(spearmanr([a[k] for k in keys], [b[k] for k in keys]).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=str(ROOT), help="the checkout whose sweeps run")
    parser.add_argument("--label", default=None, help="results file label (default: new/old)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    code = Path(args.code).resolve()
    new_code = (code / "mvit_lab" / "measure" / "costs.py").is_file()
    label = args.label or ("new" if new_code else "old")
    sys.path.insert(0, str(ROOT))
    import torch

    from mvit_lab.measure._devices import device_name

    tmp = Path(tempfile.mkdtemp(prefix="cost_stability_"))
    from mvit_lab.measure.costs import calibration_dir

    calibrated_before = sorted(p.name for p in calibration_dir().glob("*.json"))
    runs, walls = [], []
    for i in range(2):
        workdir = tmp / f"run{i}"
        walls.append(run_sweep(code, workdir, experiment("stability", args.threads,
                                                         args.epochs, new_code)))
        runs.append(read_trials(workdir, "stability"))
        print(f"run {i}: {len(runs[-1])} trials in {walls[-1]:.0f} s", flush=True)
    result = dict(code=str(code), label=label, threads_per_trial=args.threads,
                  concurrency=2, epochs=args.epochs, device=device_name(torch.device("cpu")),
                  sweep_seconds=walls, runs=runs, load_average=os.getloadavg(),
                  # the node's reference speeds (CPU costs are ratios to them; see
                  # measure.costs): those that existed before the first sweep, and all after
                  calibrations_before=calibrated_before,
                  calibrations=[json.loads(p.read_text())
                                for p in sorted(calibration_dir().glob("*.json"))])
    for metric in ("throughput", "train_throughput"):
        result[f"{metric}_difference"] = differences(runs[0], runs[1], metric)
    # `mvit-lab profile` as a user runs it (on the CPU: priced against the reference), and
    # its raw figure (--reference off), each architecture alone
    for key, reference in (("standalone", "auto"), ("standalone_raw", "off")):
        alone = standalone(sorted(runs[0]), args.threads, 32 if new_code else 8, reference)
        result[f"{key}_throughput"] = alone
        result[f"spearman_vs_{key}"] = [spearman({p: r["throughput"] for p, r in run.items()},
                                                 alone) for run in runs]
    if new_code:
        measured = [r["measure_seconds"] for run in runs for r in run.values()
                    if r["measure_seconds"] is not None]
        fresh = [r["measure_seconds"] for run in runs for r in run.values()
                 if r["source"] == "measured" and r["measure_seconds"] is not None]
        result["measure_seconds_per_trial"] = statistics.mean(measured) if measured else None
        result["measure_seconds_per_architecture"] = (sum(measured) / len(fresh)
                                                      if fresh else None)
    out = ROOT / "benchmarks" / "results" / f"cost_stability_{label}.json"
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    for metric in ("throughput", "train_throughput"):
        d = result[f"{metric}_difference"]
        if d:
            print(f"{metric}: median difference {100 * d['median']:.1f}%, worst "
                  f"{100 * d['worst']:.1f}% over {d['n']} architectures")
    print(f"Spearman rho vs standalone `mvit-lab profile`: {result['spearman_vs_standalone']} "
          f"(raw: {result['spearman_vs_standalone_raw']})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
