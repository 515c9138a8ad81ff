"""``build_model``: a preset name or an ArchConfig (plus overrides) in, a model out."""

from __future__ import annotations

from typing import Any

import torch

from mvit_lab.config import ArchConfig
from mvit_lab.models import MultiscaleViT
from mvit_lab.presets import get_config

__all__ = ["build_model", "count_params", "resolve_config"]


def resolve_config(cfg_or_name: ArchConfig | str, **overrides: Any) -> ArchConfig:
    """A validated config from a preset name or a config, with ``overrides`` applied."""
    if isinstance(cfg_or_name, str):
        return get_config(cfg_or_name, **overrides)
    if not isinstance(cfg_or_name, ArchConfig):
        raise TypeError("expected an ArchConfig or a preset name, got "
                        f"{type(cfg_or_name).__name__}")
    return cfg_or_name.replace(**overrides) if overrides else cfg_or_name


def build_model(cfg_or_name: ArchConfig | str, **overrides: Any) -> MultiscaleViT:
    """Build the model for a preset name or config; build under ``torch.device('meta')`` to
    count parameters without allocating."""
    return MultiscaleViT(resolve_config(cfg_or_name, **overrides))


def count_params(cfg_or_name: ArchConfig | str, **overrides: Any) -> int:
    """Parameters of the model, counted on the meta device (no weights are allocated)."""
    with torch.device("meta"):
        model = build_model(cfg_or_name, **overrides)
    return sum(p.numel() for p in model.parameters())
