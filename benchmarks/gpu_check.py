"""The prepared GPU check (run through ``benchmarks/gpu_check.sh``): one JSON of what this
project does on one GPU, named by the device.

    python benchmarks/gpu_check.py --out OUT_DIR              # CUDA: about 6 min on an H200
    python benchmarks/gpu_check.py --cpu-dry-run --out DIR    # every step, tiny, on the CPU

Steps, each recorded with its status, seconds and output (a failed or skipped step never
stops the next; the JSON is rewritten after every step):

1. ``device``: name, count, capability, torch / CUDA versions.
2. ``inference``: images/s of ours vs timm at bf16, batch 64, mvitv2_s/b/l and hiera_b/l,
   alternating rounds (``compare_references.py``), and the Hiera ladder's per-step speed
   from MViTv2-L to Hiera-L (the paper: 2.42x on an A100 in fp16).
3. ``mfu``: training-step MFU of hiera_b at bf16, batch 64, eager and compiled (with the
   compile time), and the attention kernel that ran.
4. ``sweep``: a real 2-trial sweep through ``mvit-lab sweep`` with 0.5 GPU per trial (both
   trials share the GPU), digits, one epoch each; the trials' outcomes (device, dtype, kernel).
5. ``ddp``: the same sweep with 2 workers of 1 GPU per trial, when the machine has 2 GPUs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's mvit_lab (the GPU machine has none installed)
INFER_MODELS = "mvitv2_s,mvitv2_b,mvitv2_l,hiera_b,hiera_l"
PAPER_LADDER_SPEEDUP = 2.42  # Hiera paper, Table 1: Hiera-L over MViTv2-L, A100, fp16


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=cwd)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc = 124
        out = ((err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes)
               else (err.stdout or "")) + f"\n[timed out after {timeout:.0f} s]"
    return dict(cmd=" ".join(cmd), rc=rc, seconds=time.perf_counter() - start,
                output_tail=out[-4000:])


def step_device(args: argparse.Namespace) -> dict[str, Any]:
    from mvit_lab.measure._devices import device_name

    dev = torch.device(args.device)
    out = dict(device=args.device, device_name=device_name(dev), torch=torch.__version__,
               cuda=torch.version.cuda, gpus=torch.cuda.device_count() if torch.cuda.is_available()
               else 0, python=sys.version.split()[0])
    if dev.type == "cuda":
        out["capability"] = list(torch.cuda.get_device_capability(dev))
        out["memory_gib"] = torch.cuda.get_device_properties(dev).total_memory / 2**30
    return out


def step_inference(args: argparse.Namespace) -> dict[str, Any]:
    out_base = Path(args.out) / "compare_bf16"
    if args.cpu_dry_run:  # hiera_t only, batch 2; the ladder's steps at 224 are too slow here
        cmd = ["--models", "hiera_t", "--batch", "2", "--rounds", "1", "--iters", "1",
               "--warmup", "1"]
    else:
        cmd = ["--models", INFER_MODELS, "--batch", "64", "--rounds", "3", "--iters", "5",
               "--warmup", "3", "--ladder"]
    run = _run([sys.executable, str(ROOT / "benchmarks" / "compare_references.py"),
                "--device", args.device, "--dtype", "bfloat16", *cmd, "--out", str(out_base)],
               timeout=args.step_timeout, env=_env())
    result: dict[str, Any] = dict(run=run)
    if out_base.with_suffix(".json").is_file():
        record = json.loads(out_base.with_suffix(".json").read_text())
        result["results"] = [{k: r[k] for k in ("preset", "reference", "batch",
                                                "ours_items_per_s", "reference_items_per_s",
                                                "ratio", "ours_spread", "reference_spread",
                                                "ours_mfu", "ours_memory_mb")}
                             for r in record.get("results", [])]
        ladder = record.get("ladder") or []
        result["ladder"] = ladder
        if ladder:
            result["ladder_speedup"] = ladder[-1]["items_per_s"] / ladder[0]["items_per_s"]
            result["paper_ladder_speedup"] = PAPER_LADDER_SPEEDUP
    if run["rc"] != 0:
        raise RuntimeError(f"compare_references.py exited {run['rc']}: "
                           f"{run['output_tail'][-600:]}")
    return result


def step_mfu(args: argparse.Namespace) -> dict[str, Any]:
    from mvit_lab import build_model, get_config
    from mvit_lab.measure import Protocol, measure_throughput

    if args.cpu_dry_run:
        cfg = get_config("hiera_b", input_size=(1, 32, 32), embed_dim=16, depths=(1, 1, 1, 1),
                         num_classes=4, mask_unit_size=(1, 4, 4))
        batch, protocol = 2, Protocol.fixed(2, iters=1, warmup=1)
    else:
        cfg, batch = get_config("hiera_b"), 64
        protocol = Protocol(warmup_s=2.0, max_s=30.0, target_spread=0.03)
    out: dict[str, Any] = dict(preset="hiera_b", input_size=list(cfg.input_size), batch=batch,
                               dtype="bfloat16")
    for compiled in (False, True):
        torch.manual_seed(0)
        start = time.perf_counter()
        r = measure_throughput(build_model(cfg), batch_size=batch, device=args.device,
                               dtype="bfloat16", mode="train", compile=compiled,
                               protocol=protocol, backend=True)
        key = "compiled" if compiled else "eager"
        out[key] = dict(items_per_s=r.items_per_s, mfu=r.mfu, spread=r.spread,
                        achieved_tflops=r.achieved_tflops, peak_tflops=r.peak_tflops,
                        peak_source=r.peak_source, peak_memory_mb=r.peak_memory_mb,
                        attention_kernel=r.sdpa_backend, converged=r.converged,
                        seconds=time.perf_counter() - start)
    # the compile time: the compiled measurement's wall time beyond the eager one's
    out["compile_seconds_approx"] = out["compiled"]["seconds"] - out["eager"]["seconds"]
    out["compiled_speedup"] = out["compiled"]["items_per_s"] / out["eager"]["items_per_s"]
    return out


SWEEP = """\
name: {name}
data: {{dataset: digits}}
model: {{preset: hiera_t, input_size: [1, 32, 32], depths: [1, 1, 2, 1], num_classes: 10,
        mask_unit_size: [1, 4, 4]}}
train: {{epochs: 1, batch_size: 64, lr: 0.002, device: {device}, amp: auto, keep: none}}
search: {{grid: {{embed_dim: [32, 48]}}}}
objectives: {{val_top1: max, gflops: min}}
budget: {{concurrency: 2}}
resources: {resources}
measure: {{batch: 16, protocol: {{max_s: 5}}}}
tracking: {{uri: {store}}}
"""


def _sweep(args: argparse.Namespace, name: str, resources: str) -> dict[str, Any]:
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{name}.yaml"
    device = "cpu" if args.cpu_dry_run else "cuda"
    path.write_text(SWEEP.format(name=name, device=device, resources=resources,
                                 store=work / "mlruns.db"))
    run = _run([sys.executable, "-m", "mvit_lab.cli", "sweep", str(path), "--status-every",
                "30"], timeout=args.step_timeout, env=_env(), cwd=work)
    outcomes = []
    for f in sorted((work / "runs" / "sweeps" / name / "trials").glob("*/outcome.json")):
        o = json.loads(f.read_text())
        res = o.get("result") or {}
        outcomes.append(dict(status=o.get("status"), reason=o.get("reason"),
                             **{k: res.get(k) for k in ("device", "amp_dtype",
                                                        "attention_kernel", "val_top1",
                                                        "train_seconds", "throughput",
                                                        "train_throughput")}))
    disk = [line for line in run["output_tail"].splitlines() if line.startswith("disk:")]
    result = dict(run=run, trials=outcomes, disk_line=disk[0] if disk else None)
    if run["rc"] != 0 or len(outcomes) != 2 or any(o["status"] != "finished"
                                                    for o in outcomes):
        raise RuntimeError(f"sweep exited {run['rc']} with {len(outcomes)} outcome(s): "
                           f"{run['output_tail'][-600:]}")
    return result


def step_sweep(args: argparse.Namespace) -> dict[str, Any]:
    resources = "{cpus: 1, gpus: 0}" if args.cpu_dry_run else "{cpus: 2, gpus: 0.5}"
    return _sweep(args, "gpu_check_sweep", resources)


def step_ddp(args: argparse.Namespace) -> dict[str, Any]:
    if args.cpu_dry_run or torch.cuda.device_count() < 2:
        return dict(skipped=f"{torch.cuda.device_count()} GPU(s): a 2-worker DDP trial needs 2")
    # the multi-worker form of resources (issue 15's Ray Train part)
    return _sweep(args, "gpu_check_ddp", "{workers: 2, gpus_per_worker: 1, cpus_per_worker: 2}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


STEPS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = dict(
    device=step_device, inference=step_inference, mfu=step_mfu, sweep=step_sweep,
    ddp=step_ddp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and logs")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="every step at tiny sizes on the CPU (no GPU needed)")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    parser.add_argument("--step-timeout", type=float, default=240.0, metavar="S")
    args = parser.parse_args(argv)
    args.device = "cpu" if args.cpu_dry_run else "cuda"
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --cpu-dry-run to exercise the steps on the CPU",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        mode="cpu-dry-run" if args.cpu_dry_run else "gpu", steps={})
    unknown = [s for s in args.steps.split(",") if s not in STEPS]
    if unknown:
        parser.error(f"--steps: unknown step {unknown[0]} (known: {', '.join(STEPS)})")
    failed = 0
    for name in args.steps.split(","):
        start = time.perf_counter()
        print(f"gpu_check: {name} ...", flush=True)
        try:
            result = dict(status="ok", **STEPS[name](args))
            if "skipped" in result:
                result["status"] = "skipped"
        except Exception as err:
            failed += 1
            result = dict(status="failed", error=f"{type(err).__name__}: {err}"[:2000],
                          traceback=traceback.format_exc()[-3000:])
        result["seconds"] = time.perf_counter() - start
        record["steps"][name] = result
        if name == "device":
            record["device_name"] = result.get("device_name")
        (out / "gpu_check.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
        print(f"gpu_check: {name} {result['status']} in {result['seconds']:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
