"""One trial in detail, as plain data: its full config, per-epoch curves, cost per stage, links.

Trials log their config (params), metrics per epoch and final costs; the cost breakdown per
stage and per module is recomputed from the logged config with
:func:`mvit_lab.measure.count_flops` on the meta device (milliseconds for the small models of a
sweep, under a second for the largest presets).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from mvit_lab.dashboards.data import DataError, Sweep
from mvit_lab.plots.run import PANELS, _get_curves_info

__all__ = ["cost_breakdown", "run_details"]

SUMMARY_METRICS = ("val_top1", "val_top5", "gflops", "params", "throughput", "latency_ms",
                   "train_seconds", "epochs")


def _fmt(t: Any) -> str:
    return "-" if t is None else "x".join(map(str, t))


@functools.lru_cache(maxsize=256)
def _cost(model_json: str) -> dict[str, Any]:
    from mvit_lab.config import ArchConfig, expand_blocks
    from mvit_lab.measure import count_flops

    cfg = ArchConfig(**json.loads(model_json))
    report = count_flops(cfg)
    specs = expand_blocks(cfg)
    total = report.gflops or 1.0
    stages = []
    for stage in range(cfg.num_stages):
        blocks = [s for s in specs if s.stage == stage]
        first, last = blocks[0], blocks[-1]
        gflops = report.by_stage.get(f"stage{stage}", 0.0)
        # as `mvit-lab build` says it: a stage's first block keeps the previous stage's kind
        attention = "mask unit" if first.mask_unit_attn else "global"
        if first.mask_unit_attn != last.mask_unit_attn:
            attention += f" then {'mask unit' if last.mask_unit_attn else 'global'}"
        stages.append(dict(stage=f"stage{stage}", blocks=len(blocks),
                           dim=f"{first.dim}->{last.dim_out}", heads=first.num_heads,
                           grid=f"{_fmt(first.in_grid)} -> {_fmt(last.q_grid)}",
                           attention=attention, gflops=gflops, share=gflops / total))
    return dict(gflops=report.gflops, params=report.params, other_gflops=report.other_gflops,
                by_stage=dict(report.by_stage), by_module=dict(report.by_module), stages=stages)


def cost_breakdown(model: dict[str, Any]) -> dict[str, Any]:
    """GFLOPs per stage (``stem``, ``stage0``.., ``head``) and per module (qkv, attention,
    mlp, ...), and one row per stage (blocks, width, heads, token grid, attention, GFLOPs)."""
    try:
        return _cost(json.dumps(model, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise DataError(f"the logged config does not rebuild: {err}") from err


def run_details(sweep: Sweep, run_id: str) -> dict[str, Any]:
    """Everything the run panel shows about the trial ``run_id`` of ``sweep``."""
    from mvit_lab.tracking import metric_history, run_url

    rec = next((r for r in sweep.records if r["run_id"] == run_id), None)
    if rec is None:
        raise DataError(f"run {run_id!r} is not a trial of sweep {sweep.name!r}")
    wanted = [name for _, names in PANELS for name in names if name in rec["metric_names"]]
    try:
        histories = {name: metric_history(sweep.tracking_uri, run_id, name) for name in wanted}
    except Exception as err:  # the store went away between two refreshes
        raise DataError(f"cannot read the metrics of run {run_id}: {err}") from err
    cost, cost_error = None, None
    try:
        cost = cost_breakdown(rec["model"])
    except DataError as err:
        cost_error = str(err)
    ui = f"mlflow ui --backend-store-uri {sweep.tracking_uri}"
    local = None
    if sweep.experiment_id is not None:
        local = f"http://127.0.0.1:5000/#/experiments/{sweep.experiment_id}/runs/{run_id}"
    return dict(
        run_id=run_id, run_name=rec.get("run_name"), point=rec.get("point"),
        seed=rec.get("seed"), status=rec["status"], reason=rec.get("reason"),
        experiment=sweep.experiment, experiment_id=sweep.experiment_id,
        metrics={k: rec[k] for k in SUMMARY_METRICS if rec.get(k) is not None},
        diff=rec.get("diff") or [], base_known=sweep.base is not None,
        config=rec.get("config") or {}, curves=_get_curves_info(histories),
        cost=cost, cost_error=cost_error,
        url=run_url(sweep.tracking_uri, sweep.experiment_id or "0", run_id),
        ui_command=ui, ui_url=local)
