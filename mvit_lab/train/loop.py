"""The training and evaluation loop: AdamW, warm-up + cosine, label smoothing, clipping, AMP,
per-epoch evaluation (top-1, top-5, shuffled-frames top-1 for video), checkpoints and resume.

Deterministic on the CPU: the seed fixes initialisation, data order, clip positions and drop
path, and a resumed run continues the same random streams (the checkpoint holds them), so an
interrupted run ends with the metrics of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mvit_lab.build import build_model, count_params
from mvit_lab.data import Datasets, build_datasets
from mvit_lab.data.datasets import time_permutation
from mvit_lab.experiment import Experiment
from mvit_lab.measure.isolation import guard

__all__ = ["TrainResult", "evaluate", "train"]

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any]], None]
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    history: list[dict[str, Any]]  # one row of metrics per epoch
    final: dict[str, Any]  # the last epoch's metrics, with run facts
    data_reports: list[dict[str, Any]] = field(default_factory=list)
    out_dir: str | None = None
    pretrain_history: list[dict[str, Any]] = field(default_factory=list)  # MAE epochs


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name} requested but no CUDA device is available")
    return torch.device(name)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norms, biases, position tables and the cls token."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim <= 1 or "pos_embed" in name or "rel_pos" in name or name in (
                "cls_token", "mask_token"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [dict(params=decay, weight_decay=weight_decay),
            dict(params=no_decay, weight_decay=0.0)]


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr``, then a cosine to ``min_lr`` at ``total`` steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def amp_setup(device: torch.device, amp: str) -> tuple[bool, Callable[[], Any], Any]:
    """(enabled, autocast context factory, grad scaler): autocast on CUDA only, a scaler only
    for float16."""
    use_amp = device.type == "cuda" and amp != "none"
    dtype = getattr(torch, amp) if use_amp else None
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if use_amp else nullcontext
    return use_amp, autocast, torch.amp.GradScaler("cuda", enabled=use_amp and amp == "float16")


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: Any, clip_grad: float | None) -> None:
    """Backward through the (float16) grad scaler, clip the gradient norm, step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()


def _worker_init(worker_id: int) -> None:
    # decoding workers: one thread each, so they and the training process share the cores
    torch.set_num_threads(1)


def _loader(ds: Dataset, batch: int, shuffle: bool, workers: int,
            gen: torch.Generator | None) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, num_workers=workers,
                      generator=gen, drop_last=False, persistent_workers=workers > 0,
                      worker_init_fn=_worker_init if workers else None, pin_memory=False)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 6:  # [B, clips, C, T, H, W]: average the clips in logit space
        b, k = x.shape[:2]
        return model(x.flatten(0, 1)).float().reshape(b, k, -1).mean(1)
    return model(x).float()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             autocast: Any = None, shuffle_seed: int | None = None) -> dict[str, float]:
    """Loss, top-1 and top-5 (percent); several clips per video are averaged in logit space.

    With ``shuffle_seed``, also ``top1_shuffled``: the same clips with their frames in
    ``ShuffledFrames``' order, from the same decoded batch (each clip is decoded once).
    """
    model.eval()
    total, loss_sum, top1, top5, top1_shuffled = 0, 0.0, 0, 0, 0
    for x, y in guard(loader):  # each batch a step under the device lock (sweeps)
        x, y = x.to(device), y.to(device)
        with autocast or nullcontext():
            logits = _logits(model, x)
            if shuffle_seed is not None:
                perms = [time_permutation(x.shape[-3], shuffle_seed, total + i).to(device)
                         for i in range(len(y))]
                shuffled = torch.stack([c.index_select(-3, p) for c, p in zip(x, perms)])
                top1_shuffled += (_logits(model, shuffled).argmax(-1) == y).sum().item()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        ranked = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        top1 += (ranked[:, 0] == y).sum().item()
        top5 += (ranked == y[:, None]).any(-1).sum().item()
        total += len(y)
    out = dict(loss=loss_sum / total, top1=100.0 * top1 / total, top5=100.0 * top5 / total)
    if shuffle_seed is not None:
        out["top1_shuffled"] = 100.0 * top1_shuffled / total
    return out


def _progress(iterable: Any, desc: str, total: int) -> Any:
    """The batches of an epoch, each one a step under the device lock (in sweeps: a cost
    measurement waits for the step, and the next step waits for the measurement)."""
    iterable = guard(iterable)
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def train(exp: Experiment, out_dir: str | Path | None = None, *, resume: bool = False,
          callback: EpochCallback | None = None, datasets: Datasets | None = None,
          pretrain_callback: EpochCallback | None = None) -> TrainResult:
    """Train ``exp.model`` on ``exp.data`` with ``exp.train``; see the module docstring.

    ``callback(metrics)`` runs after every epoch (sweeps report through it; raising stops the
    run after that epoch's checkpoint). ``out_dir`` receives the checkpoint, the resolved
    experiment, the data reports and the metrics; ``resume=True`` continues from its checkpoint.
    With a ``pretrain`` section, sparse MAE pretraining runs first (``pretrain_callback`` gets
    its epochs) and fine-tuning starts from the pretrained encoder.
    """
    cfg = exp.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    out = Path(out_dir) if out_dir is not None else None
    torch.manual_seed(cfg.seed)
    data = datasets or build_datasets(exp.data, exp.model, cfg.seed)
    model_cfg = exp.model
    if data.num_classes != model_cfg.num_classes:  # the head follows the data's label set
        model_cfg = model_cfg.replace(num_classes=data.num_classes)
        exp = dataclasses.replace(exp, model=model_cfg)
        log.info("model.num_classes set to the dataset's %d classes", data.num_classes)
    if out is not None and resume:  # the recipe it started with, before anything resumes
        from mvit_lab.train._resume import check_resume_recipe

        check_resume_recipe(out, exp)
    if out is not None:  # recorded before pretraining too, so its resume is checked as well
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps(exp.to_dict(), indent=2) + "\n")
    encoder, pretrain_history = None, []
    if exp.pretrain is not None:
        from mvit_lab.train.pretrain import pretrain

        pretrain_start = time.perf_counter()
        encoder, pretrain_history = pretrain(exp, data, device, out, resume=resume,
                                             callback=pretrain_callback)
        pretrain_seconds = time.perf_counter() - pretrain_start
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).to(device)
    if encoder is not None:
        from mvit_lab.models.mae import load_encoder

        load_encoder(model, encoder)  # all but the head and its norm
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    workers = exp.data.num_workers
    train_loader = _loader(data.train, cfg.batch_size, True, workers, gen)
    eval_batch = cfg.eval_batch_size or 2 * cfg.batch_size
    val_loader = _loader(data.val, eval_batch, False, workers, None)
    steps_per_epoch = len(train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    use_amp, autocast, scaler = amp_setup(device, cfg.amp)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps(exp.to_dict(), indent=2) + "\n")
        (out / "data_report.json").write_text(json.dumps([r.to_dict() for r in data.reports],
                                                         indent=2) + "\n")
        if resume and (out / CHECKPOINT).is_file():
            state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            gen.set_state(state["data_rng"])
            torch.set_rng_state(state["torch_rng"])
            history = json.loads(state["history"])
            start_epoch = int(state["epoch"]) + 1
            log.info("resumed %s at epoch %d", out, start_epoch)
    params = count_params(model_cfg)
    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum, seen = 0.0, 0
        batches = _progress(train_loader, f"epoch {epoch + 1}/{cfg.epochs}", steps_per_epoch)
        for i, (x, y) in enumerate(batches):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total_steps, warmup_steps, cfg.lr, cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, step {i}")
            optimizer_step(loss, model, optimizer, scaler, cfg.clip_grad)
            loss_sum += loss.item() * len(y)
            seen += len(y)
        metrics: dict[str, Any] = dict(epoch=epoch + 1, train_loss=loss_sum / seen, lr=lr)
        val = evaluate(model, val_loader, device, autocast() if use_amp else None,
                       shuffle_seed=data.val_shuffled.seed if data.val_shuffled else None)
        metrics.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
        if "top1_shuffled" in val:
            metrics["val_top1_shuffled"] = val["top1_shuffled"]
        metrics["epoch_seconds"] = time.perf_counter() - epoch_start
        history.append(metrics)
        if out is not None:
            _save_checkpoint(out, model, optimizer, scaler, gen, epoch, history)
            (out / "metrics.json").write_text(json.dumps(history, indent=2) + "\n")
        if callback is not None:
            callback(dict(metrics))
    final = dict(history[-1]) if history else {}
    final.update(params=params, train_seconds=time.perf_counter() - started,
                 epochs=cfg.epochs, device=str(device), num_classes=data.num_classes)
    if pretrain_history:
        last = pretrain_history[-1]
        final.update(pretrain_loss=last["pretrain_loss"],
                     pretrain_val_loss=last["pretrain_val_loss"],
                     pretrain_epochs=len(pretrain_history), pretrain_seconds=pretrain_seconds)
    return TrainResult(history=history, final=final,
                       data_reports=[r.to_dict() for r in data.reports],
                       out_dir=str(out) if out is not None else None,
                       pretrain_history=pretrain_history)


def _save_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scaler: Any, gen: torch.Generator, epoch: int,
                     history: list[dict[str, Any]]) -> None:
    state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                 scaler=scaler.state_dict(), data_rng=gen.get_state(),
                 torch_rng=torch.get_rng_state(), epoch=epoch, history=json.dumps(history))
    atomic_save(state, out / CHECKPOINT)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill mid-write leaves the previous
    file."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
