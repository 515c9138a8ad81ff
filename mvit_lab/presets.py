"""Named configs of the published models, each with its reference parameter count and GFLOPs.

``params`` is the exact count of the reference implementation named in ``source`` (1000
classes for images, 400 for Kinetics video), or, where no package ships the model
(``params_exact=False``), the paper's figure rounded to 0.1M. ``gflops`` is the paper's
published figure (multiply-adds, one 224px view / one clip), kept for orientation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mvit_lab.config import ArchConfig

__all__ = ["Preset", "get_config", "get_preset", "hiera_ladder", "list_presets", "register_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    make: Callable[[], ArchConfig]
    params: int
    gflops: float
    source: str
    params_exact: bool = True

    @property
    def config(self) -> ArchConfig:
        return self.make()


_REGISTRY: dict[str, Preset] = {}


def register_preset(name: str, make: Callable[[], ArchConfig], *, params: int, gflops: float,
                    source: str, params_exact: bool = True) -> Preset:
    if name in _REGISTRY:
        raise ValueError(f"preset {name!r} is already registered")
    preset = _REGISTRY[name] = Preset(name, make, params, gflops, source, params_exact)
    return preset


def list_presets() -> list[str]:
    return sorted(_REGISTRY)


def get_preset(name: str) -> Preset:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_presets())
        raise ValueError(f"preset: unknown name {name!r}; known: {known}") from None


def get_config(name: str, **overrides: Any) -> ArchConfig:
    """The preset's config, with ``overrides`` applied and validated."""
    return get_preset(name).config.replace(**overrides) if overrides else get_preset(name).config


# -- MViTv2 (Li et al. 2022): conv pooling, decomposed rel-pos, residual pooling ----------------
def _mvitv2(**kw: Any) -> Callable[[], ArchConfig]:
    return lambda: ArchConfig(**kw)


_V2 = "timm {} (MViTv2, Li et al. 2022)"
register_preset("mvitv2_t", _mvitv2(depths=(1, 2, 5, 2)),
                params=24_173_320, gflops=4.7, source=_V2.format("mvitv2_tiny"))
register_preset("mvitv2_s", _mvitv2(depths=(1, 2, 11, 2)),
                params=34_870_216, gflops=7.0, source=_V2.format("mvitv2_small"))
register_preset("mvitv2_b", _mvitv2(depths=(2, 3, 16, 3)),
                params=51_472_744, gflops=10.2, source=_V2.format("mvitv2_base"))
register_preset("mvitv2_l", _mvitv2(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2,
                                    expand_attn=False),
                params=217_992_952, gflops=42.1, source=_V2.format("mvitv2_large"))

# -- Hiera (Ryali et al. 2023): no conv, no rel-pos, kernel == stride max pooling, mask units --
_HIERA = dict(
    abs_pos="joint", rel_pos="none", pool_mode="max", pool_kernel="stride",
    q_pool_every_block=False, kv_stride=None, kv_pool_every_block=False,
    residual_pooling=False, skip_pool_kernel="stride", mask_unit_size=(1, 8, 8),
    mask_unit_attn=(True, True, False, False), head_norm="after",
)
_HIERA_VIDEO = dict(
    _HIERA, input_size=(16, 224, 224), num_classes=400, patch_kernel=(3, 7, 7),
    patch_stride=(2, 4, 4), patch_padding=(1, 3, 3), abs_pos="separate", mask_unit_size=(1, 8, 8),
)


def _hiera(base: dict[str, Any], **kw: Any) -> Callable[[], ArchConfig]:
    return lambda: ArchConfig(**{**base, **kw})


_H = "timm {} (Hiera, Ryali et al. 2023)"
register_preset("hiera_t", _hiera(_HIERA, depths=(1, 2, 7, 2)),
                params=27_910_216, gflops=4.9, source=_H.format("hiera_tiny_224"))
register_preset("hiera_s", _hiera(_HIERA, depths=(1, 2, 11, 2)),
                params=35_008_072, gflops=6.2, source=_H.format("hiera_small_224"))
register_preset("hiera_b", _hiera(_HIERA, depths=(2, 3, 16, 3)),
                params=51_524_968, gflops=9.4, source=_H.format("hiera_base_224"))
register_preset("hiera_b_plus", _hiera(_HIERA, depths=(2, 3, 16, 3), embed_dim=112, num_heads=2),
                params=69_896_616, gflops=12.5, source=_H.format("hiera_base_plus_224"))
register_preset("hiera_l", _hiera(_HIERA, depths=(2, 6, 36, 4), embed_dim=144, num_heads=2),
                params=213_739_912, gflops=40.3, source=_H.format("hiera_large_224"))
register_preset("hiera_h", _hiera(_HIERA, depths=(2, 6, 36, 4), embed_dim=256, num_heads=4),
                params=672_779_752, gflops=124.6, source=_H.format("hiera_huge_224"))

_HV = "hiera-transformer {} (Kinetics-400, 16x224)"
register_preset("hiera_b_16x224", _hiera(_HIERA_VIDEO, depths=(2, 3, 16, 3)),
                params=51_092_560, gflops=102.0, source=_HV.format("hiera_base_16x224"))
register_preset("hiera_b_plus_16x224",
                _hiera(_HIERA_VIDEO, depths=(2, 3, 16, 3), embed_dim=112, num_heads=2),
                params=69_392_240, gflops=133.0, source=_HV.format("hiera_base_plus_16x224"))
register_preset("hiera_l_16x224",
                _hiera(_HIERA_VIDEO, depths=(2, 6, 36, 4), embed_dim=144, num_heads=2),
                params=213_091_600, gflops=413.0, source=_HV.format("hiera_large_16x224"))

# -- MViTv1 (Fan et al. 2021) and MViTv2 video, as torchvision builds them ---------------------
_VIDEO = dict(input_size=(16, 224, 224), num_classes=400, patch_kernel=(3, 7, 7),
              patch_stride=(2, 4, 4), patch_padding=(1, 3, 3), cls_token=True, head_pool="cls",
              pool_kernel=(3, 3, 3), kv_stride=(1, 8, 8))
_MVITV1 = dict(depths=(1, 2, 11, 2), expand_attn=False, cls_token=True, head_pool="cls",
               rel_pos="none", q_pool_every_block=False, residual_pooling=False)

register_preset("mvitv1_b_16x4", lambda: ArchConfig(**{**_VIDEO, **_MVITV1}, abs_pos="separate"),
                params=36_610_672, gflops=70.5,
                source="torchvision mvit_v1_b (MViTv1-B 16x4, Fan et al. 2021)")
register_preset("mvitv2_s_16x4",
                lambda: ArchConfig(**_VIDEO, depths=(1, 2, 11, 2), rel_pos="spatiotemporal"),
                params=34_537_744, gflops=64.5,
                source="torchvision mvit_v2_s (MViTv2-S 16x4, Li et al. 2022)")
register_preset("mvitv1_b", lambda: ArchConfig(**_MVITV1, abs_pos="joint"),
                params=37_000_000, gflops=7.8, params_exact=False,
                source="MViTv1-B image (Fan et al. 2021: 37.0M, 7.8G); no package ships it")


# -- the Hiera paper's Table 1: MViTv2-L simplified step by step into Hiera-L ---------------------
def hiera_ladder() -> list[tuple[str, ArchConfig]]:
    """The cumulative steps from ``mvitv2_l`` to ``hiera_l`` (Hiera paper, Table 1).

    a. relative -> absolute positions; b. conv -> max pooling; c. no stride-1 pooling;
    d. kernel = stride (also on the skip path); e. no residual pooling; f. kv pooling ->
    mask-unit attention in stages 1-2; then the widening moved into attention and the head norm
    after pooling, as Hiera. The last step has exactly hiera_l's architecture.
    """
    steps: list[tuple[str, dict[str, Any]]] = [
        ("mvitv2_l", {}),
        ("a_abs_pos", dict(rel_pos="none", abs_pos="joint")),
        ("b_max_pool", dict(pool_mode="max")),
        ("c_no_stride1_pool", dict(q_pool_every_block=False, kv_pool_every_block=False)),
        ("d_kernel_eq_stride", dict(pool_kernel="stride", skip_pool_kernel="stride")),
        ("e_no_residual_pool", dict(residual_pooling=False)),
        ("f_mask_unit_attn", dict(kv_stride=None, mask_unit_size=(1, 8, 8),
                                  mask_unit_attn=(True, True, False, False))),
        ("hiera_l", dict(expand_attn=True, head_norm="after")),
    ]
    cfg = get_config("mvitv2_l")
    ladder = []
    for name, change in steps:
        cfg = cfg.replace(**change) if change else cfg
        ladder.append((name, cfg))
    return ladder
