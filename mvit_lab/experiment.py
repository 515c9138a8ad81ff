"""Experiment files: data, model and training recipe in one YAML, every key checked.

::

    name: digits-mvitv2
    data:  {dataset: digits}
    model: {preset: mvitv2_t, input_size: [1, 32, 32], depths: [1, 1, 2, 1], ...}
    train: {epochs: 30, batch_size: 64, lr: 0.002}
    pretrain: {epochs: 20, mask_ratio: 0.6, decoder_dim: 128}   # optional: MAE first

``train: {recipe: mvitv2_in1k}`` fills every unset key from a published recipe
(``mvit_lab.recipes``); the file's own keys and ``--set`` overrides win.

``--set section.key=value`` overrides any key (``train.epochs=5``, ``model.pool_mode=max``).
An unknown section or key, a value of the wrong type, or a model the config rejects is a
``ValueError`` naming the dotted key. Sizes come from the model: the data is decoded and resized
to ``model.input_size``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mvit_lab._validate import (
    _as_bool,
    _as_choice,
    _as_float,
    _as_int,
    _as_triple,
    _fail,
    did_you_mean,
)
from mvit_lab.config import ArchConfig, knob_names
from mvit_lab.configfile import safe_load
from mvit_lab.presets import get_config
from mvit_lab.recipes import resolve_recipes

__all__ = ["DataConfig", "Experiment", "PretrainConfig", "TrainConfig", "apply_overrides",
           "check_objectives", "load_experiment"]

DATASETS = ("digits", "moving_digits", "image_folder", "video_list")
VIDEO_DATASETS = ("moving_digits", "video_list")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    root: str | None = None  # image_folder: the root (with train/ and val/, or split); cache
    train_csv: str | None = None  # video_list
    val_csv: str | None = None
    classes: tuple[str, ...] | None = None  # default: sorted labels found
    stride: int = 1  # frames between sampled frames (tau)
    eval_clips: int = 1  # evenly spaced clips averaged per video at evaluation (temporal views)
    eval_crops: int = 1  # video: 1 center or 3 crops along the long side (spatial views)
    val_fraction: float = 0.2  # digits, and image folders without train/ and val/
    train_fraction: float = 1.0  # digits: a seeded, stratified share of the training split
    num_train: int = 1000  # moving_digits
    num_val: int = 300
    frames: int = 16  # moving_digits: frames written per video
    probe: bool = True  # decode every file once up front (finds truncated files)
    num_workers: int = 0

    def __post_init__(self) -> None:
        _as_choice("data.dataset", self.dataset, DATASETS)
        for name in ("stride", "eval_clips", "num_train", "num_val", "frames"):
            _as_int(f"data.{name}", getattr(self, name))
        if isinstance(self.eval_crops, bool) or self.eval_crops not in (1, 3):
            raise _fail("data.eval_crops", f"must be 1 (center) or 3 (along the long side), "
                                           f"got {self.eval_crops!r}")
        _as_int("data.num_workers", self.num_workers, minimum=0)
        _as_float("data.val_fraction", self.val_fraction, 0.0, 1.0, low_open=True)
        _as_float("data.train_fraction", self.train_fraction, 0.0, 1.0000001, low_open=True)
        if self.train_fraction < 1.0 and self.dataset != "digits":
            raise _fail("data.train_fraction", f"subsets only the digits for now, not "
                                               f"{self.dataset}")
        _as_bool("data.probe", self.probe)
        for name in ("root", "train_csv", "val_csv"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(f"data.{name}", f"must be a path, got {value!r}")
        if self.classes is not None:
            if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
                raise _fail("data.classes", "must be a list of class names")
            object.__setattr__(self, "classes", tuple(self.classes))
        if self.dataset == "image_folder" and not self.root:
            raise _fail("data.root", "image_folder needs the dataset's root folder")
        if self.dataset == "video_list" and not (self.train_csv and self.val_csv):
            raise _fail("data.train_csv", "video_list needs train_csv and val_csv")

    @property
    def is_video(self) -> bool:
        return self.dataset in VIDEO_DATASETS


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. ``recipe: NAME`` fills every key this file leaves unset from a
    published recipe (``mvit_lab.recipes``); the defaults are a plain run without
    augmentation (images resized whole to the model's size)."""

    recipe: str | None = None  # a published recipe (mvit-lab recipes lists them)
    recipe_size: str | None = None  # T, S, B, B+, L or H: the recipe's size-dependent values
    epochs: int = 20
    batch_size: int = 64  # samples per step on one device (before repeated augmentation)
    eval_batch_size: int | None = None  # default: 2 * batch_size
    global_batch: int | None = None  # samples per optimizer step: accumulates micro-batches
    lr: float = 1e-3
    lr_batch: int | None = None  # lr is per this many samples (scaled by the global batch)
    min_lr: float = 1e-5  # scaled with lr
    warmup_start_lr: float = 0.0  # scaled with lr
    weight_decay: float = 0.05  # never on norms, biases, cls / mask tokens
    no_decay_pos: bool = True  # nor on position tables (SlowFast's ZERO_DECAY_POS_CLS)
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float | None = None  # lr * layer_decay ** (blocks above), per block
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    clip_grad: float | None = 1.0
    ema_decay: float | None = None  # an EMA of the weights, evaluated beside the model
    # augmentation (the same draw for every frame of a clip)
    crop_scale: tuple[float, float] | None = None  # random-resized-crop area; None: no crop
    crop_ratio: tuple[float, float] = (0.75, 1.3333)
    short_side_jitter: tuple[int, int] | None = None  # video: short side in [a, b], crop
    hflip: float = 0.0
    rand_augment: str | None = None  # timm's format, e.g. rand-m9-n6-mstd0.5-inc1
    random_erasing: float = 0.0
    mixup: float = 0.0  # Beta(alpha) of mixup; 0: off
    cutmix: float = 0.0  # Beta(alpha) of cutmix; 0: off
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    repeated_aug: int = 1  # augmented copies of each sample in its batch
    interpolation: str = "bilinear"
    eval_crop_pct: float | None = None  # resize to size / crop_pct, center crop; None: resize
    shuffled_eval: str = "final"  # video: shuffled-frames top-1 at the final epoch only
    eval_every: int = 1  # evaluate every N epochs and after the last (SlowFast's EVAL_PERIOD)
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    amp: str = "auto"  # autocast dtype: auto is bfloat16 on CUDA, float32 (none) on the CPU
    threads: int | None = None  # torch CPU threads (default: torch's)
    # speed switches (mvit_lab.train.speed); none changes what a step computes beyond
    # rounding, so they may change when a run resumes
    compile: bool = False  # torch.compile the model for the training step
    activation_checkpointing: bool = False  # recompute each block in backward (L / H models)
    fused_adamw: bool = True  # the fused AdamW kernel on CUDA (the CPU keeps foreach)
    tf32: bool = True  # TF32 matmuls and convolutions on CUDA (float32 parts of a step)
    pin_memory: bool = True  # pinned batches, copied to the GPU without blocking
    # checkpoints once the run has finished: last (the full checkpoint, resumable), best
    # (the weights of the best val_top1 epoch), none; keep_weights adds the final weights
    keep: str = "last"
    keep_weights: bool = False
    # the resumable checkpoint (mvit_lab.train.checkpoint): file (checkpoint.pt, rank 0),
    # sharded (PyTorch's distributed checkpoint, every worker writes its part), auto: sharded
    # with several workers; async_checkpoint writes a sharded one while validation runs
    checkpoint_format: str = "auto"
    async_checkpoint: bool = True

    def __post_init__(self) -> None:
        _as_int("train.epochs", self.epochs)
        _as_int("train.batch_size", self.batch_size)
        for name in ("eval_batch_size", "threads", "global_batch", "lr_batch"):
            if getattr(self, name) is not None:
                _as_int(f"train.{name}", getattr(self, name))
        _as_float("train.lr", self.lr, 0.0, low_open=True)
        _as_float("train.min_lr", self.min_lr, 0.0)
        _as_float("train.warmup_start_lr", self.warmup_start_lr, 0.0)
        _as_float("train.weight_decay", self.weight_decay, 0.0)
        _as_bool("train.no_decay_pos", self.no_decay_pos)
        _as_float("train.warmup_epochs", self.warmup_epochs, 0.0)
        _as_float("train.label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.clip_grad is not None:
            _as_float("train.clip_grad", self.clip_grad, 0.0, low_open=True)
        object.__setattr__(self, "betas", _as_pair("train.betas", self.betas, float, 0.0, 1.0))
        if self.layer_decay is not None:
            _as_float("train.layer_decay", self.layer_decay, 0.0, 1.0000001, low_open=True)
        if self.ema_decay is not None:
            _as_float("train.ema_decay", self.ema_decay, 0.0, 1.0, low_open=True)
        if self.crop_scale is not None:
            scale = _as_pair("train.crop_scale", self.crop_scale, float, 0.0, 1.0000001)
            object.__setattr__(self, "crop_scale", scale)
        object.__setattr__(self, "crop_ratio",
                           _as_pair("train.crop_ratio", self.crop_ratio, float, 0.0))
        if self.short_side_jitter is not None:
            jitter = _as_pair("train.short_side_jitter", self.short_side_jitter, int, 1)
            object.__setattr__(self, "short_side_jitter", jitter)
            if self.crop_scale is not None:
                raise _fail("train.short_side_jitter", "is the other way to crop: set it or "
                                                       "train.crop_scale, not both")
        for name in ("hflip", "random_erasing", "mixup_prob", "mixup_switch_prob"):
            _as_float(f"train.{name}", getattr(self, name), 0.0, 1.0000001)
        _as_float("train.mixup", self.mixup, 0.0)
        _as_float("train.cutmix", self.cutmix, 0.0)
        _as_int("train.repeated_aug", self.repeated_aug)
        _as_choice("train.interpolation", self.interpolation, ("bilinear", "bicubic"))
        if self.eval_crop_pct is not None:
            _as_float("train.eval_crop_pct", self.eval_crop_pct, 0.0, 1.0000001, low_open=True)
        _as_choice("train.shuffled_eval", self.shuffled_eval, ("final", "every", "never"))
        _as_int("train.eval_every", self.eval_every)
        if self.rand_augment is not None:
            _check_rand_augment(self.rand_augment)
        _as_int("train.seed", self.seed, minimum=0)
        _as_choice("train.amp", self.amp, ("auto", "bfloat16", "float16", "none"))
        for name in ("compile", "activation_checkpointing", "fused_adamw", "tf32", "pin_memory",
                     "keep_weights", "async_checkpoint"):
            _as_bool(f"train.{name}", getattr(self, name))
        _as_choice("train.keep", self.keep, ("last", "best", "none"))
        _as_choice("train.checkpoint_format", self.checkpoint_format, ("auto", "file", "sharded"))
        if self.amp == "float16" and self.device == "cpu":
            raise _fail("train.amp", "float16 autocast needs CUDA; on the CPU use bfloat16 "
                                     "or none")
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise _fail("train.device", f"must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if self.min_lr > self.lr:
            raise _fail("train.min_lr", f"{self.min_lr} is above train.lr {self.lr}")
        if self.recipe is not None and not isinstance(self.recipe, str):
            raise _fail("train.recipe", f"must be a recipe name, got {self.recipe!r}")

    @property
    def mixes(self) -> bool:
        return self.mixup_prob > 0 and (self.mixup > 0 or self.cutmix > 0)


def _as_pair(name: str, value: Any, kind: type, low: float,
             high: float | None = None) -> tuple[Any, Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
            len(value) != 2:
        raise _fail(name, f"must be a pair [a, b], got {value!r}")
    if kind is int:
        pair = tuple(_as_int(f"{name}[{i}]", v, int(low)) for i, v in enumerate(value))
    else:
        pair = tuple(_as_float(f"{name}[{i}]", v, low, high) for i, v in enumerate(value))
    if pair[0] > pair[1]:
        raise _fail(name, f"must be [low, high], got {list(value)}")
    return pair  # type: ignore[return-value]


def _check_rand_augment(text: Any) -> None:
    """A timm rand-augment string (``rand-m9-n6-mstd0.5-inc1``), checked by timm's parser."""
    if not isinstance(text, str) or not text.startswith("rand-m"):
        raise _fail("train.rand_augment", f"must be timm's format rand-m<magnitude>[-n<ops>]"
                                          f"[-mstd<std>][-inc<0|1>], got {text!r}")
    from timm.data import rand_augment_transform

    try:
        rand_augment_transform(text, {"translate_const": 10})
    except Exception as err:  # timm raises assorted errors for a malformed string
        raise _fail("train.rand_augment", f"timm cannot parse {text!r}: {err}") from None


@dataclass(frozen=True)
class PretrainConfig:
    """Sparse MAE pretraining before ``train`` fine-tunes (``mvit_lab.models.mae``).

    Unset values follow Hiera: mask ratio 0.6 for images and 0.9 for video; lr, warm-up,
    weight decay and batch size default to the ``train`` section's. ``recipe: NAME`` fills the
    unset keys from a published pretraining recipe. The inputs get only the crop and flip
    below (MAE's augmentation), never the ``train`` section's.
    """

    recipe: str | None = None
    recipe_size: str | None = None
    epochs: int = 20
    mask_ratio: float | None = None  # None: 0.6 for images, 0.9 for video
    mask_unit_size: tuple[int, int, int] | None = None  # for models without one
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    norm_pix_loss: bool = True
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    batch_size: int | None = None
    global_batch: int | None = None  # samples per optimizer step (accumulates)
    lr_batch: int | None = None  # lr (and min_lr) are per this many samples
    betas: tuple[float, float] = (0.9, 0.95)
    drop_path_rate: float | None = None  # None: the model's
    crop_scale: tuple[float, float] | None = None  # random-resized-crop area; None: no crop
    hflip: float = 0.0
    interpolation: str = "bilinear"
    repeated_aug: int = 1
    clip_grad: float | None = None  # None: train.clip_grad

    def __post_init__(self) -> None:
        _as_int("pretrain.epochs", self.epochs)
        if self.clip_grad is not None:
            _as_float("pretrain.clip_grad", self.clip_grad, 0.0, low_open=True)
        for name in ("global_batch", "lr_batch"):
            if getattr(self, name) is not None:
                _as_int(f"pretrain.{name}", getattr(self, name))
        object.__setattr__(self, "betas", _as_pair("pretrain.betas", self.betas, float, 0.0,
                                                   1.0))
        if self.drop_path_rate is not None:
            _as_float("pretrain.drop_path_rate", self.drop_path_rate, 0.0, 1.0)
        if self.crop_scale is not None:
            object.__setattr__(self, "crop_scale", _as_pair(
                "pretrain.crop_scale", self.crop_scale, float, 0.0, 1.0000001))
        _as_float("pretrain.hflip", self.hflip, 0.0, 1.0000001)
        _as_choice("pretrain.interpolation", self.interpolation, ("bilinear", "bicubic"))
        _as_int("pretrain.repeated_aug", self.repeated_aug)
        if self.mask_ratio is not None:
            _as_float("pretrain.mask_ratio", self.mask_ratio, 0.0, 1.0)
            if self.mask_ratio >= 1.0:
                raise _fail("pretrain.mask_ratio", f"must be below 1, got {self.mask_ratio}")
        if self.mask_unit_size is not None:
            object.__setattr__(self, "mask_unit_size",
                               _as_triple("pretrain.mask_unit_size", self.mask_unit_size))
        _as_int("pretrain.decoder_dim", self.decoder_dim)
        _as_int("pretrain.decoder_depth", self.decoder_depth, minimum=0)
        _as_int("pretrain.decoder_heads", self.decoder_heads)
        if self.decoder_dim % self.decoder_heads:
            raise _fail("pretrain.decoder_heads", f"{self.decoder_heads} heads do not divide "
                                                  f"decoder_dim {self.decoder_dim}")
        _as_bool("pretrain.norm_pix_loss", self.norm_pix_loss)
        if self.lr is not None:
            _as_float("pretrain.lr", self.lr, 0.0, low_open=True)
        _as_float("pretrain.min_lr", self.min_lr, 0.0)
        if self.weight_decay is not None:
            _as_float("pretrain.weight_decay", self.weight_decay, 0.0)
        if self.warmup_epochs is not None:
            _as_float("pretrain.warmup_epochs", self.warmup_epochs, 0.0)
        if self.batch_size is not None:
            _as_int("pretrain.batch_size", self.batch_size)

    def ratio_for(self, video: bool) -> float:
        return self.mask_ratio if self.mask_ratio is not None else (0.9 if video else 0.6)

    def check(self, model: ArchConfig, video: bool) -> None:
        """Raise a ``ValueError`` naming the key if ``model`` cannot be pretrained this way."""
        from mvit_lab.masking import check_sparse, num_units, random_keep

        try:
            encoder = self.encoder_config(model)
            check_sparse(encoder)
            random_keep(1, num_units(encoder), self.ratio_for(video))
        except ValueError as err:
            text = str(err)
            if text.startswith("mask_ratio:"):
                text = f"pretrain.{text}"
            elif not text.startswith("pretrain."):
                text = f"pretrain: the model cannot run sparse MAE: model.{text}"
            raise ValueError(text) from None

    def encoder_config(self, model: ArchConfig) -> ArchConfig:
        """The model as pretrained: with ``mask_unit_size`` where the model has none, and
        ``drop_path_rate`` when set."""
        if self.drop_path_rate is not None:
            model = model.replace(drop_path_rate=self.drop_path_rate)
        if self.mask_unit_size is None or self.mask_unit_size == model.mask_unit_size:
            return model
        if model.mask_unit_size is not None:
            raise _fail("pretrain.mask_unit_size",
                        f"{self.mask_unit_size} differs from model.mask_unit_size "
                        f"{model.mask_unit_size}, which its mask-unit attention uses; leave "
                        "pretrain.mask_unit_size unset")
        try:
            return model.replace(mask_unit_size=self.mask_unit_size)
        except ValueError as err:
            raise _fail("pretrain.mask_unit_size", str(err)) from None


@dataclass(frozen=True)
class Experiment:
    name: str
    data: DataConfig
    model: ArchConfig
    train: TrainConfig
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # sections later layers read
    pretrain: PretrainConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(name=self.name, data=_plain(dataclasses.asdict(self.data)),
                   model=self.model.to_dict(), train=_plain(dataclasses.asdict(self.train)),
                   **copy.deepcopy(self.extra))
        if self.pretrain is not None:
            out["pretrain"] = _plain(dataclasses.asdict(self.pretrain))
        return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


SECTIONS = {"data": DataConfig, "train": TrainConfig}
# sections the sweep layer owns and validates (mvit_lab.search.sweep); kept verbatim here
EXTRA_SECTIONS = {"search", "objectives", "algorithm", "budget", "resources", "scheduler",
                  "measure",
                  "replay",
                  "tracking"}
# their keys, only to suggest a fix for a misspelt --set (the sweep layer checks them)
_SWEEP_KEYS = ("budget.samples", "budget.seeds", "budget.concurrency", "budget.time_s",
               "resources.cpus", "resources.gpus", "resources.workers",
               "resources.cpus_per_worker", "resources.gpus_per_worker", "tracking.uri",
               "tracking.experiment", "replay.table", "replay.time_scale")
# a run folder is runs/<name>: a name, never a path
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")


def known_keys() -> list[str]:
    """Every dotted key an experiment file (and so ``--set``) takes."""
    keys = ["name", "model.preset", *(f"model.{k}" for k in knob_names())]
    for name, cls in [*SECTIONS.items(), ("pretrain", PretrainConfig)]:
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return [*keys, *_SWEEP_KEYS, *sorted(EXTRA_SECTIONS - {"budget", "resources", "tracking",
                                                           "replay"})]


def apply_overrides(tree: dict[str, Any], items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=5", "model.pool_mode=max"]`` applied to a nested mapping (a copy)."""
    tree = copy.deepcopy(tree)
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected section.key=value")
        parts = key.split(".")
        if len(parts) == 1 and parts[0] not in ("name", *EXTRA_SECTIONS):
            hint = did_you_mean(key, known_keys()) or " (e.g. train.epochs or model.pool_mode)"
            raise ValueError(f"{key}: --set needs section.key{hint}")
        try:
            value = safe_load(text) if text.strip() else text
        except ValueError as err:
            raise ValueError(f"{key}: cannot parse value {text!r} in --set: {err}") from None
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key}: {part} is not a section (in --set {item!r})")
        node[parts[-1]] = value
    return tree


def _build_section(cls: type, name: str, values: Any) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{name}: must be a mapping, got {type(values).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        hint = did_you_mean(f"{name}.{unknown[0]}", [f"{name}.{k}" for k in known]) or (
            f" (known: {', '.join(known)})")
        raise ValueError(f"{name}.{unknown[0]}: unknown key{hint}")
    try:
        return cls(**values)
    except TypeError as err:  # e.g. a list where a number belongs, caught by a comparison
        raise ValueError(f"{name}: {err}") from None


def _build_model(values: Any) -> ArchConfig:
    if not isinstance(values, dict):
        raise ValueError("model: must be a mapping of a preset and ArchConfig knobs")
    values = dict(values)
    preset = values.pop("preset", None)
    unknown = sorted(set(values) - set(knob_names()))
    if unknown:
        raise ValueError(f"model.{unknown[0]}: not an ArchConfig knob"
                         f"{did_you_mean(unknown[0], [*knob_names(), 'preset'])}")
    try:
        return get_config(str(preset), **values) if preset else ArchConfig(**values)
    except ValueError as err:
        raise ValueError(f"model.{err}") from None


def experiment_from_dict(tree: dict[str, Any], path: str | None = None, *,
                         check_model: bool = True) -> Experiment:
    """A validated Experiment. ``check_model=False`` leaves the check that the model can be
    pretrained to the caller, for a model the search space replaces (sweeps check every
    point, trials their own)."""
    if not isinstance(tree, dict):
        raise ValueError("experiment: expected a mapping with data, model and train sections")
    allowed = {"name", "model", "pretrain", *SECTIONS, *EXTRA_SECTIONS}
    unknown = sorted(set(tree) - allowed)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown section"
                         f"{did_you_mean(unknown[0], [*allowed, *known_keys()]) or ''} (known: "
                         f"{', '.join(sorted(allowed))})")
    if "model" not in tree:
        raise ValueError("model: missing (a preset and/or ArchConfig knobs)")
    tree = resolve_recipes(tree)
    name = tree.get("name") or (Path(path).stem if path else "experiment")
    if not isinstance(name, str):
        raise ValueError(f"name: must be a string, got {name!r}")
    if not _NAME.fullmatch(name):
        source = "" if tree.get("name") else " (taken from the file name; set name:)"
        raise ValueError(f"name: {name!r}{source} is not a plain name (letters, digits and "
                         "_ . + = -, not starting with '.'); it names the run folder "
                         "runs/<name> and the MLflow experiment, so it cannot be a path")
    data = _build_section(DataConfig, "data", tree.get("data"))
    train = _build_section(TrainConfig, "train", tree.get("train"))
    model = _build_model(tree["model"])
    pretrain = None
    if tree.get("pretrain") is not None:
        pretrain = _build_section(PretrainConfig, "pretrain", tree["pretrain"])
    if pretrain is not None and check_model and "search" not in tree:
        pretrain.check(model, data.is_video)
    if data.is_video == model.is_image:
        kind = "a video" if data.is_video else "an image"
        raise ValueError(f"model.input_size: {data.dataset} is {kind} dataset but the model's "
                         f"input_size is {model.input_size} (T {'> 1' if data.is_video else '1'})")
    if model.in_chans != 3:
        raise ValueError(f"model.in_chans: the datasets give 3-channel inputs, got "
                         f"{model.in_chans}")
    if tree.get("objectives") is not None:
        check_objectives(tree["objectives"])
    extra = {k: copy.deepcopy(tree[k]) for k in EXTRA_SECTIONS if k in tree}
    if train.mixes and (train.batch_size * train.repeated_aug) % 2:
        raise _fail("train.batch_size", f"mixup / cutmix mix a batch with its reverse and need "
                                        f"an even batch, got {train.batch_size}")
    return Experiment(name=name, data=data, model=model, train=train, path=path, extra=extra,
                      pretrain=pretrain)


def check_objectives(spec: Any, where: str = "objectives",
                     items: list[str] | None = None) -> tuple:
    """``parse_objectives(spec)`` with errors that name ``where`` (the section, or the CLI flag
    with its ``items``) rather than the parser's argument."""
    from mvit_lab.search.pareto import parse_objectives

    try:
        return parse_objectives(spec)
    except ValueError as err:
        text = str(err)
        m = re.match(r"spec\[('?)(.*?)\1\]: (sense: )?(.*)", text)
        if m:
            rule = f"{'the sense ' if m.group(3) else ''}{m.group(4)}"
        if m and m.group(1):  # a mapping's key
            text = f"{where}.{m.group(2)}: {rule}"
        elif m:  # a list's entry
            i = int(m.group(2))
            entry = repr(items[i]) if items and i < len(items) else f"entry {i}"
            text = f"{where} {entry}: {rule}"
        elif text.startswith("spec:"):
            text = f"{where}:{text[len('spec:'):]}"
        raise ValueError(text) from None


def _check_num_classes(values: dict[str, Any], model: ArchConfig, data: DataConfig) -> None:
    """An explicit ``model.num_classes`` must match a label set known before loading the data.

    The head follows the data's classes (``train`` replaces a preset's 1000); a number the user
    wrote that the data contradicts is a mistake, not a default to replace.
    """
    if not isinstance(values, dict) or "num_classes" not in values:
        return
    if data.classes is not None:
        known, where = len(data.classes), "data.classes lists"
    elif data.dataset == "digits":
        known, where = 10, "digits has"
    elif data.dataset == "moving_digits":
        from mvit_lab.data.moving_digits import class_names

        known, where = len(class_names((0, 1, 2, 3, 4))), "moving_digits has"
    else:
        return  # found when the data loads
    if model.num_classes != known:
        raise ValueError(f"model.num_classes: {model.num_classes}, but {where} {known} "
                         f"classes; set {known} or leave it out (the head follows the data)")


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """A validated Experiment from a YAML file, with ``--set`` overrides applied."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such experiment file")
    try:
        tree = safe_load(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    tree = apply_overrides(tree or {}, overrides)  # its errors quote the --set item
    try:
        exp = experiment_from_dict(tree, str(path))
        # only here: a dict from Experiment.to_dict (a trial's) spells out a preset's 1000
        _check_num_classes(tree["model"], exp.model, exp.data)
        return exp
    except ValueError as err:
        raise ValueError(f"{err} ({_blame(str(err), overrides, path)})") from None


def _blame(message: str, overrides: list[str] | None, path: Path) -> str:
    """``from --set k=v`` when the key an error names was overridden, else ``in <file>``."""
    named = re.split(r"[:\[ ]", message, maxsplit=1)[0]
    for item in overrides or []:
        key = item.partition("=")[0].strip()
        if named == key or f".{named}.".startswith(f".{key}.") or (
                f".{key}.".startswith(f".{named}.")):
            return f"from --set {item}"
    return f"in {path}"
