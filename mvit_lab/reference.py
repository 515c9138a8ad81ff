"""``config_from_reference``: the ArchConfig equal to a reference implementation's model.

``config_from_reference(source, name, **kwargs)`` reads the reference's model name and its own
constructor keyword arguments (the ones its builder forwards), without importing the
reference package:

* ``timm``: ``mvitv2_*`` (``MultiScaleVit`` arguments plus any ``MultiScaleVitCfg`` field)
  and ``hiera_*_224`` (``Hiera`` arguments);
* ``hiera``: the official ``hiera-transformer`` builders (``hiera_*_224``, ``hiera_*_16x224``);
* ``torchvision``: ``mvit_v1_b`` and ``mvit_v2_s`` (builder and ``MViT`` arguments, including
  a custom ``block_setting``).

* ``slowfast`` and ``mvit``: SlowFast's and facebookresearch/mvit's ``MViT(cfg)``, configured
  by YAML: ``name`` is a config file (``configs/ImageNet/MVIT_B_16_CONV.yaml``), YAML text or
  a parsed mapping, merged over the repository's defaults; ``kwargs`` are sections to merge
  on top (``DATA={"TRAIN_CROP_SIZE": 64}``). ``config_from_checkpoint`` reads the ``cfg`` that
  their ``save_checkpoint`` embeds in every checkpoint.

A reference option that the generator cannot express exactly is a ``ValueError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mvit_lab import _slowfast_cfg
from mvit_lab.config import ArchConfig, expand_blocks, resolve_kernel

__all__ = ["checkpoint_reference_cfg", "config_from_checkpoint", "config_from_reference"]

# timm's model_cfgs (timm/models/mvitv2.py), MultiScaleVitCfg fields that differ from defaults
_TIMM_MVITV2 = {
    "mvitv2_tiny": dict(depths=(1, 2, 5, 2)),
    "mvitv2_small": dict(depths=(1, 2, 11, 2)),
    "mvitv2_base": dict(depths=(2, 3, 16, 3)),
    "mvitv2_large": dict(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2, expand_attn=False),
    "mvitv2_small_cls": dict(depths=(1, 2, 11, 2), use_cls_token=True),
    "mvitv2_base_cls": dict(depths=(2, 3, 16, 3), use_cls_token=True),
    "mvitv2_large_cls": dict(depths=(2, 6, 36, 4), embed_dim=144, num_heads=2,
                             use_cls_token=True, expand_attn=True),
    "mvitv2_huge_cls": dict(depths=(4, 8, 60, 8), embed_dim=192, num_heads=3,
                            use_cls_token=True, expand_attn=True),
}
_TIMM_MVITV2_DEFAULTS = dict(
    depths=(2, 3, 16, 3), embed_dim=96, num_heads=1, mlp_ratio=4.0, pool_first=False,
    expand_attn=True, qkv_bias=True, use_cls_token=False, use_abs_pos=False,
    residual_pooling=True, mode="conv", kernel_qkv=(3, 3),
    stride_q=((1, 1), (2, 2), (2, 2), (2, 2)), stride_kv=None, stride_kv_adaptive=(4, 4),
    patch_kernel=(7, 7), patch_stride=(4, 4), patch_padding=(3, 3), pool_type="max",
    rel_pos_type="spatial", act_layer="gelu", norm_layer="layernorm", norm_eps=1e-6,
    img_size=(224, 224), in_chans=3, global_pool=None, num_classes=1000, drop_path_rate=0.0,
    drop_rate=0.0,
)

# the official builders (hiera/hiera.py); timm's hiera_*_224 use the same arguments
_HIERA = {
    "hiera_tiny_224": dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2)),
    "hiera_small_224": dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2)),
    "hiera_base_224": dict(embed_dim=96, num_heads=1, stages=(2, 3, 16, 3)),
    "hiera_base_plus_224": dict(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3)),
    "hiera_large_224": dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4)),
    "hiera_huge_224": dict(embed_dim=256, num_heads=4, stages=(2, 6, 36, 4)),
}
_HIERA_VIDEO_BASE = dict(num_classes=400, input_size=(16, 224, 224), q_stride=(1, 2, 2),
                         mask_unit_size=(1, 8, 8), patch_kernel=(3, 7, 7),
                         patch_stride=(2, 4, 4), patch_padding=(1, 3, 3), sep_pos_embed=True)
for _name, _size in (("base", {}), ("base_plus", dict(embed_dim=112, num_heads=2)),
                     ("large", dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4))),
                     ("huge", dict(embed_dim=256, num_heads=4, stages=(2, 6, 36, 4)))):
    _HIERA[f"hiera_{_name}_16x224"] = dict(_HIERA_VIDEO_BASE, **_size)
_HIERA_DEFAULTS = dict(
    input_size=(224, 224), in_chans=3, embed_dim=96, num_heads=1, num_classes=1000,
    stages=(2, 3, 16, 3), q_pool=3, q_stride=(2, 2), mask_unit_size=(8, 8),
    mask_unit_attn=(True, True, False, False), dim_mul=2.0, head_mul=2.0, patch_kernel=(7, 7),
    patch_stride=(4, 4), patch_padding=(3, 3), mlp_ratio=4.0, drop_path_rate=0.0,
    norm_layer="LayerNorm", head_dropout=0.0, head_init_scale=0.001, sep_pos_embed=False,
)
# timm's Hiera: its own names for a few arguments, and options the original does not have
_TIMM_HIERA_EXTRA = dict(global_pool="avg", use_expand_proj=True, init_values=None,
                         fix_init=True, weight_init="", drop_rate=0.0, patch_drop_rate=0.0,
                         abs_win_pos_embed=False, global_pos_size=(14, 14))

# torchvision's builders (torchvision/models/video/mvit.py)
_TORCHVISION = {
    "mvit_v1_b": dict(residual_pool=False, residual_with_cls_embed=True, rel_pos_embed=False,
                      proj_after_attn=False),
    "mvit_v2_s": dict(residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True,
                      proj_after_attn=True),
}
_TORCHVISION_DEFAULTS = dict(
    spatial_size=(224, 224), temporal_size=16, num_classes=400, dropout=0.5,
    attention_dropout=0.0, stochastic_depth_prob=0.2, norm_layer=None,
    patch_embed_kernel=(3, 7, 7), patch_embed_stride=(2, 4, 4), patch_embed_padding=(1, 3, 3),
)


def config_from_reference(source: str, name: str, **kwargs: Any) -> ArchConfig:
    """The config of the model that reference ``source`` builds from ``name`` and ``kwargs``."""
    if source == "timm":
        if name in _TIMM_MVITV2:
            return _from_timm_mvitv2(name, kwargs)
        if name in _HIERA and name.endswith("_224"):
            return _from_hiera(name, kwargs, timm=True)
        known = sorted(_TIMM_MVITV2) + sorted(n for n in _HIERA if n.endswith("_224"))
    elif source == "hiera":
        if name in _HIERA:
            return _from_hiera(name, kwargs, timm=False)
        known = sorted(_HIERA)
    elif source == "torchvision":
        if name in _TORCHVISION:
            return _from_torchvision(name, kwargs)
        known = sorted(_TORCHVISION)
    elif source in ("slowfast", "mvit"):
        return _from_yaml(source, _slowfast_cfg.parse_cfg(name, "name"), kwargs)
    else:
        raise ValueError(f"source: unknown {source!r}; known: timm, torchvision, hiera, "
                         "slowfast, mvit")
    raise ValueError(f"name: {source} has no model {name!r} that mvit-lab reproduces; "
                     f"known: {', '.join(known)}")


def checkpoint_reference_cfg(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config a SlowFast / mvit ``save_checkpoint`` stored in ``obj["cfg"]`` (its YAML dump),
    parsed; None when ``obj`` has none."""
    value = obj.get("cfg") if isinstance(obj, Mapping) else None
    if value is None or (isinstance(value, Mapping) and not value):
        return None
    if not isinstance(value, (str, Mapping)):
        raise ValueError(f"checkpoint: its cfg entry is a {type(value).__name__}, not the YAML "
                         "text SlowFast and mvit store")
    return _slowfast_cfg.parse_cfg(value, "checkpoint cfg")


def config_from_checkpoint(obj: Mapping[str, Any], source: str | None = None) -> ArchConfig:
    """The ArchConfig of a SlowFast / facebookresearch/mvit checkpoint, from the ``cfg`` it
    embeds. ``source``: ``slowfast`` or ``mvit``; by default read off the config (only
    SlowFast's has ``MVIT.PATCH_2D``)."""
    cfg = checkpoint_reference_cfg(obj)
    if cfg is None:
        raise ValueError("checkpoint: has no cfg entry to read the architecture from; pass a "
                         "preset or an ArchConfig")
    if source is None or "PATCH_2D" in (cfg.get("MVIT") or {}):
        source = "slowfast" if "PATCH_2D" in (cfg.get("MVIT") or {}) else source or "mvit"
    if source not in ("slowfast", "mvit"):
        raise ValueError(f"source: {source!r} checkpoints embed no config (slowfast, mvit do)")
    try:
        return _from_yaml(source, cfg, {})
    except ValueError as err:
        raise ValueError(f"checkpoint cfg: {err}") from None


def _from_yaml(source: str, cfg: Mapping[str, Any], overrides: Mapping[str, Any]) -> ArchConfig:
    c = _slowfast_cfg.merged_cfg(source, cfg, overrides)
    common = _slowfast_cfg.slowfast_common(source, c)
    rows = _slowfast_cfg.slowfast_blocks(source, c)
    return _infer_blocks(rows, common, field="MVIT", ref=source)


def _merge(source: str, defaults: Mapping[str, Any], base: Mapping[str, Any],
           kwargs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(f"{unknown[0]}: not an argument of the {source} model (known: "
                         f"{', '.join(sorted(defaults))})")
    return {**defaults, **base, **kwargs}


def _require(arg: str, value: Any, allowed: Any, source: str) -> None:
    if value != allowed:
        raise ValueError(f"{arg}: {source} option {value!r} has no mvit-lab equivalent "
                         f"(supported: {allowed!r})")


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _triple(value: Sequence[int], t: int = 1) -> tuple[int, int, int]:
    value = tuple(value)
    return value if len(value) == 3 else (t, *value)  # type: ignore[return-value]


def _geometric(arg: str, value: Any, n: int) -> tuple[int, float]:
    """timm accepts per-stage tuples; mvit-lab needs ``base * mul**i``."""
    if isinstance(value, int):
        return value, 2.0
    value = tuple(value)
    mul = value[1] / value[0] if len(value) > 1 else 2.0
    if len(value) != n or any(int(value[0] * mul**i) != v for i, v in enumerate(value)):
        raise ValueError(f"{arg}: per-stage values {value} are not a geometric series "
                         "base * mul**i, which mvit-lab's config requires")
    return value[0], mul


def _from_timm_mvitv2(name: str, kwargs: Mapping[str, Any]) -> ArchConfig:
    a = _merge("timm MultiScaleVit", _TIMM_MVITV2_DEFAULTS, _TIMM_MVITV2[name], kwargs)
    src = "timm mvitv2"
    if a["pool_first"]:
        # timm 1.0's MultiScaleAttentionPoolFirst leaves k untransposed: its forward fails
        raise ValueError("pool_first: timm's pool-first attention does not run (a shape error "
                         "in its forward); mvit-lab's pool_first knob follows SlowFast's "
                         "POOL_FIRST: config_from_reference('slowfast', ...)")
    _require("act_layer", a["act_layer"], "gelu", src)
    _require("norm_layer", a["norm_layer"], "layernorm", src)
    if a["mode"] not in ("conv", "max", "avg"):
        raise ValueError(f"mode: {src} pooling {a['mode']!r} has no mvit-lab equivalent")
    if a["rel_pos_type"] not in ("spatial", "none", ""):
        raise ValueError(f"rel_pos_type: {src} {a['rel_pos_type']!r} is not supported")
    depths = tuple(a["depths"])
    n = len(depths)
    embed_dim, dim_mul = _geometric("embed_dim", a["embed_dim"], n)
    num_heads, head_mul = _geometric("num_heads", a["num_heads"], n)
    stride_q = [_pair(s) for s in a["stride_q"]]
    if len(stride_q) != n:
        raise ValueError(f"stride_q: {len(stride_q)} entries for {n} stages")
    pooled = [i for i, s in enumerate(stride_q) if s != (1, 1)]
    if stride_q[0] != (1, 1) or pooled != list(range(1, len(pooled) + 1)) or len(
            {stride_q[i] for i in pooled}) > 1:
        raise ValueError(f"stride_q: {a['stride_q']} is not one stride at the first "
                         "q_pool stage transitions, as mvit-lab's q_stride / q_pool")
    q_stride = (1, *stride_q[pooled[0]]) if pooled else (1, 2, 2)
    kv_stride = None
    if a["stride_kv"] is not None:
        kv_stride = (1, *_pair(a["stride_kv"][0]))
    elif a["stride_kv_adaptive"] is not None:
        kv_stride = (1, *_pair(a["stride_kv_adaptive"]))
    kernel = (1, *_pair(a["kernel_qkv"]))
    cls = bool(a["use_cls_token"])
    global_pool = a["global_pool"] or ("token" if cls else "avg")
    if global_pool not in ("token", "avg"):
        raise ValueError(f"global_pool: {src} {global_pool!r} is not supported (token, avg)")
    cfg = ArchConfig(
        input_size=(1, *_pair(a["img_size"])), in_chans=a["in_chans"],
        num_classes=a["num_classes"], patch_kernel=(1, *_pair(a["patch_kernel"])),
        patch_stride=(1, *_pair(a["patch_stride"])),
        patch_padding=(0, *_pair(a["patch_padding"])), depths=depths, embed_dim=embed_dim,
        num_heads=num_heads, dim_mul=dim_mul, head_mul=head_mul, mlp_ratio=a["mlp_ratio"],
        qkv_bias=a["qkv_bias"], expand_attn=a["expand_attn"], cls_token=cls,
        abs_pos="joint" if a["use_abs_pos"] else "none",
        rel_pos="spatial" if a["rel_pos_type"] == "spatial" else "none",
        pool_mode=a["mode"], pool_kernel=kernel, q_stride=q_stride,
        q_pool=None if len(pooled) == n - 1 else len(pooled),
        q_pool_every_block=math.prod(kernel) > 1, kv_stride=kv_stride,
        kv_pool_every_block=True, residual_pooling=a["residual_pooling"],
        residual_pooling_cls=cls and a["residual_pooling"], skip_pool_kernel="stride+1",
        drop_path_rate=a["drop_path_rate"], head_dropout=a["drop_rate"],
        norm_eps=a["norm_eps"], head_pool="cls" if global_pool == "token" else "mean",
        head_norm="before",
    )
    if a["stride_kv"] is not None:
        got = [s.kv_stride[1:] for s in expand_blocks(cfg) if s.index in _stage_starts(cfg)]
        if [_pair(s) for s in a["stride_kv"]] != got:
            raise ValueError(f"stride_kv: {a['stride_kv']} is not the first stage's stride "
                             f"divided at each q-pooling transition ({got})")
    return cfg


def _stage_starts(cfg: ArchConfig) -> set[int]:
    return {sum(cfg.depths[:i]) for i in range(cfg.num_stages)}


def _from_hiera(name: str, kwargs: Mapping[str, Any], timm: bool) -> ArchConfig:
    defaults = dict(_HIERA_DEFAULTS)
    base = dict(_HIERA[name])
    if timm:
        # timm names the input img_size and the head dropout drop_rate
        defaults.pop("input_size")
        defaults.pop("head_dropout")
        defaults.update(_TIMM_HIERA_EXTRA, img_size=(224, 224))
    a = _merge("timm Hiera" if timm else "hiera Hiera", defaults, base, kwargs)
    src = "timm hiera" if timm else "hiera"
    if timm:
        for arg in ("use_expand_proj", "init_values", "abs_win_pos_embed", "global_pool"):
            _require(arg, a[arg], _TIMM_HIERA_EXTRA[arg], src)
    if a["norm_layer"] not in ("LayerNorm", "layernorm"):
        raise ValueError(f"norm_layer: {src} {a['norm_layer']!r} is not supported (LayerNorm)")
    size = tuple(a["img_size" if timm else "input_size"])
    video = len(size) == 3
    if a["sep_pos_embed"] and not video:
        raise ValueError(f"sep_pos_embed: {src} separate position tables need a video input")
    return ArchConfig(
        input_size=_triple(size), in_chans=a["in_chans"], num_classes=a["num_classes"],
        patch_kernel=_triple(a["patch_kernel"]), patch_stride=_triple(a["patch_stride"]),
        patch_padding=_triple(a["patch_padding"], 0), depths=tuple(a["stages"]),
        embed_dim=a["embed_dim"], num_heads=a["num_heads"], dim_mul=a["dim_mul"],
        head_mul=a["head_mul"], mlp_ratio=a["mlp_ratio"], qkv_bias=True, expand_attn=True,
        cls_token=False, abs_pos="separate" if a["sep_pos_embed"] else "joint",
        rel_pos="none", pool_mode="max", pool_kernel="stride",
        q_stride=_triple(a["q_stride"]),
        q_pool=None if a["q_pool"] == len(a["stages"]) - 1 else a["q_pool"],
        q_pool_every_block=False,
        kv_stride=None, kv_pool_every_block=False, residual_pooling=False,
        skip_pool_kernel="stride", mask_unit_size=_triple(a["mask_unit_size"]),
        mask_unit_attn=tuple(a["mask_unit_attn"]), drop_path_rate=a["drop_path_rate"],
        head_dropout=a["drop_rate" if timm else "head_dropout"], norm_eps=1e-6,
        head_pool="mean", head_norm="after",
    )


def _field(block: Any, name: str) -> Any:
    return block[name] if isinstance(block, Mapping) else getattr(block, name)


def _from_torchvision(name: str, kwargs: Mapping[str, Any]) -> ArchConfig:
    defaults = {**_TORCHVISION_DEFAULTS, **_TORCHVISION["mvit_v1_b"], "block_setting": None}
    a = _merge("torchvision MViT", defaults, _TORCHVISION[name], kwargs)
    if a["norm_layer"] is not None:
        raise ValueError("norm_layer: torchvision custom norm layers are not supported")
    spatial = _pair(a["spatial_size"])
    if a["rel_pos_embed"] and spatial[0] != spatial[1]:
        raise ValueError("spatial_size: torchvision sizes both rel-pos tables by the longer "
                         "side and interpolates them; only square inputs match exactly")
    common = dict(
        input_size=(a["temporal_size"], *spatial), num_classes=a["num_classes"],
        patch_kernel=tuple(a["patch_embed_kernel"]), patch_stride=tuple(a["patch_embed_stride"]),
        patch_padding=tuple(a["patch_embed_padding"]), cls_token=True, head_pool="cls",
        head_norm="before", abs_pos="none" if a["rel_pos_embed"] else "separate",
        rel_pos="spatiotemporal" if a["rel_pos_embed"] else "none",
        residual_pooling=a["residual_pool"],
        residual_pooling_cls=a["residual_pool"] and a["residual_with_cls_embed"],
        expand_attn=a["proj_after_attn"], drop_path_rate=a["stochastic_depth_prob"],
        head_dropout=a["dropout"], pool_mode="conv", skip_pool_kernel="stride+1",
    )
    blocks = a["block_setting"]
    if blocks is None:  # the builder's own table: the published MViTv1-B / MViTv2-S
        blocks = _torchvision_blocks(name)
    return _infer_blocks(list(blocks), common)


def _torchvision_blocks(name: str) -> list[dict[str, Any]]:
    from mvit_lab.presets import get_config  # presets import nothing from here

    cfg = get_config("mvitv1_b_16x4" if name == "mvit_v1_b" else "mvitv2_s_16x4")
    return [_block_dict(s) for s in expand_blocks(cfg)]


def _block_dict(spec: Any) -> dict[str, Any]:
    """A BlockSpec as the torchvision MSBlockConfig it corresponds to."""
    return dict(num_heads=spec.num_heads, input_channels=spec.dim, output_channels=spec.dim_out,
                kernel_q=list(spec.q_kernel or ()), kernel_kv=list(spec.kv_kernel or ()),
                stride_q=list(spec.q_stride if spec.q_kernel else ()),
                stride_kv=list(spec.kv_stride if spec.kv_kernel else ()))


def _infer_blocks(blocks: list[Any], common: dict[str, Any], field: str = "block_setting",
                  ref: str = "torchvision") -> ArchConfig:
    """Read depths, widths and pooling off a block table (torchvision's ``block_setting``, or
    the one SlowFast / mvit derive from their YAML), then check that the derived blocks
    reproduce it exactly; ``field`` names the reference's option in errors."""
    if not blocks:
        raise ValueError(f"{field}: no blocks")
    rows = [{k: _field(b, k) for k in ("num_heads", "input_channels", "output_channels",
                                      "kernel_q", "kernel_kv", "stride_q", "stride_kv")}
            for b in blocks]
    expand = common["expand_attn"]
    starts = [0]
    for i in range(1, len(rows)):
        prev, row = rows[i - 1], rows[i]
        widened = (row["input_channels"] != row["output_channels"] if expand
                   else prev["input_channels"] != prev["output_channels"])
        strided = math.prod(row["stride_q"] or [1]) > 1
        if row["num_heads"] != prev["num_heads"] or strided or widened:
            starts.append(i)
    depths = tuple(b - a for a, b in zip(starts, [*starts[1:], len(rows)]))
    dims = [rows[s]["output_channels" if expand else "input_channels"] for s in starts]
    heads = [rows[s]["num_heads"] for s in starts]
    strided = [i for i, s in enumerate(starts) if math.prod(rows[s]["stride_q"] or [1]) > 1]
    q_stride = tuple(rows[starts[strided[0]]]["stride_q"]) if strided else (1, 2, 2)
    kernels = [tuple(r["kernel_q"]) for r in rows if r["kernel_q"]] + [
        tuple(r["kernel_kv"]) for r in rows if r["kernel_kv"]]
    kv = rows[0]["stride_kv"]
    pool_kernel: Any = kernels[0] if kernels else (3, 3, 3)
    pairs = [(tuple(r[f"kernel_{w}"]), tuple(r[f"stride_{w}"])) for r in rows for w in ("q", "kv")
             if r[f"kernel_{w}"]]
    if pairs and len(set(kernels)) > 1 and all(k == resolve_kernel("stride+1", s)
                                               for k, s in pairs):
        pool_kernel = "stride+1"  # SlowFast without POOL_KVQ_KERNEL: s + 1 per stride
    cfg_kwargs = dict(
        common, depths=depths, embed_dim=dims[0], num_heads=heads[0],
        dim_mul=dims[1] / dims[0] if len(dims) > 1 else 2.0,
        head_mul=heads[1] / heads[0] if len(heads) > 1 else 2.0,
        pool_kernel=pool_kernel, q_stride=q_stride,
        q_pool=None if len(strided) == len(depths) - 1 else len(strided),
        q_pool_every_block=any(r["kernel_q"] and math.prod(r["kernel_q"]) > 1
                               and math.prod(r["stride_q"] or [1]) == 1 for r in rows),
        kv_stride=tuple(kv) if kv or rows[0]["kernel_kv"] else None,
        kv_pool_every_block=any(r["kernel_kv"] and math.prod(r["stride_kv"] or [1]) == 1
                                for r in rows),
    )
    if cfg_kwargs["kv_stride"] is not None and not kv:
        cfg_kwargs["kv_stride"] = (1, 1, 1)
    try:
        cfg = ArchConfig(**cfg_kwargs)
    except ValueError as err:
        raise ValueError(f"{field}: the blocks are not an mvit-lab architecture ({err})") \
            from None
    for i, (row, spec) in enumerate(zip(rows, expand_blocks(cfg))):
        if _normalised(row) != _normalised(_block_dict(spec)):
            raise ValueError(f"{field}: block {i} {row} cannot be expressed (nearest "
                             f"mvit-lab block: {_block_dict(spec)})")
    if len(expand_blocks(cfg)) != len(rows):
        raise ValueError(f"{field}: block count does not match the inferred depths")
    for spec in expand_blocks(cfg):
        if spec.rel_pos_size is None:
            continue
        # torchvision and SlowFast size time by the block input, space by the longer side and
        # the H stride, and interpolate tables of another length at run time; mvit-lab sizes
        # each axis by the distances that occur. They agree unless time or only one spatial
        # axis is pooled.
        side = max(spec.in_grid[1:])
        spatial = 2 * max(side // spec.q_stride[1], side // spec.kv_stride[1]) - 1
        t = 2 * spec.in_grid[0] - 1 if cfg.rel_pos == "spatiotemporal" else 0
        if spec.rel_pos_size != (t, spatial, spatial):
            raise ValueError(f"{field}: block {spec.index}'s relative-position tables "
                             f"{spec.rel_pos_size} differ from {ref}'s, which it "
                             "interpolates at run time; not reproducible exactly")
    return cfg


def _normalised(row: Mapping[str, Any]) -> tuple[Any, ...]:
    def pool(kernel: Sequence[int], stride: Sequence[int]) -> tuple[Any, ...]:
        kernel, stride = tuple(kernel or ()), tuple(stride or ())
        present = math.prod(kernel or (1,)) > 1 or math.prod(stride or (1,)) > 1
        return (kernel or (1, 1, 1), stride or (1, 1, 1)) if present else ()

    return (row["num_heads"], row["input_channels"], row["output_channels"],
            pool(row["kernel_q"], row["stride_q"]), pool(row["kernel_kv"], row["stride_kv"]))
