"""Mask-unit masking for sparse MAE pretraining: which configs can run sparsely, and the masks.

A sparse forward deletes the masked mask units from the token sequence (no mask tokens), so the
encoder's cost falls with the mask ratio. Tokens then stay grouped by unit (see
``mvit_lab.models._layout.Units``) and every operation must stay inside a unit:

* ``mask_unit_size`` must be set (models without mask-unit attention get it from the
  ``pretrain`` section) and there is no cls token;
* every q, kv and skip pooling stride must split the unit it meets (a unit of 8x8 tokens can be
  pooled three times by 2x2, not four);
* an overlapping pooling kernel (``stride+1``, kv pooling at stride 1, any ``kernel != stride``)
  would read the neighbouring, possibly deleted, units: it runs *separate-and-pad* (each unit
  zero-padded on its own, the Hiera paper's treatment for MViTv2), which ``check_sparse``
  lists, because it differs from the dense model at unit borders;
* attention is within a unit in mask-unit-attention blocks and over all kept tokens
  otherwise; decomposed relative positions follow each kept token's true position.

Kernel = stride pooling, Hiera's design, needs none of this: its sparse forward equals the
dense one on the kept units.
"""

from __future__ import annotations

import math

import torch

from mvit_lab._validate import _fail
from mvit_lab.config import ArchConfig, Triple, _pooled, expand_blocks

__all__ = ["check_sparse", "ids_from_keep", "keep_from_ids", "num_units", "random_keep",
           "unit_counts"]


def unit_counts(cfg: ArchConfig) -> Triple:
    """Mask units along (T, H, W) of the patch grid."""
    if cfg.mask_unit_size is None:
        raise _fail("mask_unit_size", "sparse MAE masking deletes whole mask units, so the "
                                      "model needs a mask_unit_size (for a model without "
                                      "mask-unit attention, set pretrain.mask_unit_size)")
    return tuple(g // m for g, m in zip(cfg.patch_grid, cfg.mask_unit_size))  # type: ignore[return-value]


def check_sparse(cfg: ArchConfig) -> tuple[str, ...]:
    """Raise a ``ValueError`` naming the knob if ``cfg`` cannot run sparsely; else return the
    poolings that run separate-and-pad (empty when the sparse forward equals the dense one)."""
    counts = unit_counts(cfg)
    if cfg.cls_token:
        raise _fail("cls_token", "a sparse (MAE) forward has no cls token; set cls_token: "
                                 "false (head_pool: mean)")
    notes = []
    for spec in expand_blocks(cfg):
        where = f"stage {spec.stage} block {spec.index}"
        unit_in = tuple(g // c for g, c in zip(spec.in_grid, counts))
        pools = [("q", "q_stride", spec.q_kernel, spec.q_stride),
                 ("kv", "kv_stride", spec.kv_kernel, spec.kv_stride),
                 ("skip", "q_stride", spec.skip_kernel, spec.q_stride)]
        for kind, knob, kernel, stride in pools:
            if kernel is None:
                continue
            if any(u % s for u, s in zip(unit_in, stride)):
                raise _fail(knob, f"{where}: a mask unit is {unit_in} tokens here, which "
                                  f"{kind} pooling with stride {stride} cannot split without "
                                  f"crossing units; use a larger mask_unit_size or pool less")
            if kernel == stride:
                continue
            got = _pooled(unit_in, kernel, stride)
            want = tuple(u // s for u, s in zip(unit_in, stride))
            if got != want:
                raise _fail("pool_kernel" if kind != "skip" else "skip_pool_kernel",
                            f"{where}: {kind} pooling kernel {kernel} maps a {unit_in} unit "
                            f"to {got}, not {want}")
            notes.append(f"{where}: {kind} pooling kernel {kernel} stride {stride} "
                         "(separate-and-pad)")
    return tuple(notes)


def random_keep(batch: int, num_units: int, mask_ratio: float,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``[batch, num_units]`` bool, True = kept: ``int(num_units * (1 - mask_ratio))`` units
    per sample, uniformly at random (Hiera's ``get_random_mask``)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise _fail("mask_ratio", f"must be in [0, 1), got {mask_ratio}")
    keep = int(num_units * (1 - mask_ratio))
    if keep < 1:
        raise _fail("mask_ratio", f"{mask_ratio} keeps no unit of {num_units}; lower it or use "
                                  "smaller mask units")
    noise = torch.rand(batch, num_units, generator=generator, device=device)
    ranks = noise.argsort(dim=1).argsort(dim=1)  # rank of each unit's noise: small is kept
    return ranks < keep


def ids_from_keep(keep: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, N]`` (True = kept, the same count per sample) -> ascending kept ids
    ``[B, U]``."""
    if keep.dtype != torch.bool or keep.ndim != 2:
        raise ValueError(f"mask: expected a bool [batch, units] tensor, got {keep.dtype} "
                         f"{list(keep.shape)}")
    per_sample = keep.sum(dim=1)
    kept = int(per_sample[0])
    if kept < 1 or bool((per_sample != kept).any()):
        raise ValueError(f"mask: every sample must keep the same number (>= 1) of units, got "
                         f"{per_sample.tolist()}")
    # stable sort puts the kept units first, in ascending order
    return keep.int().argsort(dim=1, descending=True, stable=True)[:, :kept].sort(dim=1).values


def keep_from_ids(ids: torch.Tensor, num_units: int) -> torch.Tensor:
    """Ascending kept ids ``[B, U]`` -> bool ``[B, num_units]`` (True = kept)."""
    keep = torch.zeros(ids.shape[0], num_units, dtype=torch.bool, device=ids.device)
    return keep.scatter(1, ids, True)


def num_units(cfg: ArchConfig) -> int:
    """Mask units per input."""
    return math.prod(unit_counts(cfg))
