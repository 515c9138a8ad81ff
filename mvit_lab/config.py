"""ArchConfig: one frozen, validated description of any MViTv1 / MViTv2 / Hiera-family model.

Every field is checked in ``__post_init__``; a config that cannot build or run raises a
``ValueError`` that starts with the offending field's name. ``expand_blocks(cfg)`` derives the
per-block settings (dims, heads, strides, kernels, token grids, mask-unit windows) as a pure
function; the model only reads those specs, so it can never disagree with the validation.

Conventions
-----------
* Sizes and strides are ``(T, H, W)`` triples, also for image models (``T == 1``), which take
  ``[B, C, H, W]`` inputs and use 2-D convolutions and pooling.
* Stage ``i`` has width ``embed_dim * dim_mul**i`` and ``num_heads * head_mul**i`` heads (each
  step truncated to an int, as Hiera does).
* ``expand_attn=True``: a stage's first block widens the channels inside its attention
  (MViTv2, Hiera). ``False``: the previous stage's last block widens them in its MLP (MViTv1,
  MViTv2-L).
* q is pooled with ``q_stride`` at the first block of each of the first ``q_pool`` stage
  transitions (``None``: all of them). ``kv_stride`` is the first stage's k/v stride, divided
  (floored at 1) by ``q_stride`` at each q-pooling transition.
* Pooling kernels: a triple, ``"stride"`` (kernel == stride, no overlap) or ``"stride+1"``
  (``s + 1`` where ``s > 1``, else 1). Padding is 0 when kernel == stride, else
  ``(kernel - 1) // 2``; a pool with kernel 1 and stride 1 is omitted.
* ``pool_first``: pool the block input (split into heads, ``dim // num_heads`` channels each)
  and then project q, k and v with three linears, instead of projecting first (MViT's
  ``POOL_FIRST`` ablation). The heads must then divide every block's input width too.
* ``mask_unit_size`` is in tokens of the patch grid. A block with mask-unit attention attends
  within windows covering one mask unit; a stage's first block still uses the previous
  stage's kind of attention (as Hiera).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mvit_lab._validate import (
    _as_bool,
    _as_choice,
    _as_float,
    _as_int,
    _as_triple,
    _fail,
)

__all__ = ["ArchConfig", "BlockSpec", "expand_blocks", "pool_padding", "resolve_kernel"]

Triple = tuple[int, int, int]

ABS_POS = ("none", "joint", "separate")
REL_POS = ("none", "spatial", "spatiotemporal")
POOL_MODES = ("conv", "max", "avg", "none")
KERNEL_RULES = ("stride", "stride+1")
HEAD_POOLS = ("mean", "cls")
HEAD_NORMS = ("before", "after")

# Bounds on sizes, so that validation accepts only what can be built: far above every published
# model (widest stage 2048 (Hiera-H), 48 blocks, 21,841 classes), below where a size overflows or
# building takes hours. The memory a config needs is checked by the CLI before it builds one.
MAX_WIDTH = 2**16  # channels of any stage, and of the MLPs' hidden layers times 4
MAX_BLOCKS = 1024  # blocks over all stages
MAX_CLASSES = 2**24


def resolve_kernel(kernel: Triple | str, stride: Triple) -> Triple:
    """The pooling kernel for ``stride`` under a triple or a rule (``stride`` / ``stride+1``)."""
    if kernel == "stride":
        return stride
    if kernel == "stride+1":
        return tuple(s + 1 if s > 1 else 1 for s in stride)  # type: ignore[return-value]
    return kernel  # type: ignore[return-value]


def pool_padding(kernel: Triple, stride: Triple) -> Triple:
    """Symmetric padding that maps a grid of size ``n`` to ``n // s`` (see module docstring)."""
    return tuple(0 if k == s else (k - 1) // 2 for k, s in zip(kernel, stride))  # type: ignore[return-value]


def _pooled(grid: Triple, kernel: Triple, stride: Triple) -> Triple:
    pad = pool_padding(kernel, stride)
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(grid, kernel, stride, pad))  # type: ignore[return-value]


@dataclass(frozen=True)
class BlockSpec:
    """Everything one transformer block needs, derived from an ArchConfig by ``expand_blocks``."""

    index: int
    stage: int
    dim: int  # input channels
    dim_out: int  # output channels
    attn_dim: int  # channels inside attention (dim_out if the block widens in attention)
    num_heads: int
    mlp_hidden: int
    in_grid: Triple  # token grid entering the block (T, H, W)
    q_grid: Triple  # token grid leaving the block
    kv_grid: Triple  # grid of the (pooled) keys and values
    q_stride: Triple
    q_kernel: Triple | None  # None: q is not pooled
    kv_stride: Triple
    kv_kernel: Triple | None  # None: k and v are not pooled
    skip_kernel: Triple | None  # max-pool kernel on the residual path when q is strided
    mask_unit_attn: bool
    q_window: Triple | None  # window on q_grid for mask-unit attention
    kv_window: Triple | None  # window on kv_grid for mask-unit attention
    rel_pos_size: Triple | None  # table lengths (t, h, w); t is 0 for spatial-only
    drop_path: float
    project_in_attn: bool  # dim != dim_out and the attention widens (skip = proj(norm1(x)))

    @property
    def head_dim(self) -> int:
        return self.attn_dim // self.num_heads

    @property
    def num_windows(self) -> int:
        if self.q_window is None:
            return 1
        return math.prod(g // w for g, w in zip(self.q_grid, self.q_window))


@dataclass(frozen=True)
class ArchConfig:
    """A multiscale vision transformer of the MViTv1 / MViTv2 / Hiera family (default MViTv2-B)."""

    # input
    input_size: Triple = (1, 224, 224)
    in_chans: int = 3
    num_classes: int = 1000
    # stem
    patch_kernel: Triple = (1, 7, 7)
    patch_stride: Triple = (1, 4, 4)
    patch_padding: Triple = (0, 3, 3)
    # stages
    depths: tuple[int, ...] = (2, 3, 16, 3)
    embed_dim: int = 96
    num_heads: int = 1
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    expand_attn: bool = True
    # tokens and positions
    cls_token: bool = False
    abs_pos: str = "none"
    rel_pos: str = "spatial"
    # pooling attention
    pool_mode: str = "conv"
    pool_kernel: Triple | str = (1, 3, 3)
    q_stride: Triple = (1, 2, 2)
    q_pool: int | None = None
    q_pool_every_block: bool = True
    kv_stride: Triple | None = (1, 4, 4)
    kv_pool_every_block: bool = True
    residual_pooling: bool = True
    residual_pooling_cls: bool = False  # timm's variant: also add pooled q to the cls token
    pool_first: bool = False  # pool the block input, then project q / k / v (MViT's POOL_FIRST)
    skip_pool_kernel: str = "stride+1"
    # mask units
    mask_unit_size: Triple | None = None
    mask_unit_attn: tuple[bool, ...] | None = None
    # regularisation, norms and head
    drop_path_rate: float = 0.0
    head_dropout: float = 0.0
    norm_eps: float = 1e-6
    head_pool: str = "mean"
    head_norm: str = "before"

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("input_size", _as_triple("input_size", self.input_size))
        set_("in_chans", _as_int("in_chans", self.in_chans))
        set_("num_classes", _as_int("num_classes", self.num_classes, maximum=MAX_CLASSES))
        set_("patch_kernel", _as_triple("patch_kernel", self.patch_kernel))
        set_("patch_stride", _as_triple("patch_stride", self.patch_stride))
        set_("patch_padding", _as_triple("patch_padding", self.patch_padding, minimum=0))
        depths = self.depths
        if isinstance(depths, (str, bytes)) or not isinstance(depths, Sequence) or not depths:
            raise _fail("depths", f"must be a non-empty list of blocks per stage, got {depths!r}")
        set_("depths", tuple(_as_int(f"depths[{i}]", d, maximum=MAX_BLOCKS)
                             for i, d in enumerate(depths)))
        if sum(self.depths) > MAX_BLOCKS:
            raise _fail("depths", f"has {sum(self.depths):,} blocks in all; mvit-lab builds at "
                                  f"most {MAX_BLOCKS}")
        set_("embed_dim", _as_int("embed_dim", self.embed_dim))
        set_("num_heads", _as_int("num_heads", self.num_heads))
        set_("dim_mul", _as_float("dim_mul", self.dim_mul, 0.0, low_open=True))
        set_("head_mul", _as_float("head_mul", self.head_mul, 0.0, low_open=True))
        set_("mlp_ratio", _as_float("mlp_ratio", self.mlp_ratio, 0.0, low_open=True))
        for name in ("qkv_bias", "expand_attn", "cls_token", "q_pool_every_block",
                     "kv_pool_every_block", "residual_pooling", "residual_pooling_cls",
                     "pool_first"):
            _as_bool(name, getattr(self, name))
        _as_choice("abs_pos", self.abs_pos, ABS_POS)
        _as_choice("rel_pos", self.rel_pos, REL_POS)
        _as_choice("pool_mode", self.pool_mode, POOL_MODES)
        if isinstance(self.pool_kernel, str):
            _as_choice("pool_kernel", self.pool_kernel, KERNEL_RULES)
        else:
            set_("pool_kernel", _as_triple("pool_kernel", self.pool_kernel))
        set_("q_stride", _as_triple("q_stride", self.q_stride))
        if self.q_pool is not None:
            set_("q_pool", _as_int("q_pool", self.q_pool, minimum=0))
        if self.kv_stride is not None:
            set_("kv_stride", _as_triple("kv_stride", self.kv_stride))
        _as_choice("skip_pool_kernel", self.skip_pool_kernel, KERNEL_RULES)
        if self.mask_unit_size is not None:
            set_("mask_unit_size", _as_triple("mask_unit_size", self.mask_unit_size))
        mu_attn = self.mask_unit_attn
        if mu_attn is not None:
            if isinstance(mu_attn, (str, bytes)) or not isinstance(mu_attn, Sequence):
                raise _fail("mask_unit_attn",
                            f"must be a list of booleans, one per stage, got {mu_attn!r}")
            mu_attn = tuple(_as_bool(f"mask_unit_attn[{i}]", v) for i, v in enumerate(mu_attn))
            if len(mu_attn) != len(self.depths):
                raise _fail("mask_unit_attn", f"has {len(mu_attn)} entries but depths has "
                                              f"{len(self.depths)} stages")
            # canonical form: None when no stage uses it, so changing depths stays easy
            set_("mask_unit_attn", mu_attn if any(mu_attn) else None)
        set_("drop_path_rate", _as_float("drop_path_rate", self.drop_path_rate, 0.0, 1.0))
        set_("head_dropout", _as_float("head_dropout", self.head_dropout, 0.0, 1.0))
        set_("norm_eps", _as_float("norm_eps", self.norm_eps, 0.0, low_open=True))
        # a norm_eps that rounds to 0 in float32 gives 0 / 0 = NaN on a constant channel
        if struct.unpack("f", struct.pack("f", self.norm_eps))[0] == 0.0:
            raise _fail("norm_eps", f"{self.norm_eps:g} is 0 in float32 (smallest positive "
                                    "1.4e-45); a constant channel (embed_dim 1) would give NaN")
        _as_choice("head_pool", self.head_pool, HEAD_POOLS)
        _as_choice("head_norm", self.head_norm, HEAD_NORMS)
        self._check_combinations()
        expand_blocks(self)  # the derivation checks every per-block rule

    # -- rules that tie fields together -------------------------------------------------------
    def _check_combinations(self) -> None:
        n_stages = len(self.depths)
        if self.q_pool is not None and self.q_pool > n_stages - 1:
            raise _fail("q_pool", f"is {self.q_pool} but {n_stages} stages have only "
                                  f"{n_stages - 1} transitions")
        if self.is_image:
            for name in ("patch_kernel", "patch_stride", "q_stride", "kv_stride",
                         "mask_unit_size", "pool_kernel"):
                value = getattr(self, name)
                if isinstance(value, tuple) and value[0] != 1:
                    raise _fail(name, f"an image model (input_size T == 1) needs T == 1 here, "
                                      f"got {value}")
            if self.patch_padding[0] != 0:
                raise _fail("patch_padding", "an image model (input_size T == 1) needs T "
                                             f"padding 0, got {self.patch_padding}")
            if self.abs_pos == "separate":
                raise _fail("abs_pos", "'separate' (space and time tables) needs a video "
                                       "model (input_size T > 1); use 'joint' for images")
            if self.rel_pos == "spatiotemporal":
                raise _fail("rel_pos", "'spatiotemporal' needs a video model (input_size "
                                       "T > 1); use 'spatial' for images")
        if self.pool_mode == "none":
            if self.num_q_pools > 0:
                raise _fail("q_pool", f"pool_mode 'none' cannot pool q at {self.num_q_pools} "
                                      "stage transitions; set q_pool: 0")
            if self.kv_stride is not None:
                raise _fail("kv_stride",
                            "pool_mode 'none' cannot pool k and v; set kv_stride: null")
            if self.q_pool_every_block:
                raise _fail("q_pool_every_block", "pool_mode 'none' cannot pool q; set it false")
        if self.mask_unit_attn is not None:
            if self.mask_unit_size is None:
                raise _fail("mask_unit_size",
                            "is required when any stage uses mask-unit attention")
            if self.cls_token:
                raise _fail("cls_token", "a cls token belongs to no mask unit; mask-unit "
                                         "attention needs cls_token: false")
        if self.head_pool == "cls" and not self.cls_token:
            raise _fail("head_pool", "'cls' needs cls_token: true")

    # -- derived quantities -------------------------------------------------------------------
    @property
    def is_image(self) -> bool:
        return self.input_size[0] == 1

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def num_q_pools(self) -> int:
        return self.num_stages - 1 if self.q_pool is None else self.q_pool

    @property
    def patch_grid(self) -> Triple:
        return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(  # type: ignore[return-value]
            self.input_size, self.patch_kernel, self.patch_stride, self.patch_padding))

    @property
    def stage_dims(self) -> tuple[int, ...]:
        dims = [self.embed_dim]
        for _ in range(1, self.num_stages):
            dims.append(int(dims[-1] * self.dim_mul))
        return tuple(dims)

    @property
    def stage_heads(self) -> tuple[int, ...]:
        heads = [self.num_heads]
        for _ in range(1, self.num_stages):
            heads.append(int(heads[-1] * self.head_mul))
        return tuple(heads)

    @property
    def stage_mask_unit_attn(self) -> tuple[bool, ...]:
        """Per stage: does it use mask-unit attention (``mask_unit_attn``, None = none)?"""
        return self.mask_unit_attn or (False,) * self.num_stages

    @property
    def num_features(self) -> int:
        return self.stage_dims[-1]

    def replace(self, **overrides: Any) -> ArchConfig:
        """A new, validated config with ``overrides``; unknown names are a ValueError."""
        unknown = sorted(set(overrides) - set(knob_names()))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an ArchConfig field (known: "
                             f"{', '.join(knob_names())})")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as plain JSON-able values (tuples become lists)."""
        return {name: _plain(getattr(self, name)) for name in knob_names()}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@functools.cache
def knob_names() -> tuple[str, ...]:
    """The names of ArchConfig's fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(ArchConfig))


def expand_blocks(cfg: ArchConfig) -> tuple[BlockSpec, ...]:
    """The per-block specs of ``cfg``: walk the stages, raising where a rule breaks."""
    grid = cfg.patch_grid
    if min(grid) < 1:
        raise _fail("patch_kernel", f"with patch_stride {cfg.patch_stride} and patch_padding "
                                    f"{cfg.patch_padding} leaves no tokens from input_size "
                                    f"{cfg.input_size}")
    if cfg.mask_unit_size is not None:
        for axis, (g, m) in enumerate(zip(grid, cfg.mask_unit_size)):
            if g % m:
                raise _fail("mask_unit_size", f"{cfg.mask_unit_size} does not divide the "
                                              f"patch grid {grid} (axis {'THW'[axis]})")
    _check_sizes(cfg)
    dims, heads = cfg.stage_dims, cfg.stage_heads
    for stage, (d, h) in enumerate(zip(dims, heads)):
        if h < 1:
            raise _fail("head_mul", f"gives stage {stage} {h} heads")
        if d < 1:
            raise _fail("dim_mul", f"gives stage {stage} width {d}")
        if d % h:
            raise _fail("num_heads", f"stage {stage} has {h} heads, which do not divide its "
                                     f"width {d} (embed_dim * dim_mul**{stage})")
    total = sum(cfg.depths)
    drop = [cfg.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    pool = cfg.pool_mode != "none"
    ones: Triple = (1, 1, 1)
    kv_stride = cfg.kv_stride
    cum_stride = ones  # product of q strides so far, to size mask units in tokens
    specs: list[BlockSpec] = []
    index = 0
    for stage, depth in enumerate(cfg.depths):
        q_pools_here = 0 < stage <= cfg.num_q_pools
        if q_pools_here and kv_stride is not None:
            kv_stride = tuple(max(k // q, 1) for k, q in zip(kv_stride, cfg.q_stride))  # type: ignore[assignment]
        for j in range(depth):
            first = j == 0
            last = j == depth - 1
            if cfg.expand_attn:
                dim = dims[stage - 1] if first and stage > 0 else dims[stage]
                dim_out = attn_dim = dims[stage]
            else:
                dim = attn_dim = dims[stage]
                dim_out = dims[stage + 1] if last and stage < cfg.num_stages - 1 else dims[stage]
            n_heads = heads[stage]
            where = f"stage {stage} block {j}"
            q_stride = cfg.q_stride if first and q_pools_here else ones
            strided = q_stride != ones
            q_kernel = None
            if pool and (strided or cfg.q_pool_every_block):
                q_kernel = resolve_kernel(cfg.pool_kernel, q_stride)
                if q_kernel == ones and not strided:
                    q_kernel = None
            q_grid = _check_pool("q_stride", "pool_kernel", grid, q_kernel, q_stride, where)
            kv_kernel, kv_block_stride = None, ones
            if kv_stride is not None and (kv_stride != ones or cfg.kv_pool_every_block):
                kv_block_stride = kv_stride
                kv_kernel = resolve_kernel(cfg.pool_kernel, kv_stride)
                if kv_kernel == ones and kv_stride == ones:
                    kv_kernel, kv_block_stride = None, ones
            kv_grid = _check_pool("kv_stride", "pool_kernel", grid, kv_kernel, kv_block_stride,
                                  where)
            skip_kernel = resolve_kernel(cfg.skip_pool_kernel, q_stride) if strided else None
            if skip_kernel is not None:
                _check_pool("q_stride", "skip_pool_kernel", grid, skip_kernel, q_stride, where)
            # like Hiera, a stage's first block keeps the previous stage's kind of attention
            mu_attn = cfg.stage_mask_unit_attn[stage - 1 if first and stage > 0 else stage]
            out_stride = tuple(c * s for c, s in zip(cum_stride, q_stride))
            q_window = kv_window = None
            if mu_attn:
                q_window = _window(cfg.mask_unit_size, out_stride, where)  # type: ignore[arg-type]
                in_window = _window(cfg.mask_unit_size, cum_stride, where)  # type: ignore[arg-type]
                kv_window = _window(in_window, kv_block_stride, where, by="kv_stride")
            rel = None
            if cfg.rel_pos != "none":
                span_q = q_window or q_grid
                span_k = kv_window or kv_grid
                sizes = [2 * max(a, b) - 1 for a, b in zip(span_q, span_k)]
                if cfg.rel_pos == "spatial":
                    sizes[0] = 0
                rel = tuple(sizes)
            if attn_dim % n_heads:
                raise _fail("num_heads",
                            f"{where}: {n_heads} heads do not divide width {attn_dim}")
            if cfg.pool_first and dim % n_heads:
                raise _fail("num_heads", f"{where}: pool_first pools the block input per head, "
                                         f"and {n_heads} heads do not divide its width {dim}")
            specs.append(BlockSpec(
                index=index, stage=stage, dim=dim, dim_out=dim_out, attn_dim=attn_dim,
                num_heads=n_heads, mlp_hidden=max(1, int(attn_dim * cfg.mlp_ratio)),
                in_grid=grid, q_grid=q_grid, kv_grid=kv_grid, q_stride=q_stride,
                q_kernel=q_kernel, kv_stride=kv_block_stride, kv_kernel=kv_kernel,
                skip_kernel=skip_kernel, mask_unit_attn=mu_attn, q_window=q_window,
                kv_window=kv_window, rel_pos_size=rel, drop_path=drop[index],  # type: ignore[arg-type]
                project_in_attn=cfg.expand_attn and dim != dim_out,
            ))
            grid, cum_stride = q_grid, out_stride  # type: ignore[assignment]
            index += 1
    return tuple(specs)


def _check_sizes(cfg: ArchConfig) -> None:
    """Stage widths, heads and MLP widths within bounds, checked in floats (no overflow)."""
    dim, heads = float(cfg.embed_dim), float(cfg.num_heads)
    for stage in range(cfg.num_stages):
        if stage:
            dim, heads = dim * cfg.dim_mul, heads * cfg.head_mul
        if dim > MAX_WIDTH:
            name = "embed_dim" if stage == 0 else "dim_mul"
            raise _fail(name, f"gives stage {stage} width {dim:.4g}; mvit-lab builds at most "
                              f"{MAX_WIDTH:,} channels")
        if heads > dim:
            name = "num_heads" if stage == 0 else "head_mul"
            raise _fail(name, f"gives stage {stage} {heads:.4g} heads for width {dim:.4g}")
        dim, heads = math.floor(dim), math.floor(heads)  # as stage_dims / stage_heads truncate
        if dim * cfg.mlp_ratio > 4 * MAX_WIDTH:
            raise _fail("mlp_ratio", f"gives stage {stage} an MLP {dim * cfg.mlp_ratio:.4g} "
                                     f"wide; mvit-lab builds at most {4 * MAX_WIDTH:,}")


def _check_pool(stride_name: str, kernel_name: str, grid: Triple, kernel: Triple | None,
                stride: Triple, where: str) -> Triple:
    """The grid after pooling; strides must divide the grid and kernels must keep n // s."""
    for axis, (n, s) in enumerate(zip(grid, stride)):
        if n % s:
            raise _fail(stride_name, f"{where}: stride {stride} does not divide the token "
                                     f"grid {grid} (axis {'THW'[axis]})")
    if kernel is None:
        return grid
    want = tuple(n // s for n, s in zip(grid, stride))
    got = _pooled(grid, kernel, stride)
    if got != want:
        raise _fail(kernel_name, f"{where}: kernel {kernel} with stride {stride} maps grid "
                                 f"{grid} to {got}, not {want} (an even kernel needs stride >= 2)")
    return want  # type: ignore[return-value]


def _window(size: Triple, stride: Sequence[int], where: str, by: str = "q_stride") -> Triple:
    for axis, (m, s) in enumerate(zip(size, stride)):
        if m % s:
            raise _fail("mask_unit_size", f"{where}: mask unit {size} cannot be split by the "
                                          f"{by} product {tuple(stride)} (axis {'THW'[axis]})")
    return tuple(m // s for m, s in zip(size, stride))  # type: ignore[return-value]
