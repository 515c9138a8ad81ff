"""The training and evaluation loop: AdamW with layer-wise lr decay, warm-up + cosine,
gradient accumulation to the recipe's global batch, clipping, AMP, an EMA of the weights,
mixup / cutmix, per-epoch evaluation (top-1, top-5, shuffled-frames top-1 for video),
checkpoints and resume.

Deterministic on the CPU: the seed fixes initialisation, data order, augmentation, clip
positions and drop path, and a resumed run continues the same random streams (the checkpoint
holds them), so an interrupted run ends with the metrics of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mvit_lab.build import build_model, count_params
from mvit_lab.data import Augment, Datasets, Repeated, build_datasets
from mvit_lab.data.datasets import time_permutation
from mvit_lab.experiment import Experiment
from mvit_lab.measure.isolation import guard
from mvit_lab.train._shared import (
    EpochCallback,
    amp_setup,
    get_device,
    make_loader,
    progress,
    restore_rng,
    rng_state,
    seed_everything,
    set_epoch,
    world,
)
from mvit_lab.train.batch import BatchPrep
from mvit_lab.train.checkpoint import Checkpointer
from mvit_lab.train.distributed import (
    agree,
    all_sum,
    check_replicas,
    gather_rng,
    is_main,
    own_rng,
    rank_seed,
    set_grad_sync,
    wrap_model,
)
from mvit_lab.train.efficiency import (
    amp_dtype,
    attention_kernel,
    optimizer_options,
    prepare_model,
    set_backends,
)
from mvit_lab.train.optim import Stepper, accumulation_steps, build_optimizer, lr_at, set_lr
from mvit_lab.train.retention import BEST, is_best, retain, save_weights

__all__ = ["TrainResult", "evaluate", "lr_at", "train"]

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    history: list[dict[str, Any]]  # one row of metrics per epoch
    final: dict[str, Any]  # the last epoch's metrics, with run facts
    data_reports: list[dict[str, Any]] = field(default_factory=list)
    out_dir: str | None = None
    pretrain_history: list[dict[str, Any]] = field(default_factory=list)  # MAE epochs


def scaled_lrs(cfg: Any, accum: int, devices: int) -> tuple[float, float, float]:
    """(lr, min_lr, warm-up start lr) for the real global batch: the recipe states them per
    ``lr_batch`` samples."""
    scale = cfg.batch_size * accum * devices / cfg.lr_batch if cfg.lr_batch else 1.0
    return cfg.lr * scale, cfg.min_lr * scale, cfg.warmup_start_lr * scale


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 6:  # [B, clips, C, T, H, W]: average the clips in logit space
        b, k = x.shape[:2]
        return model(x.flatten(0, 1)).float().reshape(b, k, -1).mean(1)
    return model(x).float()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             autocast: Any = None, shuffle_seed: int | None = None,
             prep: BatchPrep | None = None) -> dict[str, float]:
    """Loss, top-1 and top-5 (percent); a video's views (temporal clips x spatial crops) are
    averaged in logit space.

    With ``shuffle_seed``, also ``top1_shuffled``: the same clips with their frames in
    ``ShuffledFrames``' order, from the same decoded batch (each clip is decoded once).
    ``prep`` normalises the uint8 batch (default: with the dataset's mean and std).
    """
    model.eval()
    if prep is None:
        ds = loader.dataset
        prep = BatchPrep(ds.mean, ds.std, device)  # type: ignore[attr-defined]
    total, loss_sum, top1, top5, top1_shuffled = 0, 0.0, 0, 0, 0
    first = getattr(loader.sampler, "start", 0)  # a rank's shard: global sample indices
    for x, y in guard(loader):  # each batch a step under the device lock (sweeps)
        x, y = prep.inputs(x), y.to(device)
        with autocast or nullcontext():
            logits = _logits(model, x)
            if shuffle_seed is not None:
                perms = [time_permutation(x.shape[-3], shuffle_seed, first + total + i)
                         .to(device)
                         for i in range(len(y))]
                shuffled = torch.stack([c.index_select(-3, p) for c, p in zip(x, perms)])
                top1_shuffled += (_logits(model, shuffled).argmax(-1) == y).sum().item()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        ranked = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
        top1 += (ranked[:, 0] == y).sum().item()
        top5 += (ranked == y[:, None]).any(-1).sum().item()
        total += len(y)
    # the whole validation set's sums when each rank evaluated its shard
    total, loss_sum, top1, top5, top1_shuffled = all_sum(total, loss_sum, top1, top5,
                                                         top1_shuffled)
    out = dict(loss=loss_sum / total, top1=100.0 * top1 / total, top5=100.0 * top5 / total)
    if shuffle_seed is not None:
        out["top1_shuffled"] = 100.0 * top1_shuffled / total
    return out


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
    device = get_device(cfg.device)
    amp_dtype(cfg.amp, device)  # float16 on a CPU: refused before any data is built
    set_backends(device, cfg.tf32)
    out = Path(out_dir) if out_dir is not None else None
    seed_everything(cfg.seed)
    data = datasets or build_datasets(exp.data, exp.model, cfg.seed, Augment.of(cfg))
    model_cfg = exp.model
    if data.num_classes != model_cfg.num_classes:  # the head follows the data's label set
        model_cfg = model_cfg.replace(num_classes=data.num_classes)
        exp = dataclasses.replace(exp, model=model_cfg)
        log.info("model.num_classes set to the dataset's %d classes", data.num_classes)
    if out is not None and resume:  # the recipe it started with, before anything resumes
        from mvit_lab.train._resume import check_resume_recipe

        check_resume_recipe(out, exp)
    if out is not None and is_main():  # recorded before pretraining too (its resume is checked)
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps(exp.to_dict(), indent=2) + "\n")
    devices, _ = world()
    accum = accumulation_steps("train", cfg.batch_size, cfg.global_batch, devices)
    encoder, pretrain_history = None, []
    if exp.pretrain is not None:
        from mvit_lab.train.pretrain import pretrain

        pretrain_start = time.perf_counter()
        encoder, pretrain_history = pretrain(exp, data, device, out, resume=resume,
                                             callback=pretrain_callback)
        pretrain_seconds = time.perf_counter() - pretrain_start
    seed_everything(cfg.seed)
    model = build_model(model_cfg).to(device)
    if encoder is not None:
        from mvit_lab.models.mae import load_encoder

        load_encoder(model, encoder)  # all but the head and its norm
    ddp = wrap_model(model, device)  # the training forward: DDP in a multi-worker trial
    if not is_main():  # ranks > 0: their own drop path and augmentation streams
        seed_everything(rank_seed(cfg.seed))
    optimizer = build_optimizer(model, cfg, layer_decay=cfg.layer_decay,
                                **optimizer_options(device, cfg.fused_adamw))
    # compiled and / or checkpointed per block (checkpointing on the model, compile of the DDP)
    step_model = prepare_model(model, cfg, runner=ddp)
    lr, min_lr, start_lr = scaled_lrs(cfg, accum, devices)
    ema = None
    if cfg.ema_decay is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    gen = torch.Generator().manual_seed(rank_seed(cfg.seed))
    workers = exp.data.num_workers
    train_ds = Repeated(data.train, cfg.repeated_aug) if cfg.repeated_aug > 1 else data.train
    # mixup pairs a batch with its reverse: an odd last batch is dropped
    train_loader = make_loader(train_ds, cfg.batch_size, train=True, workers=workers,
                               device=device, gen=gen, seed=cfg.seed, drop_last=cfg.mixes,
                               pin_memory=cfg.pin_memory)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError(f"train.batch_size: {cfg.batch_size} is more than the "
                         f"{len(data.train)} training samples, and mixup drops a partial batch")
    eval_batch = cfg.eval_batch_size or 2 * cfg.batch_size
    val_loader = make_loader(data.val, eval_batch, train=False, workers=workers,
                             device=device, pin_memory=cfg.pin_memory)
    prep = BatchPrep(data.mean, data.std, device, cfg, data.num_classes, cfg.repeated_aug)
    eval_prep = BatchPrep(data.mean, data.std, device)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    use_amp, autocast, scaler = amp_setup(device, cfg.amp)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    saver = Checkpointer(out, cfg.checkpoint_format, cfg.async_checkpoint)
    if out is not None:  # (experiment.json is written above, before pretraining)
        if is_main():
            _write_reports(out, data)
        state = saver.load_latest(model, optimizer, ema) if resume else None
        if state is not None:
            scaler.load_state_dict(state["scaler"])
            mine = own_rng(state)  # each rank its own streams
            gen.set_state(mine["data_rng"])
            restore_rng(mine)
            history = json.loads(state["history"])
            start_epoch = int(state["epoch"]) + 1
            log.info("resumed %s at epoch %d", out, start_epoch)
    agree(start_epoch, "the epoch to start from")  # every rank read rank 0's checkpoint
    params = count_params(model_cfg)
    started = time.perf_counter()
    shuffled_seed = data.val_shuffled.seed if data.val_shuffled is not None else None
    kernel = None  # the attention kernel, from the first step's profile
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.perf_counter()
        set_epoch(train_loader, epoch)
        model.train()
        stepper = Stepper(ddp, optimizer, scaler, cfg.clip_grad, accum)
        loss_sum, seen = 0.0, 0
        batches = progress(train_loader, f"epoch {epoch + 1}/{cfg.epochs}", steps_per_epoch)
        for i, (x, y) in enumerate(batches):
            step = epoch * steps_per_epoch + i
            lr_now = lr_at(step, total_steps, warmup_steps, lr, min_lr, start_lr)
            set_lr(optimizer, lr_now)
            x, target = prep.train(x, y)
            set_grad_sync(ddp, stepper.pending + 1 >= accum or i == steps_per_epoch - 1)
            with autocast():
                if kernel is None:  # the first step, profiled: which attention kernel ran
                    kernel, logits = _first_step(step_model, x)
                else:
                    logits = step_model(x)
            loss = prep.loss(logits.float(), target)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, step {i}")
            if stepper.backward(loss, last=i == steps_per_epoch - 1) and ema is not None:
                ema.update(model)
            loss_sum += loss.item() * len(x)
            seen += len(x)
        loss_sum, seen = all_sum(loss_sum, seen)  # every rank's shard
        saver.start(epoch, model, optimizer, ema)  # sharded: written while validation runs
        metrics: dict[str, Any] = dict(epoch=epoch + 1, train_loss=loss_sum / seen, lr=lr_now)
        final_epoch = epoch == cfg.epochs - 1
        shuffle = shuffled_seed if cfg.shuffled_eval == "every" or (
            cfg.shuffled_eval == "final" and final_epoch) else None
        evaluating = final_epoch or (epoch + 1) % cfg.eval_every == 0
        amp_ctx = autocast() if use_amp else None
        if evaluating:
            val = evaluate(model, val_loader, device, amp_ctx, shuffle_seed=shuffle,
                           prep=eval_prep)
            metrics.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
            if "top1_shuffled" in val:
                metrics["val_top1_shuffled"] = val["top1_shuffled"]
        if ema is not None and evaluating:
            val = evaluate(ema.module, val_loader, device, autocast() if use_amp else None,
                           prep=eval_prep)
            metrics.update(val_ema_loss=val["loss"], val_ema_top1=val["top1"],
                           val_ema_top5=val["top5"])
        metrics["epoch_seconds"] = time.perf_counter() - epoch_start
        history.append(metrics)
        ranks_rng = gather_rng(dict(data_rng=gen.get_state(), **rng_state()))
        saver.commit(model, optimizer, scaler, gen, epoch, history, ema, ranks_rng)
        if out is not None and is_main():  # every rank restores its own streams
            if cfg.keep == "best" and is_best(history):
                save_weights(out / BEST, model, ema, epoch)
            (out / "metrics.json").write_text(json.dumps(history, indent=2) + "\n")
        if callback is not None:
            callback(dict(metrics))
    final = dict(history[-1]) if history else {}
    final.update(params=params, train_seconds=time.perf_counter() - started,
                 epochs=cfg.epochs, device=str(device), num_classes=data.num_classes,
                 global_batch=cfg.batch_size * accum * devices, accumulation=accum,
                 amp_dtype=amp_dtype(cfg.amp, device), attention_kernel=kernel or "not run",
                 checkpoint_format=saver.format, checkpoint_seconds=saver.blocked_seconds)
    if devices > 1:  # every replica ends with rank 0's weights, or the run fails
        final.update(workers=devices, weights_sha256=check_replicas(model))
    if pretrain_history:
        last = pretrain_history[-1]
        final.update(pretrain_loss=last["pretrain_loss"],
                     pretrain_val_loss=last["pretrain_val_loss"],
                     pretrain_epochs=len(pretrain_history), pretrain_seconds=pretrain_seconds)
    if out is not None and is_main():  # again: files that failed while loading are counted
        _write_reports(out, data)
        if history and len(history) == cfg.epochs:  # finished: the retention policy
            retain(out, cfg.keep, cfg.keep_weights, model, ema, cfg.epochs - 1)
    return TrainResult(history=history, final=final,
                       data_reports=[r.to_dict() for r in data.reports],
                       out_dir=str(out) if out is not None else None,
                       pretrain_history=pretrain_history)


def _first_step(model: nn.Module, x: torch.Tensor) -> tuple[str, torch.Tensor]:
    outputs: list[torch.Tensor] = []
    kernel = attention_kernel(lambda: outputs.append(model(x)))
    log.info("attention kernel: %s", kernel)
    return kernel, outputs[0]


def _write_reports(out: Path, data: Any) -> None:
    (out / "data_report.json").write_text(json.dumps([r.to_dict() for r in data.reports],
                                                     indent=2) + "\n")
