"""mvit-lab: architecture search and ablations over multiscale vision transformers."""

from mvit_lab.build import build_model, count_params, resolve_config
from mvit_lab.config import ArchConfig, BlockSpec, expand_blocks
from mvit_lab.convert import convert_state_dict, load_pretrained
from mvit_lab.models import MultiscaleViT
from mvit_lab.presets import get_config, get_preset, hiera_ladder, list_presets
from mvit_lab.reference import config_from_reference

__version__ = "0.1.0"

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
