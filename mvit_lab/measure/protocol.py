"""The timing protocol's data: dtypes, modes, the reference model and :class:`Protocol` (how
long to time, and when the timing is good enough; see :mod:`mvit_lab.measure.speed`).

Kept apart from the timing code so that checking a sweep's ``measure`` section (and the
``mvit-lab pareto`` command, which parses the sweep) does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DTYPES", "MODES", "REFERENCE", "Protocol", "reference_config"]

DTYPES = ("float32", "bfloat16", "float16")
MODES = ("infer", "train")
REFERENCE = "ref-v1"  # the reference model's name; a new one needs a new name


def reference_config() -> Any:
    """The reference model (``ref-v1``): a small MViTv2 on 16x16 inputs (depths 1-2-1, width
    16, one head), the size of the models CPU sweeps search over."""
    from mvit_lab.presets import get_config

    return get_config("mvitv2_t", input_size=(1, 16, 16), patch_kernel=(1, 3, 3),
                      patch_stride=(1, 2, 2), patch_padding=(0, 1, 1), depths=(1, 2, 1),
                      embed_dim=16, num_heads=1, kv_stride=(1, 2, 2), num_classes=10)


@dataclass(frozen=True)
class Protocol:
    """How long to time, and when the timing is good enough (see :mod:`mvit_lab.measure.speed`)."""

    warmup_s: float = 0.5
    block_s: float = 0.2
    min_blocks: int = 5
    max_blocks: int = 200
    target_spread: float = 0.03
    max_s: float = 30.0
    iters: int | None = None  # steps per block (None: as many as fill block_s)
    # with iters None, at least this many steps per block (a block's median of 3 training
    # steps moves with every hiccup), unless min_blocks such blocks would not fit in max_s
    min_iters: int = 10
    warmup_iters: int = 2  # at least this many warm-up steps, however long warmup_s is
    # time the reference model in alternate blocks (None: measure.costs decides by device)
    reference: bool | None = None

    def __post_init__(self) -> None:
        for name in ("warmup_s", "block_s", "max_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"protocol.{name}: must be a number > 0, got {value!r}")
        if not isinstance(self.min_blocks, int) or self.min_blocks < 1:
            raise ValueError(f"protocol.min_blocks: must be an integer >= 1, got "
                             f"{self.min_blocks!r}")
        if not isinstance(self.max_blocks, int) or self.max_blocks < self.min_blocks:
            raise ValueError(f"protocol.max_blocks: must be an integer >= min_blocks "
                             f"({self.min_blocks}), got {self.max_blocks!r}")
        for name in ("iters", "warmup_iters", "min_iters"):
            value = getattr(self, name)
            if (value is not None or name != "iters") and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"protocol.{name}: must be an integer >= 1, got {value!r}")
        if not isinstance(self.target_spread, (int, float)) or not self.target_spread > 0:
            raise ValueError(f"protocol.target_spread: must be a number > 0, got "
                             f"{self.target_spread!r}")
        if self.reference is not None and not isinstance(self.reference, bool):
            raise ValueError(f"protocol.reference: must be true, false or null (auto: on the "
                             f"CPU), got {self.reference!r}")

    @property
    def name(self) -> str:
        """A short label, shown beside every cost and part of the cache key."""
        if self.min_blocks == self.max_blocks and self.iters is not None:
            return (f"fixed(warmup {self.warmup_iters}, {self.min_blocks} blocks of "
                    f"{self.iters})")
        size = (f"{self.iters} steps" if self.iters
                else f"{self.block_s:g}s/{self.min_iters}+ steps")
        versus = f", vs {REFERENCE}" if self.reference else ""
        return (f"blocks-v3(warmup {self.warmup_s:g}s, {size} blocks, {self.min_blocks} "
                f"within {100 * self.target_spread:g}%, cap {self.max_s:g}s{versus})")

    @classmethod
    def fixed(cls, blocks: int, iters: int = 1, warmup: int = 2) -> Protocol:
        """Exactly ``warmup`` steps, then ``blocks`` blocks of ``iters`` steps, whatever their
        spread: side-by-side benchmarks that alternate models, and quick looks."""
        return cls(warmup_s=1e-9, min_blocks=blocks, max_blocks=blocks,
                   target_spread=1e9, max_s=1e9, iters=iters, warmup_iters=warmup)
