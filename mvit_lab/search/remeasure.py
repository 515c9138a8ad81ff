"""``mvit-lab measure``: re-measure a sweep's architectures, one at a time, on one device.

A sweep's trials measure their own costs on whatever device trained them, in isolation from
their co-tenants (see :mod:`mvit_lab.measure.costs`). To compare a front on one device, or to
price on the target GPU what was trained on a cluster, :func:`remeasure` takes every distinct
architecture of the sweep's finished (and pruned-before-training: no) trials, measures it on
the chosen device under that device's lock (a sweep running on the same node pauses), and
writes the figures back to every trial run of that architecture: the cost metrics, the
``cost_*`` tags that label the axes (device, dtype, batch, protocol, ``cost_by``), and a
``costs/<device>.json`` artifact, so the figures of every device measured stay on the run.
"""

from __future__ import annotations

import re
import time
from typing import Any

from mvit_lab.config import ArchConfig

__all__ = ["remeasure"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80]


def remeasure(runs: Any, tracking_uri: str, experiment: str, *, device: str = "cpu",
              dtype: str = "float32", batch_size: int = 32,
              modes: tuple[str, ...] = ("infer", "train"), protocol: Any = None,
              cache_dir: str | None = None, refresh: bool = False,
              progress: Any = None) -> list[dict[str, Any]]:
    """Measure each distinct architecture of the finished trial ``runs`` (a
    :func:`~mvit_lab.tracking.runs_dataframe`) and log the figures to their runs.

    Returns one row per architecture: its trials, the figures, and whether it was cached.
    """
    from mvit_lab.measure.costs import CostCache, cost_metrics, cost_tags, measure_costs
    from mvit_lab.search.records import param_value
    from mvit_lab.tracking import Tracker

    groups: dict[str, dict[str, Any]] = {}
    for _, row in runs.iterrows():
        if row.get("tag.status") != "finished":
            continue
        knobs = {c[len("param.model."):]: param_value(row[c]) for c in row.index
                 if c.startswith("param.model.") and isinstance(row[c], str)}
        if not knobs:
            continue
        try:
            cfg = ArchConfig(**knobs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"run {row['run_id']}: its logged architecture does not build "
                             f"({err})") from None
        key = repr(sorted(cfg.to_dict().items()))
        group = groups.setdefault(key, dict(cfg=cfg, runs=[], point=row.get("tag.point")))
        group["runs"].append(row["run_id"])
    if not groups:
        raise ValueError(f"MLflow experiment {experiment!r}: no finished trials to measure")
    tracker = Tracker(tracking_uri, experiment)
    cache = CostCache(cache_dir)
    rows = []
    for i, group in enumerate(groups.values()):
        start = time.perf_counter()
        records, cached = measure_costs(group["cfg"], device=device, dtype=dtype,
                                        batch_size=batch_size, modes=modes,
                                        protocol=protocol, cache=cache, refresh=refresh)
        metrics = cost_metrics(records)
        tags = dict(cost_tags(records, cached), cost_by="mvit-lab measure")
        tags["device"] = tags["cost_device"]
        artifact = f"costs/{_slug(tags['cost_device'])}.json"
        for run_id in group["runs"]:
            tracker.log_metrics(run_id, metrics, step=0)  # step 0, newer: the latest value
            tracker.set_tags(run_id, tags)
            tracker.log_dict(run_id, {m: r.to_dict() for m, r in records.items()}, artifact)
        row = dict(point=group["point"], trials=len(group["runs"]), **metrics,
                   spread={m: r.spread for m, r in records.items()},
                   cached=all(cached.values()), seconds=time.perf_counter() - start,
                   device=tags["cost_device"], protocol=tags["cost_protocol"])
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(groups), row)
    return rows
