"""The ``mvit-lab`` command: a thin layer over the library (load, override, validate, run)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from mvit_lab._cli_checks import (
    check_fits,
    check_save_path,
    forward_logits,
    positive_int,
)
from mvit_lab.config import expand_blocks
from mvit_lab.configfile import load_arch, parse_overrides, save_arch
from mvit_lab.presets import get_preset, list_presets

__all__ = ["main"]


# torch and the models are imported by the commands that need them: `pareto`, `dashboard`,
# `analyse` and `--help` then start in a fraction of the time
def build_model(cfg: Any) -> Any:
    from mvit_lab.build import build_model as build

    return build(cfg)


def count_params(cfg: Any) -> int:
    from mvit_lab.build import count_params as count

    return count(cfg)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def _fmt(t: tuple[int, ...] | None, image: bool) -> str:
    if t is None:
        return "-"
    return "x".join(map(str, t[1:] if image else t))


def cmd_presets(args: argparse.Namespace) -> int:
    rows, records = [], []
    for name in list_presets():
        preset = get_preset(name)
        n = count_params(preset.config)
        if preset.params_exact:
            status = "exact" if n == preset.params else f"DIFF {n - preset.params:+,}"
        else:
            status = f"~{preset.params / 1e6:.1f}M published"
        records.append(dict(name=name, params=n, reference_params=preset.params,
                            params_exact=preset.params_exact, gflops_published=preset.gflops,
                            source=preset.source))
        rows.append([name, f"{n:,}", status, f"{preset.gflops:g}", preset.source])
    if args.json:
        print(json.dumps(records))
    else:
        print(_table(rows, ["preset", "params", "vs reference", "GFLOPs (paper)", "source"]))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    if args.save:
        check_save_path(args.save)
    cfg = load_arch(args.arch, parse_overrides(args.set))
    specs = expand_blocks(cfg)
    rows = []
    for stage in range(cfg.num_stages):
        blocks = [s for s in specs if s.stage == stage]
        first, last = blocks[0], blocks[-1]
        attn = "global"
        if first.mask_unit_attn:
            attn = f"mask unit {_fmt(first.q_window, cfg.is_image)}"
        if first.mask_unit_attn != last.mask_unit_attn:
            attn += f" then {'mask unit' if last.mask_unit_attn else 'global'}"
        rows.append([str(stage), str(len(blocks)), f"{first.dim}->{last.dim_out}",
                     str(first.num_heads), _fmt(first.in_grid, cfg.is_image),
                     _fmt(last.q_grid, cfg.is_image), _fmt(first.q_stride, cfg.is_image),
                     _fmt(first.kv_stride if first.kv_kernel else None, cfg.is_image), attn])
    n_params = count_params(cfg)
    check_fits(cfg, args.batch, n_params)
    model = build_model(cfg).eval()
    shape = (args.batch, cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    import torch

    x = torch.randn(shape)
    start = time.perf_counter()
    logits = forward_logits(model, x)
    seconds = time.perf_counter() - start
    bad = (~torch.isfinite(logits)).sum().item()
    if bad:
        raise ValueError(f"forward pass: {bad} of {logits.numel()} logits are not finite (NaN "
                         "or inf) with random weights; the config is numerically unstable (look "
                         "at norm_eps, embed_dim and the init scale)")
    if args.save:
        try:
            save_arch(cfg, args.save)
        except OSError as err:
            raise ValueError(f"--save {args.save}: {err.strerror}") from None
    if args.json:
        print(json.dumps(dict(config=cfg.to_dict(), params=n_params, input=list(shape),
                              logits=list(logits.shape), forward_seconds=seconds)))
        return 0
    print(_table(rows, ["stage", "blocks", "dim", "heads", "grid in", "grid out", "q stride",
                        "kv stride", "attention"]))
    print(f"\nparams: {n_params:,}")
    print(f"forward: input {list(shape)} -> logits {list(logits.shape)} in {seconds:.2f} s "
          "(CPU, fp32)")
    if args.save:
        print(f"resolved config written to {args.save}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from mvit_lab.measure import Protocol, count_flops, measure_throughput
    from mvit_lab.measure.protocol import REFERENCE

    cfg = load_arch(args.arch, parse_overrides(args.set))
    flops = count_flops(cfg, batch_size=1)
    sparse = None
    if args.mask_ratio is not None:
        sparse = count_flops(cfg, mask_ratio=args.mask_ratio)  # validates first: no timing
    speed = None
    if not args.flops_only:
        if args.device == "cpu":
            check_fits(cfg, args.batch, flops.params)
        model = build_model(cfg)
        reference = args.device == "cpu" if args.reference == "auto" else args.reference == "on"
        protocol = Protocol(target_spread=args.target_spread, max_s=args.max_seconds,
                            reference=reference)
        from mvit_lab.measure.isolation import device_lock
        from mvit_lab.measure.speed import _check

        # as a sweep's measurements: trials training on this device pause meanwhile (and the
        # node's calibration, kept for every later sweep, is never timed beside them)
        device = _check(args.device, args.dtype, args.mode, args.batch)  # one-line errors
        with device_lock(device).exclusive(timeout=600):
            speed = measure_throughput(model, batch_size=args.batch, device=args.device,
                                       dtype=args.dtype, mode=args.mode, compile=args.compile,
                                       protocol=protocol, peak_tflops_override=args.peak_tflops,
                                       backend=True)
            if speed.reference_ratio is not None:  # the figure a sweep's costs give here
                from mvit_lab.measure.costs import reference_speed

                calibration = reference_speed(args.device, args.dtype, args.batch, args.mode,
                                              protocol)
    if args.json:
        out = dict(config=cfg.to_dict(), flops=flops.to_dict(),
                   speed=speed.to_dict() if speed is not None else None)
        if speed is not None and speed.reference_ratio is not None:
            out["speed"].update(reference_calibration=calibration,
                                calibrated_items_per_s=speed.reference_ratio * calibration)
        if sparse is not None:
            out["mae_encoder_flops"] = sparse.to_dict()
        print(json.dumps(out))
        return 0
    print(f"params: {flops.params:,}")
    print(f"GFLOPs: {flops.gflops:.3f} per {'image' if cfg.is_image else 'clip'} "
          f"(multiply-adds; norms, pooling and elementwise: {flops.other_gflops:.3f} more)")
    total = flops.gflops or 1.0
    rows = [[k, f"{v:.3f}", f"{100 * v / total:.1f}%"] for k, v in flops.by_stage.items()]
    print(_table(rows, ["stage", "GFLOPs", "share"]))
    rows = [[k, f"{v:.3f}", f"{100 * v / total:.1f}%"] for k, v in flops.by_module.items()]
    print(_table(rows, ["module", "GFLOPs", "share"]))
    if flops.skipped:
        print(f"not counted: {flops.skipped}")
    if sparse is not None:
        print(f"MAE encoder at mask ratio {args.mask_ratio} (masked units deleted): "
              f"{sparse.gflops:.3f} GFLOPs, {100 * sparse.gflops / flops.encoder_gflops:.1f}% "
              f"of the dense encoder's {flops.encoder_gflops:.3f}")
    if speed is None:
        return 0
    unit = "images" if cfg.is_image else "clips"
    print(f"\n{speed.mode} on {speed.device_name}, {speed.dtype}, batch {speed.batch_size}"
          f"{', compiled' if speed.compiled else ''}:")
    blocks = (f"over the best {min(speed.blocks, 5)} of {speed.blocks} blocks of "
              f"{speed.iters}{'' if speed.converged else ', target not met'}")
    if speed.reference_ratio is None:
        print(f"throughput: {speed.items_per_s:.2f} {unit}/s (median step; spread "
              f"{100 * speed.spread:.1f}% {blocks})")
    else:
        print(f"throughput: {speed.reference_ratio * calibration:.2f} {unit}/s (as sweeps "
              f"price it: {speed.reference_ratio:.4g} x the node's {REFERENCE} speed of "
              f"{calibration:.1f}/s; the ratio's spread {100 * speed.spread:.1f}% {blocks})")
        print(f"as timed: {speed.items_per_s:.2f} {unit}/s (this minute's speed, raw)")
    print(f"attention kernel: {speed.sdpa_backend}")
    print(f"latency: {speed.latency_ms:.1f} ms per batch")
    print(f"memory: {speed.peak_memory_mb:.0f} MiB ({speed.memory_kind})")
    if speed.mfu is not None:
        print(f"MFU: {100 * speed.mfu:.1f}% ({speed.achieved_tflops:.3f} of "
              f"{speed.peak_tflops:.2f} TFLOP/s, peak from {speed.peak_source})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import load_experiment
    from mvit_lab.train import train

    exp = load_experiment(args.experiment, args.set)
    if args.print_config:
        return _print_config(exp)
    out = args.out or f"runs/{exp.name}"
    video = exp.data.is_video
    columns = ["epoch", "train_loss", "val_loss", "val_top1", "val_top5"] + (
        ["val_top1_shuffled"] if video else []) + ["lr", "epoch_seconds"]
    pretrain_columns = ["epoch", "pretrain_loss", "pretrain_val_loss", "pretrain_lr",
                        "pretrain_epoch_seconds"]
    if exp.pretrain is not None:
        p = exp.pretrain
        print(f"MAE pretraining: {p.epochs} epochs, mask ratio {p.ratio_for(video)}, decoder "
              f"{p.decoder_depth} x {p.decoder_dim} ({p.decoder_heads} heads); then "
              f"fine-tuning", flush=True)
    try:
        result = train(exp, out, resume=args.resume, callback=_epoch_table(columns),
                       pretrain_callback=_epoch_table(pretrain_columns))
    except KeyboardInterrupt:
        print(_interrupted_train(out), file=sys.stderr, flush=True)
        return 130
    final = result.final
    for report in result.data_reports:
        skipped = sum(len(v) for v in report["skipped"].values())
        print(f"data {report['split']}: {report['usable']} of {report['total']} samples"
              + (f", {skipped} skipped: {report['skipped']}" if skipped else ""))
    summary = (f"{exp.name}: val top-1 {final['val_top1']:.2f}%, top-5 {final['val_top5']:.2f}%"
               + (f", shuffled frames top-1 {final['val_top1_shuffled']:.2f}%" if video else "")
               + f" after {final['epochs']} epochs, {final['train_seconds']:.0f} s on "
               f"{final['device']}, {final['params']:,} params; run in {out}")
    print(summary)
    if args.json:
        keys = ["val_top1", "val_top5", "val_loss", "train_loss", "epochs", "train_seconds",
                "params", "device"] + (["val_top1_shuffled"] if video else [])
        print(json.dumps({k: final[k] for k in keys} | {"out_dir": out}))
    return 0


def _interrupted_train(out: str) -> str:
    """What a Ctrl-C during ``train`` kept: the epochs in the run folder's checkpoints."""
    from pathlib import Path

    def epochs(name: str) -> int:
        try:
            return len(json.loads((Path(out) / name).read_text()))
        except (OSError, ValueError):
            return 0

    fine_tuned, pretrained = epochs("metrics.json"), epochs("pretrain_metrics.json")
    if fine_tuned:
        return (f"interrupted after epoch {fine_tuned} (checkpoint saved in {out}); continue "
                "with --resume")
    if pretrained:
        return (f"interrupted after MAE pretraining epoch {pretrained} (checkpoint saved in "
                f"{out}); continue with --resume")
    return "interrupted before the first epoch ended (nothing saved); run it again"


def _epoch_table(columns: list[str]) -> Callable[[dict], None]:
    """A per-epoch callback printing ``columns`` as a table, the header before the first row."""
    widths = [max(len(c), 9) for c in columns]
    started = []

    def show(m: dict) -> None:
        if not started:
            print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), flush=True)
            started.append(True)
        cells = [f"{m[c]:.4g}" if isinstance(m.get(c), float) else str(m.get(c, "-"))
                 for c in columns]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)), flush=True)

    return show


def _print_config(exp: Any) -> int:
    """The fully resolved experiment as YAML, each recipe's source as a comment; no run."""
    import yaml

    from mvit_lab.recipes import get_recipe

    for section in ("pretrain", "train"):
        name = getattr(getattr(exp, section), "recipe", None) if getattr(exp, section) else None
        if name:
            recipe = get_recipe(name, section)
            print(f"# {section}.recipe {name}: {recipe.source}")
            if recipe.notes:
                print(f"#   notes: {recipe.notes}")
    print(yaml.safe_dump(exp.to_dict(), sort_keys=False, default_flow_style=None, width=99),
          end="")
    return 0


def _front_rows(front: list[dict], objectives: list) -> list[list[str]]:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    names = [o.name for o in objectives]
    extra = [k for k in ("gflops", "params", "throughput") if k not in names]
    return [[str(r.get("rank", 0)), str(r.get("point")), str(r.get("seed"))]
            + [fmt(r.get(k)) for k in names + extra] for r in front]


def cmd_sweep(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import load_experiment
    from mvit_lab.search.sweep import parse_sweep, run_sweep

    exp = load_experiment(args.experiment, args.set)
    sweep = parse_sweep(exp)  # every key checked before Ray starts
    if args.print_config:
        return _print_config(exp)
    n = sweep.total
    print(f"sweep {exp.name}: {n} trials ({sweep.algorithm}), objectives "
          + ", ".join(f"{o.name} {o.sense}" for o in sweep.objectives)
          + (f"; {sweep.workers.workers} workers per trial" if sweep.workers.multi else "")
          + f"; tracking {sweep.tracking_uri}", flush=True)
    for warning in sweep.warnings:
        print(f"warning: {warning}", flush=True)
    from mvit_lab.search.disk import estimate_disk, format_disk

    if sweep.replay:  # nothing trains, so no checkpoints to size
        print(f"replay: trials answer from the table {sweep.replay['table']} (costs and "
              "per-epoch metrics as recorded; nothing is measured or trained)", flush=True)
    else:
        for line in format_disk(estimate_disk(exp, sweep, f"runs/sweeps/{exp.name}")):
            print(line, flush=True)
    terminal = sys.stdout  # the libraries' output goes to the sweep's log unless --verbose

    def progress(line: str) -> None:
        print(line, file=terminal, flush=True)

    try:
        result = run_sweep(exp, resume=args.resume or args.retry_failed, address=args.address,
                           retry_failed=args.retry_failed, progress=progress,
                           quiet=not args.verbose, status_every_s=args.status_every)
    except KeyboardInterrupt as err:
        counts = getattr(err, "counts", None)
        done = f" ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})" if counts \
            else ""
        print(f"interrupted{done}; continue with `mvit-lab sweep {args.experiment} --resume`",
              file=sys.stderr, flush=True)
        return 130
    from mvit_lab.dashboards import log_sweep_report
    from mvit_lab.search.records import cost_summary

    log_sweep_report(result)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result["counts"].items()))
    print(f"trials: {counts}" + ("" if args.verbose else
                                 f"   (library output: {result['log_file']})"))
    print(cost_summary(result["records"]))
    names = [o.name for o in sweep.objectives]
    extra = [k for k in ("gflops", "params", "throughput") if k not in names]
    print(f"Pareto front ({len(result['front'])} trials):")
    print(_table(_front_rows(result["front"], list(sweep.objectives)),
                 ["rank", "point", "seed", *names, *extra]))
    if result.get("ladder"):
        from mvit_lab.search.tables import format_ladder

        print("\nLadder (Hiera paper, Table 1 form):")
        print(format_ladder(result["ladder"], sweep.objectives[0].name))
    for table in result.get("ablations") or []:
        if table:
            from mvit_lab.search.tables import format_ablation

            print(f"\nAblation of {table[0]['factor']}:")
            print(format_ablation(table, sweep.objectives[0].name))
    from mvit_lab.tracking import resolve_tracking_uri

    store = "" if result["tracking_uri"] == resolve_tracking_uri(None) else \
        f" --tracking-uri {result['tracking_uri']}"
    print(f"\ndashboard: mvit-lab dashboard{store} --experiment {result['mlflow_experiment']}, "
          "then open http://127.0.0.1:8050")
    print(f"browse: mvit-lab pareto {args.experiment}   |   mlflow ui --backend-store-uri "
          f"{result['tracking_uri']}   (MLflow experiment '{result['mlflow_experiment']}', "
          f"parent run {result['parent_run_id']})")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import check_objectives, load_experiment
    from mvit_lab.search.metrics import check_metric_names
    from mvit_lab.search.pareto import front_table
    from mvit_lab.search.records import METRICS, cost_summary, sweep_records
    from mvit_lab.search.sweep import parse_sweep

    exp = load_experiment(args.experiment, args.set)
    sweep = parse_sweep(exp)
    objectives = check_objectives(args.objectives, "--objectives", args.objectives) \
        if args.objectives else sweep.objectives
    if args.objectives:
        check_metric_names([o.name for o in objectives], "--objectives",
                           video=exp.data.is_video, pretrain=exp.pretrain is not None)
    # only what is printed: the objectives' and costs' metrics, and the model's params for
    # --json (the table shows none)
    rows = _sweep_runs(args.experiment, sweep, params=("model.",) if args.json else (),
                       metrics={*METRICS, *(o.name for o in objectives)})
    logged = {k for r in rows for k in r if k.startswith("metric.")}  # the frame's columns
    runs = [r for r in rows if r["parent_run_id"] is not None]  # not the sweeps' parent runs
    missing = [o.name for o in objectives if runs and f"metric.{o.name}" not in logged]
    if args.objectives and missing:  # e.g. a metric added after these trials ran
        raise ValueError(f"--objectives: no trial of MLflow experiment "
                         f"{sweep.mlflow_experiment!r} has recorded {missing[0]}")
    records = sweep_records(runs, objectives)
    front = front_table(records, objectives)
    if args.json:
        config_cols = sorted({k for r in rows for k in r if k.startswith("param.model.")})
        by_id = {r["run_id"]: r for r in runs}
        out = [dict(r, config={c[len("param.model."):]: by_id[r["run_id"]].get(c, math.nan)
                               for c in config_cols}) for r in front]
        print(json.dumps(out, default=str))
        return 0
    names = [o.name for o in objectives]
    extra = [k for k in ("gflops", "params", "throughput") if k not in names]
    print(f"{len(front)} of {len(records)} trials on the front of "
          + ", ".join(f"{o.name} {o.sense}" for o in objectives))
    print(cost_summary([r for r in records if r["status"] == "finished"]))
    print(_table(_front_rows(front, list(objectives)), ["rank", "point", "seed", *names,
                                                         *extra]))
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import check_objectives, load_experiment
    from mvit_lab.search.design_analysis import (
        analyse_design_spaces,
        format_design_table,
        verdicts,
    )
    from mvit_lab.search.records import sweep_records
    from mvit_lab.search.sweep import parse_sweep

    exp = load_experiment(args.experiment, args.set)
    sweep = parse_sweep(exp)
    if sweep.space.mode != "design_spaces":
        raise ValueError(f"{args.experiment}: its search space is a {sweep.space.mode}, not "
                         "design_spaces (see search_spaces/design_spaces_ladder.yaml)")
    objective = check_objectives([args.metric], "--metric", [args.metric])[0] \
        if args.metric else sweep.objectives[0]
    runs = _sweep_runs(args.experiment, sweep)
    if "parent_run_id" in runs:
        runs = runs[runs["parent_run_id"].notna()]
    analysis = analyse_design_spaces(
        sweep_records(runs, (objective,)), metric=objective.name, sense=objective.sense,
        reference=args.reference, bins=args.bins, bootstraps=args.bootstraps,
        order=list(sweep.space.spaces))
    table = format_design_table(analysis)
    print(table)
    for line in verdicts(analysis):
        print(line)
    from pathlib import Path

    from mvit_lab.plots.design_spaces import plot_design_spaces

    out = Path(args.out or f"runs/analyse/{exp.name}")
    out.mkdir(parents=True, exist_ok=True)
    figs = plot_design_spaces(analysis)
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0)  # plotly.js inlined once
             for i, fig in enumerate(figs.values())]
    (out / "design_spaces.html").write_text(
        "<html><head><meta charset='utf-8'><title>design spaces: " + exp.name
        + "</title></head><body>" + "".join(parts) + "</body></html>")
    (out / "design_spaces.md").write_text(table + "\n\n" + "\n".join(verdicts(analysis))
                                          + "\n")
    print(f"wrote {out / 'design_spaces.html'} ({len(figs)} figures, self-contained) and "
          f"{out / 'design_spaces.md'}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import load_experiment
    from mvit_lab.measure.speed import DTYPES, Protocol
    from mvit_lab.search.remeasure import remeasure
    from mvit_lab.search.sweep import parse_sweep

    exp = load_experiment(args.experiment, args.set)
    sweep = parse_sweep(exp)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype: must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if args.batch is not None and args.batch < 1:
        raise ValueError(f"--batch: must be >= 1, got {args.batch}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    protocol = Protocol(**{**sweep.measure.get("protocol", {}),
                           **({"max_s": args.max_seconds} if args.max_seconds else {})})
    runs = _sweep_runs(args.experiment, sweep)
    if "parent_run_id" in runs:
        runs = runs[runs["parent_run_id"].notna()]
    cache = sweep.measure.get("cache") or f"runs/sweeps/{exp.name}/cost_cache"
    unit = "images" if exp.model.is_image else "clips"

    def show(i: int, n: int, row: dict) -> None:
        speeds = ", ".join(f"{k} {row[k]:.4g}" for k in ("throughput", "train_throughput")
                           if k in row)
        took = "cached" if row["cached"] else f"{row['seconds']:.1f} s"
        print(f"[{i}/{n}] {row['point']}: {speeds} {unit}/s ({row['trials']} trial(s), "
              f"{took})", flush=True)

    rows = remeasure(runs, sweep.tracking_uri, sweep.mlflow_experiment, device=args.device,
                     dtype=dtype, batch_size=args.batch or sweep.measure.get("batch", 32),
                     modes=modes, protocol=protocol, cache_dir=cache, refresh=args.refresh,
                     progress=show)
    print(f"measured {len(rows)} architectures on {rows[0]['device']} ({dtype}, "
          f"{rows[0]['protocol']}); figures written to {sum(r['trials'] for r in rows)} trial "
          f"runs of MLflow experiment {sweep.mlflow_experiment!r}")
    return 0


def _sweep_runs(path: str, sweep: Any, **narrow: Any) -> Any:
    """The MLflow runs of ``sweep``; a sweep that never ran is a one-line error. With
    ``params`` / ``metrics`` (see :func:`mvit_lab.tracking.run_rows`): those alone, as rows
    rather than a frame."""
    from mvit_lab.tracking import experiment_exists, run_rows, runs_dataframe

    if not experiment_exists(sweep.tracking_uri, sweep.mlflow_experiment):
        raise ValueError(f"{path}: no sweep has logged to MLflow experiment "
                         f"{sweep.mlflow_experiment!r} at {sweep.tracking_uri} yet (run "
                         f"mvit-lab sweep {path})")
    if narrow:
        return run_rows(sweep.tracking_uri, sweep.mlflow_experiment, **narrow)
    return runs_dataframe(sweep.tracking_uri, sweep.mlflow_experiment)


def cmd_ladders(args: argparse.Namespace) -> int:
    from mvit_lab.experiment import load_experiment
    from mvit_lab.search.records import sweep_records
    from mvit_lab.search.sweep import parse_sweep
    from mvit_lab.search.tables import compare_ladders, format_compare, ladder_table

    ladders, metric = [], None
    for path in args.experiments:
        exp = load_experiment(path, args.set)
        sweep = parse_sweep(exp)
        if sweep.space.mode != "ladder":
            raise ValueError(f"{path}: search space is a {sweep.space.mode}, not a ladder")
        metric = metric or sweep.objectives[0].name
        runs = _sweep_runs(path, sweep)
        if "parent_run_id" in runs:
            runs = runs[runs["parent_run_id"].notna()]
        rows = ladder_table(sweep_records(runs, sweep.objectives), metric)
        if not rows:
            raise ValueError(f"{path}: no finished trials in MLflow experiment "
                             f"{sweep.mlflow_experiment!r} at {sweep.tracking_uri}")
        ladders.append((exp.name, rows))
    rows = compare_ladders(ladders)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(format_compare(rows, [label for label, _ in ladders], metric or "val_top1"))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from mvit_lab.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    if args.export:
        from mvit_lab.dashboards import export_report

        out = export_report(args.export, uri, args.experiment)
        print(f"wrote {out['path']} ({out['bytes'] / 1e6:.1f} MB, self-contained): "
              f"{', '.join(out['experiments'])}")
        return 0
    import logging
    import os

    from mvit_lab.dashboards import create_app

    # an unreachable tracking server answers at once rather than after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    app = create_app(uri, args.experiment, refresh_s=args.refresh, warm=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    print(f"dashboard of {uri}: open http://{args.host}:{args.port} (Ctrl-C to stop)",
          flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mvit-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the presets with their parameter counts")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(func=cmd_presets)
    p = sub.add_parser("build",
                       help="validate an architecture, show its stages, run a forward pass")
    p.add_argument("arch", help="a preset name or an architecture YAML file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a knob, e.g. --set pool_mode=max (repeatable)")
    p.add_argument("--batch", type=positive_int, default=1,
                   help="batch size of the test forward pass")
    p.add_argument("--save", metavar="PATH", help="write the resolved config as JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("profile", help="params, GFLOPs by stage, throughput, latency, memory, MFU")
    p.add_argument("arch", help="a preset name or an architecture YAML file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a knob")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="float32, or bfloat16 / float16 autocast on CUDA")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default: 1)")
    p.add_argument("--mode", default="infer", choices=["infer", "train"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--target-spread", type=float, default=0.03, metavar="F",
                   help="time blocks until 5 agree within F (default: 0.03)")
    p.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                   help="stop timing after S seconds even if they do not (default: 30)")
    p.add_argument("--reference", default="auto", choices=["auto", "on", "off"],
                   help="time the ref-v1 model in alternate blocks and give the speed at the "
                        "node's calibrated reference speed, as sweeps do (auto: on the CPU)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak TFLOP/s for MFU (default: datasheet or measured)")
    p.add_argument("--mask-ratio", type=float, default=None, metavar="R",
                   help="also count the MAE encoder run sparsely at mask ratio R")
    p.add_argument("--flops-only", action="store_true",
                   help="params and GFLOPs only (counted on the meta device in about a second); "
                        "no weights built, no timing run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)
    p = sub.add_parser("train", help="train one architecture from an experiment file")
    p.add_argument("experiment", help="an experiment YAML file (data, model, train)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a key, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--out", help="run folder (default: runs/<experiment name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--json", action="store_true",
                   help="print the final metrics as one JSON object on the last line")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved experiment (recipe values filled in) as YAML; "
                        "no training")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("sweep", help="run an experiment's search space as Ray Tune trials")
    p.add_argument("experiment", help="an experiment YAML file with a search section")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a key, e.g. --set budget.samples=4 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted sweep: finished trials are not run again")
    p.add_argument("--retry-failed", action="store_true",
                   help="resume, and run the failed trials again from their last checkpoint")
    p.add_argument("--address", help="an existing Ray cluster (ray://host:10001 or host:6379; "
                   "default: RAY_ADDRESS, else a local Ray of its own)")
    p.add_argument("--verbose", action="store_true", help="show MLflow's, Ray's and Optuna's "
                   "output too (default: only in the sweep folder's sweep.log)")
    p.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS",
                   help="how often to print the sweep's status line (default: 60)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved experiment (recipe values filled in) as YAML; "
                        "no sweep")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("measure", help="re-measure a sweep's architectures one at a time on "
                       "one device and write the costs back to its trials")
    p.add_argument("experiment", help="the sweep's experiment YAML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--dtype", default=None,
                   help="float32 (CPU default), bfloat16 (CUDA default) or float16")
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default: the sweep's measure.batch, else 32)")
    p.add_argument("--modes", default="infer,train",
                   help="infer, train or both, comma-separated (default: infer,train)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="cap each timing at S seconds (default: the sweep's protocol)")
    p.add_argument("--refresh", action="store_true",
                   help="measure again even what the cost cache has")
    p.set_defaults(func=cmd_measure)
    p = sub.add_parser("ladders", help="print ladder sweeps side by side (e.g. scratch vs MAE)")
    p.add_argument("experiments", nargs="+", help="ladder sweeps' experiment YAML files; the "
                   "differences are from the first")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_ladders)
    p = sub.add_parser("pareto", help="print a sweep's Pareto front from MLflow")
    p.add_argument("experiment", help="the sweep's experiment YAML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--objectives", nargs="+", metavar="NAME:max|min",
                   help="other objectives than the experiment's, e.g. val_top1:max gflops:min")
    p.add_argument("--json", action="store_true", help="one JSON list of the front's trials")
    p.set_defaults(func=cmd_pareto)
    p = sub.add_parser("analyse", help="compare a design_spaces sweep's populations: error "
                       "EDFs, normalised EDFs, KS with bootstrap intervals, good ranges")
    p.add_argument("experiment", help="the design_spaces sweep's experiment YAML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--metric", metavar="NAME:max|min",
                   help="the metric whose error is compared (default: the first objective)")
    p.add_argument("--reference", metavar="SPACE", help="normalise to this space's GFLOPs "
                   "distribution (default: all spaces pooled)")
    p.add_argument("--bins", type=int, default=None,
                   help="log-GFLOPs bins for the normalisation (default: sqrt of the smallest n)")
    p.add_argument("--bootstraps", type=int, default=2000,
                   help="resamples for the KS and area intervals (default: 2000)")
    p.add_argument("--out", metavar="DIR",
                   help="where the figures go (default: runs/analyse/<name>)")
    p.set_defaults(func=cmd_analyse)
    p = sub.add_parser("dashboard", help="browse sweeps live: Pareto fronts, runs, tables "
                       "(a Dash app reading MLflow); --export writes a static HTML report")
    p.add_argument("--tracking-uri", help="the MLflow store (default: ./mlruns.db)")
    p.add_argument("--experiment", help="the MLflow experiment to open (default: the newest)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8050, help="port (default: 8050)")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="how often the page re-reads the store (default: 5)")
    p.add_argument("--export", metavar="PATH",
                   help="write one self-contained HTML file (figures and tables) and exit")
    p.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"mvit-lab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
