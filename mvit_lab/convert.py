"""Weights in from the reference implementations: pure ``state_dict -> state_dict`` functions.

Each source is a small table of key patterns (timm's ``checkpoint_filter_fn`` style); the
result loads with ``strict=True`` into ``build_model(cfg)``.

- ``timm``: ``mvitv2_*`` (nested ``stages.S.blocks.J``) and ``hiera_*_224`` (``head.norm``);
- ``torchvision``: ``mvit_v1_b``, ``mvit_v2_s`` (``conv_proj``, ``pos_encoding.*``,
  ``attn.project.0``, ``attn.pool_q.pool`` / ``norm_act.0``, ``mlp.0`` / ``mlp.3``);
- ``hiera``: facebookresearch/hiera and ``hiera-transformer`` (flat ``blocks.N``,
  ``head.projection``);
- ``slowfast``: SlowFast MViTv1 / MViTv2 checkpoints (flat ``blocks.N``,
  ``attn.pool_q`` + ``attn.norm_q``, ``pos_embed_class``, ``head.projection``). Its image
  models (``MVIT.PATCH_2D``) keep 3-D pooling convs ``[hd, 1, kt, kh, kw]``; on a one-frame
  grid only the centre time tap sees a frame, so that slice becomes the 2-D kernel.
  ``MVIT.SEPARATE_QKV`` (three linears, then pooling: the fused computation) is fused into
  ``attn.qkv``; ``MVIT.POOL_FIRST`` keeps ``attn.q`` / ``k`` / ``v`` for a ``pool_first``
  config. Which of the two separate-linear layouts a checkpoint has is read from the ``cfg``
  entry SlowFast's ``save_checkpoint`` embeds (or stated with ``separate_qkv=``);
- ``mvit``: facebookresearch/mvit MViTv2 image checkpoints (as SlowFast, 2-D).

SlowFast and facebookresearch/mvit checkpoints embed their YAML config: ``load_pretrained(path)``
builds the model from it (``config_from_checkpoint``) when no config is given.
- ``mae``: MAE pretraining checkpoints, Hiera's ``MaskedAutoencoderHiera`` (``mae_in1k``,
  ``mae_k400``) or mvit-lab's ``MaskedAutoencoder``: the encoder is kept, the decoder dropped;
- ``encoder``: encoder weights alone (mvit-lab's ``encoder.pt``; Hiera layout, no head).

An ``mae`` or ``encoder`` checkpoint has no classifier: the model's head and final norm keep
their initialisation, as when Hiera fine-tunes an MAE model.

Checkpoint wrappers (``model_state``, ``model``, ``state_dict``) and DDP's ``module.`` prefix
are removed first.

Behaviour differences: timm adds the pooled q to the cls token in residual pooling (the
original code and torchvision do not); ``config_from_reference`` sets ``residual_pooling_cls``
for timm models so their outputs are reproduced. The original Hiera and MViT heads apply a
softmax in eval mode; mvit-lab's models always return logits, and the weights are the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mvit_lab.build import build_model, resolve_config
from mvit_lab.config import ArchConfig
from mvit_lab.models import MultiscaleViT
from mvit_lab.reference import checkpoint_reference_cfg, config_from_checkpoint

__all__ = ["SOURCES", "check_state_dict", "convert_state_dict", "detect_source",
           "load_pretrained", "unwrap_checkpoint"]

log = logging.getLogger(__name__)

SOURCES = ("timm", "torchvision", "hiera", "slowfast", "mvit", "mae", "encoder")
_ENCODER_KEYS = ("patch_embed.", "pos_embed", "blocks.")  # the encoder of an MAE checkpoint
_FRESH = ("norm.", "head.")  # what an encoder-only checkpoint leaves initialised

# A (pattern, replacement) table per source; the first matching pattern renames a key.
_POOL = [
    (r"^(blocks\.\d+\.attn)\.pool_([qkv])\.weight$", r"\1.pool_\2.conv.weight"),
    (r"^(blocks\.\d+\.attn)\.norm_([qkv])\.", r"\1.pool_\2.norm."),
]
_RULES: dict[str, list[tuple[str, str]]] = {
    "timm": [
        *_POOL,
        (r"^(blocks\.\d+)\.shortcut_proj_(attn|mlp)\.", r"\1.proj."),
        (r"^head\.norm\.", "norm."),
    ],
    "torchvision": [
        (r"^conv_proj\.", "patch_embed.proj."),
        (r"^pos_encoding\.class_token$", "cls_token"),
        (r"^pos_encoding\.spatial_pos$", "pos_embed_spatial"),
        (r"^pos_encoding\.temporal_pos$", "pos_embed_temporal"),
        (r"^pos_encoding\.class_pos$", "pos_embed_cls"),
        (r"^(blocks\.\d+\.attn)\.project\.0\.", r"\1.proj."),
        (r"^(blocks\.\d+\.attn\.pool_[qkv])\.pool\.", r"\1.conv."),
        (r"^(blocks\.\d+\.attn\.pool_[qkv])\.norm_act\.0\.", r"\1.norm."),
        (r"^(blocks\.\d+)\.mlp\.0\.", r"\1.mlp.fc1."),
        (r"^(blocks\.\d+)\.mlp\.3\.", r"\1.mlp.fc2."),
        (r"^(blocks\.\d+)\.project\.", r"\1.proj."),
        (r"^head\.1\.", "head.fc."),
    ],
    "hiera": [
        (r"^head\.projection\.", "head.fc."),
    ],
    "slowfast": [
        *_POOL,
        (r"^pos_embed_class$", "pos_embed_cls"),
        (r"^head\.projection\.", "head.fc."),
    ],
}
_RULES["mvit"] = _RULES["slowfast"]
_RULES["mae"] = _RULES["encoder"] = []

# torchvision keeps tokens and position tables without the batch (and token) dimension
_TO_TOKENS = {"cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_cls"}


def unwrap_checkpoint(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a training checkpoint, without a DDP ``module.`` prefix."""
    for key in ("model_state", "model", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"checkpoint: entries {bad[:5]} are not tensors; expected a state dict "
                         "or a checkpoint wrapping one under model_state / model / state_dict")
    return sd


def detect_source(state_dict: Mapping[str, Any]) -> str:
    """Guess which implementation wrote ``state_dict`` from its key layout."""
    keys = set(state_dict)
    if "decoder_pos_embed" in keys or any(k.startswith("multi_scale_fusion_heads.")
                                          for k in keys):
        return "mae"
    if "conv_proj.weight" in keys or any(k.startswith("pos_encoding.") for k in keys):
        return "torchvision"
    if any(k.startswith("stages.") for k in keys) or "head.norm.weight" in keys:
        return "timm"
    if any(re.match(r"^blocks\.\d+\.attn\.q\.weight$", k) for k in keys):
        return _slowfast_or_mvit(state_dict)  # SEPARATE_QKV or POOL_FIRST attention
    if "head.fc.weight" in keys and "norm.weight" in keys:
        raise ValueError("checkpoint: this is already an mvit-lab state dict; load it with "
                         "model.load_state_dict")
    if "patch_embed.proj.weight" in keys and not any(k.startswith(_FRESH) for k in keys):
        return "encoder"
    if "head.projection.weight" in keys or "norm.weight" in keys:
        mvit_like = any(re.search(r"\.(norm_[qkv]|pool_[qkv])\.|rel_pos_", k) for k in keys) or (
            "cls_token" in keys)
        if not mvit_like:
            return "hiera"
        return _slowfast_or_mvit(state_dict)
    raise ValueError("checkpoint: cannot tell which implementation wrote it (keys: "
                     f"{sorted(keys)[:8]} ...); pass source= one of {', '.join(SOURCES)}")


def _slowfast_or_mvit(state_dict: Mapping[str, Any]) -> str:
    """SlowFast keeps 3-D convs (also in its PATCH_2D image models' pooling); mvit has 2-D."""
    return "slowfast" if any(
        getattr(v, "ndim", 0) == 5 for k, v in state_dict.items()
        if k == "patch_embed.proj.weight" or re.search(r"\.attn\.pool_[qkv]\.weight$", k)
    ) else "mvit"


def convert_state_dict(state_dict: Mapping[str, Any], source: str, cfg: ArchConfig | str, *,
                       separate_qkv: bool | None = None) -> dict[str, torch.Tensor]:
    """``state_dict`` of a ``source`` model, renamed and reshaped for ``build_model(cfg)``.

    ``state_dict`` may be a whole training checkpoint; a SlowFast / mvit one's ``cfg`` entry
    says whether separate ``attn.q`` / ``k`` / ``v`` weights are ``SEPARATE_QKV`` or
    ``POOL_FIRST``. Without that entry, ``separate_qkv=True`` states the first, a config with
    ``pool_first=True`` (or ``separate_qkv=False``) the second.

    Pure: the input is not modified and tensors are shared, not copied (fused q / k / v
    weights are new tensors).
    """
    if source not in SOURCES:
        raise ValueError(f"source: unknown {source!r}; known: {', '.join(SOURCES)}")
    cfg = resolve_config(cfg)
    sd = unwrap_checkpoint(state_dict)
    if source in ("slowfast", "mvit"):
        sd = _separate_qkv(sd, cfg, state_dict, separate_qkv)
    if source == "slowfast" and "norm_stem.weight" in sd:
        raise ValueError("checkpoint: SlowFast's NORM_STEM (a LayerNorm after the patch "
                         "embedding) has no mvit-lab equivalent")
    if source == "timm":
        sd = _flatten_timm_stages(sd, cfg)
    if source == "mae":  # mvit-lab's MaskedAutoencoder nests the encoder under encoder.
        sd = {k.removeprefix("encoder."): v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if k.startswith(_ENCODER_KEYS)}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = key
        for pattern, repl in _RULES[source]:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        if source == "torchvision" and new in _TO_TOKENS:
            value = value.reshape(1, -1, value.shape[-1])
        if source in ("slowfast", "mvit") and cfg.is_image and value.ndim == 5 and re.search(
                r"\.attn\.pool_[qkv]\.conv\.weight$", new):
            value = _time_centre(key, value)
        if new in out:
            raise ValueError(f"checkpoint: keys {key!r} and another both map to {new!r}")
        out[new] = value
    return out


def _time_centre(key: str, weight: torch.Tensor) -> torch.Tensor:
    """A PATCH_2D model's 3-D pooling kernel ``[C, 1, kt, kh, kw]`` as the 2-D kernel it
    computes: on a one-frame grid padded by ``kt // 2``, only the centre tap meets a frame."""
    kt = weight.shape[2]
    if kt % 2 == 0:
        raise ValueError(f"checkpoint: {key} has an even temporal kernel {kt}, which changes "
                         "the number of frames of an image model")
    return weight[:, :, kt // 2]


_QKV = re.compile(r"^(blocks\.\d+\.attn)\.q\.(weight|bias)$")


def _separate_qkv(sd: dict[str, torch.Tensor], cfg: ArchConfig, checkpoint: Mapping[str, Any],
                  separate_qkv: bool | None) -> dict[str, torch.Tensor]:
    """SEPARATE_QKV weights fused into ``attn.qkv``; POOL_FIRST ones kept for ``pool_first``.
    ``checkpoint``: the whole file, whose ``cfg`` entry tells the two apart."""
    if not any(_QKV.match(k) for k in sd):
        if cfg.pool_first:
            raise ValueError("pool_first: the config pools before projecting, but the checkpoint "
                             "has fused attn.qkv weights (project, then pool); build it with "
                             "pool_first=False")
        return sd
    embedded = checkpoint_reference_cfg(checkpoint)
    pool_first = _checkpoint_pool_first(cfg, embedded, separate_qkv)
    if pool_first != cfg.pool_first:
        kind = "POOL_FIRST" if pool_first else "SEPARATE_QKV"
        raise ValueError(f"pool_first: the checkpoint has {kind} attention; build it with "
                         f"pool_first={pool_first}")
    if pool_first:
        return sd  # mvit-lab's pool-first attention has the same attn.q / k / v
    out = dict(sd)
    for key in sd:
        m = _QKV.match(key)
        if m:
            parts = [out.pop(f"{m[1]}.{name}.{m[2]}") for name in "qkv"]
            out[f"{m[1]}.qkv.{m[2]}"] = torch.cat(parts, dim=0)
    return out


def _checkpoint_pool_first(cfg: ArchConfig, embedded: Mapping[str, Any] | None,
                           separate_qkv: bool | None) -> bool:
    """Are separate attn.q / k / v weights POOL_FIRST (True) or SEPARATE_QKV (False)?"""
    if embedded is not None:
        mvit = embedded.get("MVIT") or {}
        if not (mvit.get("POOL_FIRST") or mvit.get("SEPARATE_QKV")):
            raise ValueError("checkpoint: separate attn.q / attn.k / attn.v weights, but its cfg "
                             "sets neither MVIT.POOL_FIRST nor MVIT.SEPARATE_QKV")
        pool_first = bool(mvit.get("POOL_FIRST"))  # SlowFast: POOL_FIRST wins over SEPARATE_QKV
        if separate_qkv is not None and separate_qkv == pool_first:
            raise ValueError(f"separate_qkv: {separate_qkv}, but the checkpoint's own cfg says "
                             f"MVIT.POOL_FIRST: {pool_first}")
        return pool_first
    if separate_qkv is not None:
        return not separate_qkv
    if cfg.pool_first:
        return True
    raise ValueError("checkpoint: separate attn.q / attn.k / attn.v weights are MVIT.SEPARATE_QKV "
                     "(project, then pool) or MVIT.POOL_FIRST (pool, then project), and the "
                     "checkpoint has no cfg entry that says which; pass separate_qkv=True for "
                     "the first, or a config with pool_first=True for the second")


def _flatten_timm_stages(sd: dict[str, torch.Tensor], cfg: ArchConfig) -> dict[str, torch.Tensor]:
    offsets = [sum(cfg.depths[:i]) for i in range(cfg.num_stages)]
    out = {}
    for key, value in sd.items():
        m = re.match(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$", key)
        if m:
            stage, block = int(m[1]), int(m[2])
            if stage >= cfg.num_stages or block >= cfg.depths[stage]:
                raise ValueError(f"checkpoint: {key} does not exist in a model with depths "
                                 f"{cfg.depths}")
            key = f"blocks.{offsets[stage] + block}.{m[3]}"
        out[key] = value
    return out


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Every way ``state_dict`` does not fit ``model``: missing, unexpected, wrong shapes."""
    own = model.state_dict()
    problems = []
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected)}")
    shapes = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    if shapes:
        problems.append(f"wrong shape {len(shapes)}: {', '.join(shapes)}")
    return problems


def load_pretrained(path: str | Path, cfg_or_preset: ArchConfig | str | None = None,
                    source: str | None = None, *, reset_head: bool = False,
                    separate_qkv: bool | None = None) -> MultiscaleViT:
    """Build ``cfg_or_preset`` and load a reference checkpoint file into it, strictly.

    The file is read with ``torch.load(weights_only=True)``; ``source`` is detected from the
    key layout when not given. ``cfg_or_preset=None``: the architecture is read from the
    config a SlowFast or facebookresearch/mvit checkpoint embeds (``config_from_checkpoint``).
    ``reset_head=True`` keeps the new model's freshly initialised classifier (to fine-tune on
    another label set) and loads everything else strictly. An MAE or encoder-only checkpoint
    leaves the head and its norm at their initialisation. ``separate_qkv``: see
    ``convert_state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is the same user error
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    sd = unwrap_checkpoint(obj)
    source = source or detect_source(sd)
    if cfg_or_preset is None:
        if source not in ("slowfast", "mvit"):
            raise ValueError(f"cfg_or_preset: required for a {source} checkpoint (only SlowFast "
                             "and facebookresearch/mvit checkpoints embed their config)")
        try:
            cfg = config_from_checkpoint(obj, source)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    else:
        cfg = resolve_config(cfg_or_preset)
    converted = convert_state_dict(obj, source, cfg, separate_qkv=separate_qkv)
    model = build_model(cfg)
    if reset_head:
        for key in ("head.fc.weight", "head.fc.bias"):
            converted.pop(key, None)
            converted[key] = model.state_dict()[key]
    if source in ("mae", "encoder"):  # pretrained without a classifier: both start fresh
        for key, value in model.state_dict().items():
            if key.startswith(_FRESH) and key not in converted:
                converted[key] = value
    problems = check_state_dict(model, converted)
    if problems:
        raise ValueError(f"{path}: the {source} checkpoint does not fit this config; "
                         + "; ".join(problems))
    model.load_state_dict(converted, strict=True)
    log.info("loaded %s checkpoint %s (%d tensors)", source, path, len(converted))
    return model
