"""Fixture MLflow stores for the dashboard, written through the sweeps' own Tracker.

``fixture_store`` (conftest.py) holds hand-made sweeps whose numbers are easy to check by hand:

* ``ablation``: a grid over ``pool_mode`` (base level ``max``): max at 90 / 92 / 94 top-1 and
  1.0 GFLOPs (seeds 0-2), avg at 85 / 87 and 0.5 GFLOPs (seeds 0-1), plus a failed trial at
  99 top-1 and 0.1 GFLOPs, a pruned one and a running one. Front of (top-1 max, GFLOPs min):
  max seed 2 (94, 1.0) and avg seed 1 (87, 0.5). The max / seed 0 trial logged per-epoch
  curves (val_top1 50, 70, 90; train_loss 2, 1, 0.5) and its final metrics again at epoch 3.
* ``ladder``: three steps, two seeds each, throughputs 100, 150, 300 (speed-ups 1, 1.5, 3).
* ``failing``: two trials, both failed with a reason.
* ``no_throughput``: objectives include throughput, which no trial logged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mvit_lab.presets import get_config
from mvit_lab.tracking import Tracker, default_tracking_uri, ensure_experiment, flatten_params

TINY = dict(input_size=[1, 16, 16], patch_kernel=[1, 2, 2], patch_stride=[1, 2, 2],
            patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8, mask_unit_size=[1, 4, 4],
            mask_unit_attn=[True, False], num_classes=10)
BASE = get_config("hiera_t", **TINY)
ABLATION_SPACE = dict(base=dict(preset="hiera_t", **TINY), grid=dict(pool_mode=["max", "avg"]))


def write_sweep(uri: str, experiment: str, space: dict[str, Any], objectives: dict[str, str],
                trials: list[dict[str, Any]], mode: str = "grid") -> tuple[str, list[str]]:
    """A parent run and one child run per trial, logged as ``run_sweep`` / ``run_trial`` do.

    Each trial: ``point``, ``seed``, ``status`` (finished / failed / pruned / running),
    ``model`` (knobs over BASE), ``metrics`` (final, logged at the last epoch), ``history``
    (``{metric: [values per epoch]}``), ``step`` (ladder position), ``space`` (design space),
    ``reason``.
    """
    ensure_experiment(experiment, uri)
    tracker = Tracker(uri, experiment)
    parent = tracker.start_parent(experiment, flatten_params(dict(experiment=dict(
        name=experiment, model=BASE.to_dict(), search=space, objectives=objectives))),
        dict(algorithm=mode, search_mode=mode))
    ids = []
    for t in trials:
        model = BASE.replace(**t.get("model", {})).to_dict()
        tags = dict(trial_id=f"{t['point']}-{t['seed']}", point=t["point"], seed=str(t["seed"]),
                    status="running", search_mode=mode)
        if "step" in t:
            tags["ladder_step"] = str(t["step"])
        if "space" in t:
            tags["design_space"] = t["space"]
        params = flatten_params(dict(model=model, train=dict(epochs=3, lr=0.003, seed=t["seed"]),
                                     data=dict(dataset="digits"), seed=t["seed"]))
        run = tracker.start_child(parent, f"{t['point']} seed={t['seed']}", params, tags)
        for name, values in (t.get("history") or {}).items():
            for epoch, value in enumerate(values, start=1):
                tracker.log_metrics(run, {name: value, "epoch": epoch}, step=epoch)
        if t.get("metrics"):
            tracker.log_metrics(run, t["metrics"], step=3)
        status = t.get("status", "finished")
        if status != "running":
            tracker.set_tags(run, dict(status=status, **(
                dict(reason=t["reason"]) if t.get("reason") else {})))
            tracker.finish(run, "FAILED" if status == "failed" else "FINISHED")
        ids.append(run)
    tracker.finish(parent, "FINISHED")
    return parent, ids


def _trial(pool: str, seed: int, top1: float | None, gflops: float, **kw: Any) -> dict:
    metrics = dict(gflops=gflops, params=1000.0, throughput=100.0 if pool == "max" else 200.0)
    if top1 is not None:
        metrics["val_top1"] = top1
    return dict(point=f"pool_mode={pool}", seed=seed, model=dict(pool_mode=pool),
                metrics=metrics, **kw)


ABLATION_TRIALS = [
    _trial("max", 0, 90.0, 1.0, history=dict(val_top1=[50.0, 70.0, 90.0],
                                              train_loss=[2.0, 1.0, 0.5])),
    _trial("max", 1, 92.0, 1.0),
    _trial("max", 2, 94.0, 1.0),
    _trial("avg", 0, 85.0, 0.5),
    _trial("avg", 1, 87.0, 0.5),
    _trial("avg", 2, 99.0, 0.1, status="failed", reason="FloatingPointError: loss is nan"),
    dict(point="pool_mode=conv", seed=0, model=dict(pool_mode="conv"), status="pruned",
         metrics=dict(gflops=9.0)),
    dict(point="pool_mode=conv", seed=1, model=dict(pool_mode="conv"), status="running",
         history=dict(val_top1=[40.0])),
]
LADDER_SPACE = dict(base=dict(preset="hiera_t", **TINY), ladder=[
    dict(name="a_first", set={}), dict(name="b_max", set=dict(pool_mode="max")),
    dict(name="c_avg", set=dict(pool_mode="avg"))])
LADDER_TRIALS = [
    dict(point=name, seed=seed, step=step, model=model,
         metrics=dict(val_top1=top1, gflops=0.02, throughput=speed))
    for step, (name, model, speed, top1s) in enumerate([
        ("a_first", {}, 100.0, (90.0, 92.0)),
        ("b_max", dict(pool_mode="max"), 150.0, (91.0, 91.0)),
        ("c_avg", dict(pool_mode="avg"), 300.0, (80.0, 84.0))])
    for seed, top1 in enumerate(top1s)
]


def copy_store(src: Path, dst_dir: Path) -> str:
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst_dir / "mlruns.db")
    return default_tracking_uri(dst_dir)


# -- issue 18: a sampled sweep whose objectives are each driven by one knob alone --------------
PLANTED_SPACE = dict(base=dict(preset="hiera_t", **TINY), params=dict(
    embed_dim=dict(choice=[8, 16, 24]), mlp_ratio=dict(float=[1.0, 4.0]),
    pool_mode=dict(choice=["max", "avg"])))


def _planted(i: int) -> dict[str, Any]:
    """Trial ``i``: knobs drawn on a fixed schedule (every pair of levels meets); top-1 is
    70 + embed_dim and GFLOPs 0.01 * mlp_ratio, whatever the other knobs."""
    model = dict(embed_dim=(8, 16, 24)[i % 3], pool_mode=("max", "avg")[(i // 3) % 2],
                 mlp_ratio=1.0 + 3.0 * ((i * 7) % 24) / 23)
    return dict(point=f"t{i}", seed=0, model=model, metrics=dict(
        val_top1=70.0 + model["embed_dim"], gflops=0.01 * model["mlp_ratio"], params=1000.0))


PLANTED_TRIALS = [_planted(i) for i in range(24)]
