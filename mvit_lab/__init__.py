"""mvit-lab: architecture search and ablations over multiscale vision transformers.

The public names are imported on first use (PEP 562): ``import mvit_lab.tracking`` or the
``mvit-lab pareto`` / ``dashboard`` commands then never pay for importing torch and the models
(seconds of CPU), while ``from mvit_lab import build_model`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mvit_lab.build import build_model, count_params, resolve_config
    from mvit_lab.config import ArchConfig, BlockSpec, expand_blocks
    from mvit_lab.convert import convert_state_dict, load_pretrained
    from mvit_lab.models import MultiscaleViT
    from mvit_lab.presets import get_config, get_preset, hiera_ladder, list_presets
    from mvit_lab.reference import config_from_reference

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "ArchConfig": "mvit_lab.config",
    "BlockSpec": "mvit_lab.config",
    "MultiscaleViT": "mvit_lab.models",
    "build_model": "mvit_lab.build",
    "config_from_reference": "mvit_lab.reference",
    "convert_state_dict": "mvit_lab.convert",
    "count_params": "mvit_lab.build",
    "expand_blocks": "mvit_lab.config",
    "get_config": "mvit_lab.presets",
    "get_preset": "mvit_lab.presets",
    "hiera_ladder": "mvit_lab.presets",
    "list_presets": "mvit_lab.presets",
    "load_pretrained": "mvit_lab.convert",
    "resolve_config": "mvit_lab.build",
}

__all__ = [
    "ArchConfig",
    "BlockSpec",
    "MultiscaleViT",
    "build_model",
    "config_from_reference",
    "convert_state_dict",
    "count_params",
    "expand_blocks",
    "get_config",
    "get_preset",
    "hiera_ladder",
    "list_presets",
    "load_pretrained",
    "resolve_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mvit_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
