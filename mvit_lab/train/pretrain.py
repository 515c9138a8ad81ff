"""Sparse MAE pretraining, the first phase of an experiment with a ``pretrain`` section.

The loop mirrors ``train``'s (AdamW, warm-up + cosine, lr per reference batch, gradient
accumulation, clipping, AMP on CUDA, a checkpoint per epoch, deterministic resume) on the
training split's inputs under MAE's own augmentation (crop and flip), labels unused. Each
epoch reports ``pretrain_loss`` (training) and ``pretrain_val_loss``: the validation split
under the same fixed masks every epoch, so epochs compare. The result is the encoder's
weights, written to ``encoder.pt``, which ``train`` loads into the standard model before
fine-tuning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mvit_lab.data import Augment, Datasets, Repeated
from mvit_lab.experiment import Experiment
from mvit_lab.masking import random_keep
from mvit_lab.measure.isolation import guard
from mvit_lab.models.mae import DecoderConfig, MaskedAutoencoder
from mvit_lab.train._shared import (
    EpochCallback,
    amp_setup,
    atomic_save,
    make_loader,
    progress,
    restore_rng,
    rng_state,
    set_epoch,
    world,
)
from mvit_lab.train.batch import BatchPrep
from mvit_lab.train.efficiency import optimizer_options
from mvit_lab.train.optim import Stepper, accumulation_steps, build_optimizer, lr_at, set_lr

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


@torch.no_grad()
def _val_loss(mae: MaskedAutoencoder, loader: Any, prep: BatchPrep, device: torch.device,
              ratio: float, seed: int, autocast: Any) -> float:
    mae.eval()
    gen = torch.Generator().manual_seed(seed)  # the same masks every epoch
    total, n = 0.0, 0
    for x, _ in guard(loader):  # each batch a step under the device lock (sweeps)
        x = prep.inputs(x.flatten(0, 1) if x.ndim == 6 else x)  # views: [B, V, C, T, H, W]
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
    if t.activation_checkpointing:  # the encoder's blocks (train.compile is for fine-tuning:
        mae.encoder.set_grad_checkpointing(True)  # the mask bookkeeping breaks the graph)
    weight_decay = p.weight_decay if p.weight_decay is not None else t.weight_decay
    optimizer = build_optimizer(mae, p, weight_decay=weight_decay,
                                **optimizer_options(device, t.fused_adamw))
    data_gen = torch.Generator().manual_seed(t.seed + 1)
    mask_gen = torch.Generator().manual_seed(t.seed + 2)
    batch = p.batch_size or t.batch_size
    devices, _ = world()
    accum = accumulation_steps("pretrain", batch, p.global_batch, devices)
    base_lr = p.lr if p.lr is not None else t.lr
    lr_batch = p.lr_batch if p.lr is not None else t.lr_batch
    scale = batch * accum * devices / lr_batch if lr_batch else 1.0
    train_ds = data.train_with(Augment.of(p))
    if p.repeated_aug > 1:
        train_ds = Repeated(train_ds, p.repeated_aug)
    train_loader = make_loader(train_ds, batch, train=True, workers=exp.data.num_workers,
                               device=device, gen=data_gen, seed=t.seed + 1,
                               pin_memory=t.pin_memory)
    val_loader = make_loader(data.val, t.eval_batch_size or 2 * batch, train=False,
                             workers=exp.data.num_workers, device=device,
                             pin_memory=t.pin_memory)
    prep = BatchPrep(data.mean, data.std, device, repeated=p.repeated_aug)
    steps_per_epoch = len(train_loader)
    total = p.epochs * steps_per_epoch
    warmup = round((p.warmup_epochs if p.warmup_epochs is not None else t.warmup_epochs)
                   * steps_per_epoch)
    clip_grad = p.clip_grad if p.clip_grad is not None else t.clip_grad
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
            restore_rng(state)
            history = json.loads(state["history"])
            start = int(state["epoch"]) + 1
            log.info("resumed pretraining in %s at epoch %d", out, start)
    for epoch in range(start, p.epochs):
        epoch_start = time.perf_counter()
        set_epoch(train_loader, epoch)
        mae.train()
        stepper = Stepper(mae, optimizer, scaler, clip_grad, accum)
        loss_sum, seen = 0.0, 0
        lr = base_lr * scale
        batches = progress(train_loader, f"pretrain {epoch + 1}/{p.epochs}", steps_per_epoch)
        for i, (x, y) in enumerate(batches):
            lr = lr_at(epoch * steps_per_epoch + i, total, warmup, base_lr * scale,
                       p.min_lr * scale)
            set_lr(optimizer, lr)
            x, _ = prep.train(x, y)
            keep = random_keep(x.shape[0], mae.num_units, ratio, mask_gen).to(device)
            with autocast():
                loss = mae(x, keep=keep).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretrain loss is {loss.item()} at epoch "
                                         f"{epoch + 1}, step {i}")
            stepper.backward(loss, last=i == steps_per_epoch - 1)
            loss_sum += loss.item() * x.shape[0]
            seen += x.shape[0]
        metrics: dict[str, Any] = dict(
            epoch=epoch + 1, pretrain_loss=loss_sum / seen,
            pretrain_val_loss=_val_loss(mae, val_loader, prep, device, ratio, t.seed + 3,
                                        autocast),
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
                 mask_rng=mask_gen.get_state(), epoch=epoch, history=json.dumps(history),
                 **rng_state())
    atomic_save(state, out / CHECKPOINT)

