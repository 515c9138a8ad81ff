"""SlowFast and facebookresearch/mvit YAML configs (and the ``cfg`` in their checkpoints) as
ArchConfigs.

Both repositories build ``MViT(cfg)`` from a yacs config: the defaults of their
``config/defaults.py`` merged with a YAML file (``configs/ImageNet/MVIT_B_16_CONV.yaml``, ...);
their ``save_checkpoint`` stores the merged config as a YAML string under ``cfg``. Here the
per-block table that their ``MViT.__init__`` derives (widths with ``round_width``, heads, q and
k / v pooling kernels and strides) is rebuilt from the same keys and handed to the generic
block-table inference in ``reference``, which checks that mvit-lab's derived blocks reproduce
it exactly. Options without an mvit-lab equivalent are a ValueError naming the key.

The YAML is read with ``yaml.safe_load``; tuples written as ``(3, 7, 7)`` (which yacs turns
into tuples with ``literal_eval``) are parsed as integer tuples, nothing else is evaluated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["merged_cfg", "parse_cfg", "slowfast_blocks", "slowfast_common"]

# The keys MViT(cfg) reads, with SlowFast's defaults (slowfast/config/defaults.py)
_SLOWFAST_MVIT = dict(
    MODE="conv", POOL_FIRST=False, CLS_EMBED_ON=True, PATCH_KERNEL=[3, 7, 7],
    PATCH_STRIDE=[2, 4, 4], PATCH_PADDING=[2, 4, 4], PATCH_2D=False, EMBED_DIM=96, NUM_HEADS=1,
    MLP_RATIO=4.0, QKV_BIAS=True, DROPPATH_RATE=0.1, LAYER_SCALE_INIT_VALUE=0.0, DEPTH=16,
    NORM="layernorm", DIM_MUL=[], HEAD_MUL=[], POOL_KV_STRIDE=[], POOL_KV_STRIDE_ADAPTIVE=None,
    POOL_Q_STRIDE=[], POOL_KVQ_KERNEL=None, ZERO_DECAY_POS_CLS=True, NORM_STEM=False,
    SEP_POS_EMBED=False, DROPOUT_RATE=0.0, USE_ABS_POS=True, REL_POS_SPATIAL=False,
    REL_POS_TEMPORAL=False, REL_POS_ZERO_INIT=False, RESIDUAL_POOLING=False,
    DIM_MUL_IN_ATT=False, SEPARATE_QKV=False, HEAD_INIT_SCALE=1.0, USE_MEAN_POOLING=False,
    USE_FIXED_SINCOS_POS=False,
    REV=dict(ENABLE=False, RESPATH_FUSE="concat", BUFFER_LAYERS=[], RES_PATH="conv",
             PRE_Q_FUSION="avg"),
)
_SLOWFAST = dict(
    MVIT=_SLOWFAST_MVIT,
    DATA=dict(NUM_FRAMES=8, TRAIN_CROP_SIZE=224, INPUT_CHANNEL_NUM=[3, 3]),
    MODEL=dict(ARCH="slowfast", MODEL_NAME="SlowFast", NUM_CLASSES=400, DROPOUT_RATE=0.5),
    DETECTION=dict(ENABLE=False),
    CONTRASTIVE=dict(NUM_MLP_LAYERS=1),
)
# facebookresearch/mvit (mvit/config/defaults.py): image models only, 2-D sizes
_MVIT = dict(
    MVIT=dict(
        MODE="conv", POOL_FIRST=False, CLS_EMBED_ON=False, PATCH_KERNEL=[7, 7],
        PATCH_STRIDE=[4, 4], PATCH_PADDING=[3, 3], EMBED_DIM=96, NUM_HEADS=1, MLP_RATIO=4.0,
        QKV_BIAS=True, DROPPATH_RATE=0.1, DEPTH=16, DIM_MUL=[], HEAD_MUL=[],
        POOL_KV_STRIDE=None, POOL_KV_STRIDE_ADAPTIVE=None, POOL_Q_STRIDE=[],
        POOL_KVQ_KERNEL=[3, 3], ZERO_DECAY_POS_CLS=False, USE_ABS_POS=False,
        REL_POS_SPATIAL=True, REL_POS_ZERO_INIT=False, RESIDUAL_POOLING=True,
        DIM_MUL_IN_ATT=True,
    ),
    DATA=dict(TRAIN_CROP_SIZE=224),
    MODEL=dict(MODEL_NAME="MViT", NUM_CLASSES=1000, DROPOUT_RATE=0.0),
)
DEFAULTS = {"slowfast": _SLOWFAST, "mvit": _MVIT}
_TUPLE = re.compile(r"^\(\s*(-?\d+\s*(,\s*-?\d+\s*)*,?)?\s*\)$")


def parse_cfg(value: str | Path | Mapping[str, Any], what: str = "cfg") -> dict[str, Any]:
    """A YAML file, YAML text or an already parsed mapping, as a plain dict."""
    if isinstance(value, Mapping):
        return _tuples(dict(value))
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value
                                   and value.endswith((".yaml", ".yml"))):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{what}: no such YAML file {path}")
        value = path.read_text()
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{what}: not valid YAML ({problem}{where})") from None
    if not isinstance(parsed, Mapping):
        raise ValueError(f"{what}: expected a YAML mapping of sections (MVIT, DATA, MODEL), "
                         f"got {type(parsed).__name__}")
    return _tuples(dict(parsed))


def _tuples(value: Any) -> Any:
    """yacs reads ``(3, 7, 7)`` with literal_eval; here only integer tuples are accepted."""
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tuples(v) for v in value]
    if isinstance(value, str) and _TUPLE.match(value.strip()):
        inner = value.strip()[1:-1]
        return [int(v) for v in inner.split(",") if v.strip()]
    return value


def merged_cfg(source: str, cfg: Mapping[str, Any],
               overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults of ``source`` with ``cfg`` and then ``overrides`` merged in, as yacs does.

    Unknown keys in the sections the model reads (``MVIT``; ``DATA`` / ``MODEL`` are shared
    with training and may hold anything) are a ValueError naming the key.
    """
    merged = copy.deepcopy(DEFAULTS[source])
    for layer in (cfg, _tuples(dict(overrides or {}))):
        for section, values in layer.items():
            if section not in merged:
                continue  # TRAIN, SOLVER, AUG, ...: training only
            if not isinstance(values, Mapping):
                raise ValueError(f"{section}: expected a mapping of options, got {values!r}")
            _merge_section(merged[section], values, section, strict=section == "MVIT")
    return merged


def _merge_section(into: dict[str, Any], values: Mapping[str, Any], where: str,
                   strict: bool) -> None:
    for key, value in values.items():
        if key not in into:
            if strict:
                raise ValueError(f"{where}.{key}: not an option of this MViT (known: "
                                 f"{', '.join(sorted(into))})")
            continue
        if isinstance(into[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}.{key}: expected a mapping, got {value!r}")
            _merge_section(into[key], value, f"{where}.{key}", strict)
        else:
            into[key] = value


def round_width(width: float, multiplier: float, min_width: int = 1, divisor: int = 1) -> int:
    """SlowFast's ``round_width`` (slowfast/models/utils.py), which sizes every block."""
    if not multiplier:
        return int(width)
    width *= multiplier
    min_width = min_width or divisor
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def _fail(key: str, rule: str) -> ValueError:
    return ValueError(f"MVIT.{key}: {rule}")


def _three(value: Any, key: str) -> tuple[int, ...]:
    value = tuple(value)
    if len(value) == 2:
        return (1, *value)
    if len(value) != 3:
        raise _fail(key, f"expected 2 or 3 entries, got {list(value)}")
    return value


def slowfast_blocks(source: str, c: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-block table ``MViT.__init__`` derives, as torchvision-style block rows."""
    m = c["MVIT"]
    depth = m["DEPTH"]
    dim_mul, head_mul = [1.0] * (depth + 1), [1.0] * (depth + 1)
    for key, muls in (("DIM_MUL", dim_mul), ("HEAD_MUL", head_mul)):
        for entry in m[key]:
            if len(entry) != 2 or not 0 <= int(entry[0]) <= depth:
                raise _fail(key, f"entry {entry} is not [block, multiplier] within DEPTH")
            muls[int(entry[0])] = float(entry[1])
    kernel = m["POOL_KVQ_KERNEL"]
    kernel = None if kernel is None else _three(kernel, "POOL_KVQ_KERNEL")
    pool_q: list[tuple[int, ...] | None] = [None] * depth
    stride_q: list[tuple[int, ...] | None] = [None] * depth
    for entry in m["POOL_Q_STRIDE"]:
        i, stride = int(entry[0]), _three(entry[1:], "POOL_Q_STRIDE")
        if not 0 <= i < depth:
            raise _fail("POOL_Q_STRIDE", f"block {i} is outside DEPTH {depth}")
        stride_q[i] = stride
        pool_q[i] = kernel if kernel is not None else tuple(s + 1 if s > 1 else s
                                                            for s in stride)
    kv_entries = m["POOL_KV_STRIDE"] or []
    if m["POOL_KV_STRIDE_ADAPTIVE"] is not None:
        kv = _three(m["POOL_KV_STRIDE_ADAPTIVE"], "POOL_KV_STRIDE_ADAPTIVE")
        kv_entries = []
        for i in range(depth):
            if stride_q[i] is not None:
                kv = tuple(max(k // q, 1) for k, q in zip(kv, stride_q[i]))
            kv_entries.append([i, *kv])
    pool_kv: list[tuple[int, ...] | None] = [None] * depth
    stride_kv: list[tuple[int, ...] | None] = [None] * depth
    for entry in kv_entries:
        i, stride = int(entry[0]), _three(entry[1:], "POOL_KV_STRIDE")
        if not 0 <= i < depth:
            raise _fail("POOL_KV_STRIDE", f"block {i} is outside DEPTH {depth}")
        stride_kv[i] = stride
        pool_kv[i] = kernel if kernel is not None else tuple(s + 1 if s > 1 else s
                                                             for s in stride)
    rows = []
    heads, dim = m["NUM_HEADS"], m["EMBED_DIM"]
    for i in range(depth):
        heads = round_width(heads, head_mul[i])
        if m["DIM_MUL_IN_ATT"]:
            dim_out = round_width(dim, dim_mul[i], divisor=round_width(heads, head_mul[i]))
        else:
            dim_out = round_width(dim, dim_mul[i + 1],
                                  divisor=round_width(heads, head_mul[i + 1]))
        rows.append(dict(num_heads=heads, input_channels=dim, output_channels=dim_out,
                         **_pool_entry("q", pool_q[i], stride_q[i]),
                         **_pool_entry("kv", pool_kv[i], stride_kv[i])))
        dim = dim_out
    return rows


def _pool_entry(which: str, kernel: tuple[int, ...] | None,
                stride: tuple[int, ...] | None) -> dict[str, list[int]]:
    """A block's pooling as the reference builds it: omitted when kernel and stride are 1;
    its padding ``k // 2`` must be mvit-lab's (0 where kernel == stride, else (k - 1) // 2)."""
    kernel, stride = kernel or (), stride or ()
    if kernel and stride and (kernel, stride) != ((1, 1, 1), (1, 1, 1)):
        for k, s in zip(kernel, stride):
            if k // 2 != (0 if k == s else (k - 1) // 2):
                raise _fail("POOL_KVQ_KERNEL", f"kernel {list(kernel)} with stride "
                                               f"{list(stride)} is padded by k // 2, which "
                                               "mvit-lab's pooling does not reproduce")
        return {f"kernel_{which}": list(kernel), f"stride_{which}": list(stride)}
    return {f"kernel_{which}": [], f"stride_{which}": []}


def slowfast_common(source: str, c: Mapping[str, Any]) -> dict[str, Any]:
    """Every ArchConfig field but the block structure, refusing what mvit-lab cannot express."""
    m, data, model = c["MVIT"], c["DATA"], c["MODEL"]
    for key, allowed in (("NORM", "layernorm"), ("NORM_STEM", False),
                         ("LAYER_SCALE_INIT_VALUE", 0.0), ("USE_FIXED_SINCOS_POS", False),
                         ("DROPOUT_RATE", 0.0)):
        if key in m and m[key] != allowed:
            raise _fail(key, f"{m[key]!r} has no mvit-lab equivalent (supported: {allowed!r})")
    if m.get("REV", {}).get("ENABLE"):
        raise _fail("REV.ENABLE", "reversible MViT has no mvit-lab equivalent")
    if c.get("DETECTION", {}).get("ENABLE"):
        raise ValueError("DETECTION.ENABLE: the detection head has no mvit-lab equivalent")
    if c.get("CONTRASTIVE", {}).get("NUM_MLP_LAYERS", 1) != 1:
        raise ValueError("CONTRASTIVE.NUM_MLP_LAYERS: an MLP head has no mvit-lab equivalent")
    if source == "slowfast" and (model["ARCH"], model["MODEL_NAME"]) != ("mvit", "MViT"):
        raise ValueError(f"MODEL.MODEL_NAME: {model['MODEL_NAME']!r} (ARCH {model['ARCH']!r}) "
                         "is not SlowFast's MViT (MODEL.ARCH: mvit, MODEL.MODEL_NAME: MViT)")
    if source == "mvit" and model["MODEL_NAME"] != "MViT":
        raise ValueError(f"MODEL.MODEL_NAME: {model['MODEL_NAME']!r} is not MViT")
    if m["MODE"] not in ("conv", "max", "avg"):
        raise _fail("MODE", f"{m['MODE']!r} has no mvit-lab equivalent (conv, max, avg)")
    image = source == "mvit" or bool(m.get("PATCH_2D"))
    crop = int(data["TRAIN_CROP_SIZE"])
    frames = 1 if image else int(data["NUM_FRAMES"])
    in_chans = int(data["INPUT_CHANNEL_NUM"][0]) if "INPUT_CHANNEL_NUM" in data else 3

    def patch(key: str, pad: bool = False) -> tuple[int, ...]:
        value = tuple(m[key])
        if image:
            if len(value) != 2:
                raise _fail(key, f"an image model (2-D patches) needs 2 entries, got "
                                 f"{list(value)}")
            return (0 if pad else 1, *value)
        return _three(value, key)

    spatial, temporal = bool(m["REL_POS_SPATIAL"]), bool(m.get("REL_POS_TEMPORAL"))
    if temporal and not spatial:
        raise _fail("REL_POS_TEMPORAL", "temporal relative positions without spatial ones "
                                        "have no mvit-lab equivalent")
    cls = bool(m["CLS_EMBED_ON"])
    mean_pool = bool(m.get("USE_MEAN_POOLING"))
    return dict(
        input_size=(frames, crop, crop), in_chans=in_chans, num_classes=int(model["NUM_CLASSES"]),
        patch_kernel=patch("PATCH_KERNEL"), patch_stride=patch("PATCH_STRIDE"),
        patch_padding=patch("PATCH_PADDING", pad=True), mlp_ratio=float(m["MLP_RATIO"]),
        qkv_bias=bool(m["QKV_BIAS"]), expand_attn=bool(m["DIM_MUL_IN_ATT"]), cls_token=cls,
        abs_pos=("separate" if m.get("SEP_POS_EMBED") else "joint") if m["USE_ABS_POS"]
        else "none",
        rel_pos="spatiotemporal" if temporal else "spatial" if spatial else "none",
        pool_mode=m["MODE"], pool_first=bool(m["POOL_FIRST"]),
        residual_pooling=bool(m["RESIDUAL_POOLING"]), residual_pooling_cls=False,
        skip_pool_kernel="stride+1", drop_path_rate=float(m["DROPPATH_RATE"]),
        head_dropout=float(model["DROPOUT_RATE"]), norm_eps=1e-6,
        # SlowFast: mean pooling -> mean then norm; cls -> norm then cls; else norm then mean
        head_pool="cls" if cls and not mean_pool else "mean",
        head_norm="after" if mean_pool else "before",
    )
