"""Weights in from the reference implementations: pure ``state_dict -> state_dict`` functions.

Each source is a small table of key patterns (timm's ``checkpoint_filter_fn`` style); the
result loads with ``strict=True`` into ``build_model(cfg)``.

- ``timm``: ``mvitv2_*`` (nested ``stages.S.blocks.J``) and ``hiera_*_224`` (``head.norm``);
- ``torchvision``: ``mvit_v1_b``, ``mvit_v2_s`` (``conv_proj``, ``pos_encoding.*``,
  ``attn.project.0``, ``attn.pool_q.pool`` / ``norm_act.0``, ``mlp.0`` / ``mlp.3``);
- ``hiera``: facebookresearch/hiera and ``hiera-transformer`` (flat ``blocks.N``,
  ``head.projection``);
- ``slowfast``: SlowFast MViTv1 / MViTv2 video checkpoints (flat ``blocks.N``,
  ``attn.pool_q`` + ``attn.norm_q``, ``pos_embed_class``, ``head.projection``);
- ``mvit``: facebookresearch/mvit MViTv2 image checkpoints (as SlowFast, 2-D).
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
        return "slowfast"  # pool-first MViTv1: rejected with a clear message by the converter
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
        patch = state_dict.get("patch_embed.proj.weight")
        return "slowfast" if patch is not None and patch.ndim == 5 else "mvit"
    raise ValueError("checkpoint: cannot tell which implementation wrote it (keys: "
                     f"{sorted(keys)[:8]} ...); pass source= one of {', '.join(SOURCES)}")


def convert_state_dict(state_dict: Mapping[str, Any], source: str,
                       cfg: ArchConfig | str) -> dict[str, torch.Tensor]:
    """``state_dict`` of a ``source`` model, renamed and reshaped for ``build_model(cfg)``.

    Pure: the input is not modified and tensors are shared, not copied.
    """
    if source not in SOURCES:
        raise ValueError(f"source: unknown {source!r}; known: {', '.join(SOURCES)}")
    cfg = resolve_config(cfg)
    sd = unwrap_checkpoint(state_dict)
    if source in ("slowfast", "mvit") and any(".attn.q.weight" in k for k in sd):
        raise ValueError(f"checkpoint: separate attn.q / attn.k / attn.v weights are {source}'s "
                         "POOL_FIRST attention (pool before projecting), which mvit-lab does "
                         "not implement")
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
        if new in out:
            raise ValueError(f"checkpoint: keys {key!r} and another both map to {new!r}")
        out[new] = value
    return out


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


def load_pretrained(path: str | Path, cfg_or_preset: ArchConfig | str,
                    source: str | None = None, *, reset_head: bool = False) -> MultiscaleViT:
    """Build ``cfg_or_preset`` and load a reference checkpoint file into it, strictly.

    The file is read with ``torch.load(weights_only=True)``; ``source`` is detected from the
    key layout when not given. ``reset_head=True`` keeps the new model's freshly initialised
    classifier (to fine-tune on another label set) and loads everything else strictly. An
    MAE or encoder-only checkpoint leaves the head and its norm at their initialisation.
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
    cfg = resolve_config(cfg_or_preset)
    converted = convert_state_dict(sd, source, cfg)
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
