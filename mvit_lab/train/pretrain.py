"""Sparse MAE pretraining, the first phase of an experiment with a ``pretrain`` section.

The loop mirrors ``train``'s (AdamW, warm-up + cosine, clipping, AMP on CUDA, a checkpoint per
epoch, deterministic resume) on the training split's inputs, labels unused. Each epoch reports
``pretrain_loss`` (training) and ``pretrain_val_loss``: the validation split under the same
fixed masks every epoch, so epochs compare. The result is the encoder's weights, written to
``encoder.pt``, which ``train`` loads into the standard model before fine-tuning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvit_lab.data import Datasets
from mvit_lab.experiment import Experiment
from mvit_lab.masking import random_keep
from mvit_lab.measure.isolation import guard
from mvit_lab.models.mae import DecoderConfig, MaskedAutoencoder
from mvit_lab.train.loop import (
    EpochCallback,
    _loader,
    _param_groups,
    _progress,
    amp_setup,
    atomic_save,
    lr_at,
    optimizer_step,
)

__all__ = ["ENCODER", "pretrain"]

log = logging.getLogger(__name__)

CHECKPOINT = "pretrain_checkpoint.pt"
ENCODER = "encoder.pt"
METRICS = "pretrain_metrics.json"


def build_mae(exp: Experiment) -> MaskedAutoencoder:
    """The experiment's model wrapped for MAE as its ``pretrain`` section says."""
    p = exp.pretrain
    if p is None:
        raise ValueError("pretrain: the experiment has no pretrain section")
    decoder = DecoderConfig(dim=p.decoder_dim, depth=p.decoder_depth, heads=p.decoder_heads,
                            norm_pix_loss=p.norm_pix_loss)
    return MaskedAutoencoder(p.encoder_config(exp.model), decoder)


def _inputs(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1) if x.ndim == 6 else x  # evaluation clips: [B, clips, C, T, H, W]


@torch.no_grad()
def _val_loss(mae: MaskedAutoencoder, loader: Any, device: torch.device, ratio: float,
              seed: int, autocast: Any) -> float:
    mae.eval()
    gen = torch.Generator().manual_seed(seed)  # the same masks every epoch
    total, n = 0.0, 0
    for x, _ in guard(loader):  # each batch a step under the device lock (sweeps)
        x = _inputs(x).to(device)
        keep = random_keep(x.shape[0], mae.num_units, ratio, gen).to(device)
        with autocast():
            loss = mae(x, keep=keep).loss
        total += loss.item() * x.shape[0]
        n += x.shape[0]
    return total / n


def pretrain(exp: Experiment, data: Datasets, device: torch.device,
             out: Path | None = None, *, resume: bool = False,
             callback: EpochCallback | None = None) -> tuple[dict[str, torch.Tensor],
                                                             list[dict[str, Any]]]:
    """Pretrain ``exp.model``'s encoder; returns its weights and the per-epoch metrics.

    With ``out`` and ``resume``, a finished pretraining (``encoder.pt``) is reused and an
    interrupted one continues from its checkpoint.
    """
    p, t = exp.pretrain, exp.train
    if p is None:
        raise ValueError("pretrain: the experiment has no pretrain section")
    if out is not None and resume and (out / ENCODER).is_file():
        state = torch.load(out / ENCODER, map_location="cpu", weights_only=True)
        history = json.loads((out / METRICS).read_text()) if (out / METRICS).is_file() else []
        log.info("pretraining already finished in %s", out)
        return state, history
    ratio = p.ratio_for(exp.data.is_video)
    torch.manual_seed(t.seed)
    mae = build_mae(exp).to(device)
    weight_decay = p.weight_decay if p.weight_decay is not None else t.weight_decay
    base_lr = p.lr if p.lr is not None else t.lr
    optimizer = torch.optim.AdamW(_param_groups(mae, weight_decay), lr=base_lr)
    data_gen = torch.Generator().manual_seed(t.seed + 1)
    mask_gen = torch.Generator().manual_seed(t.seed + 2)
    batch = p.batch_size or t.batch_size
    train_loader = _loader(data.train, batch, True, exp.data.num_workers, data_gen)
    val_loader = _loader(data.val, t.eval_batch_size or 2 * batch, False,
                         exp.data.num_workers, None)
    steps_per_epoch = len(train_loader)
    total = p.epochs * steps_per_epoch
    warmup = round((p.warmup_epochs if p.warmup_epochs is not None else t.warmup_epochs)
                   * steps_per_epoch)
    _, autocast, scaler = amp_setup(device, t.amp)
    history: list[dict[str, Any]] = []
    start = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / CHECKPOINT).is_file():
            state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
            mae.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            data_gen.set_state(state["data_rng"])
            mask_gen.set_state(state["mask_rng"])
            torch.set_rng_state(state["torch_rng"])
            history = json.loads(state["history"])
            start = int(state["epoch"]) + 1
            log.info("resumed pretraining in %s at epoch %d", out, start)
    for epoch in range(start, p.epochs):
        epoch_start = time.perf_counter()
        mae.train()
        loss_sum, seen = 0.0, 0
        lr = base_lr
        batches = _progress(train_loader, f"pretrain {epoch + 1}/{p.epochs}", steps_per_epoch)
        for i, (x, _) in enumerate(batches):
            lr = lr_at(epoch * steps_per_epoch + i, total, warmup, base_lr, p.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = x.to(device, non_blocking=True)
            keep = random_keep(x.shape[0], mae.num_units, ratio, mask_gen).to(device)
            with autocast():
                loss = mae(x, keep=keep).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretrain loss is {loss.item()} at epoch "
                                         f"{epoch + 1}, step {i}")
            optimizer_step(loss, mae, optimizer, scaler, t.clip_grad)
            loss_sum += loss.item() * x.shape[0]
            seen += x.shape[0]
        metrics: dict[str, Any] = dict(
            epoch=epoch + 1, pretrain_loss=loss_sum / seen,
            pretrain_val_loss=_val_loss(mae, val_loader, device, ratio, t.seed + 3, autocast),
            pretrain_lr=lr, pretrain_epoch_seconds=time.perf_counter() - epoch_start)
        history.append(metrics)
        if out is not None:
            _save(out, mae, optimizer, scaler, data_gen, mask_gen, epoch, history)
        if callback is not None:
            callback(dict(metrics))
    encoder = mae.encoder_state_dict()
    if out is not None:
        atomic_save(encoder, out / ENCODER)
        (out / METRICS).write_text(json.dumps(history, indent=2) + "\n")
    return encoder, history


def _save(out: Path, mae: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
          data_gen: torch.Generator, mask_gen: torch.Generator, epoch: int,
          history: list[dict[str, Any]]) -> None:
    state = dict(model=mae.state_dict(), optimizer=optimizer.state_dict(),
                 scaler=scaler.state_dict(), data_rng=data_gen.get_state(),
                 mask_rng=mask_gen.get_state(), torch_rng=torch.get_rng_state(), epoch=epoch,
                 history=json.dumps(history))
    atomic_save(state, out / CHECKPOINT)

