"""The generator: attention, block and the top-level model."""

from mvit_lab.models.attention import MultiScaleAttention
from mvit_lab.models.block import MultiScaleBlock
from mvit_lab.models.mvit import MultiscaleViT

__all__ = ["MultiScaleAttention", "MultiScaleBlock", "MultiscaleViT"]
