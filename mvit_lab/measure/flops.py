"""FLOPs (multiply-adds) and parameters, with a per-stage and per-module breakdown.

Convention (fvcore's, and the papers'): one multiply-add is one FLOP; linear layers, matmuls,
einsums, convolutions and attention (``Lq * Lk * (d + dv)`` per head) count. LayerNorm, pooling,
softmax, activations and elementwise ops are reported apart as ``other_gflops`` (fvcore counts
LayerNorm in its total; the published numbers do not).

Two backends give the same numbers (the tests check that they agree exactly):

* ``"meta"`` (default): the model runs on the ``meta`` device under a dispatch mode that
  reads shapes only, so counting a 400-GFLOP video model takes well under a second;
* ``"fvcore"``: ``fvcore.nn.FlopCountAnalysis`` on a real CPU forward, with handles registered
  for ``scaled_dot_product_attention`` and the pooling ops, which fvcore skips.

Every op either counts, is free (views, copies, indexing) or is listed in ``skipped``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mvit_lab.build import build_model, resolve_config
from mvit_lab.config import ArchConfig
from mvit_lab.models import MultiscaleViT

__all__ = ["FlopReport", "count_flops"]

aten = torch.ops.aten


@dataclass(frozen=True)
class FlopReport:
    """Cost of one forward pass of ``batch_size`` inputs (GFLOPs are multiply-adds)."""

    gflops: float
    params: int
    batch_size: int
    by_stage: dict[str, float] = field(default_factory=dict)  # stem, stage0.., head
    by_module: dict[str, float] = field(default_factory=dict)  # qkv, attention, pooling, ...
    by_operator: dict[str, float] = field(default_factory=dict)
    other_gflops: float = 0.0  # norms, pooling, softmax, activations: not multiply-adds
    skipped: dict[str, int] = field(default_factory=dict)  # ops with no count, by name
    backend: str = "meta"
    mask_ratio: float | None = None  # set: the encoder alone, run sparsely (MAE), no head

    @property
    def encoder_gflops(self) -> float:
        """Stem and stages, without the head."""
        return self.gflops - self.by_stage.get("head", 0.0)

    def to_dict(self) -> dict[str, Any]:
        return dict(gflops=self.gflops, params=self.params, batch_size=self.batch_size,
                    by_stage=self.by_stage, by_module=self.by_module,
                    by_operator=self.by_operator, other_gflops=self.other_gflops,
                    skipped=self.skipped, backend=self.backend, mask_ratio=self.mask_ratio)


# -- formulas: multiply-adds from shapes --------------------------------------------------------
def _mm(args: tuple, out: Any) -> int:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1]


def _addmm(args: tuple, out: Any) -> int:
    return _mm(args[1:], out)


def _bmm(args: tuple, out: Any) -> int:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _baddbmm(args: tuple, out: Any) -> int:
    return _bmm(args[1:], out)


def _conv(args: tuple, out: Any) -> int:
    weight = args[1]
    out_t = out[0] if isinstance(out, (tuple, list)) else out
    # every output element takes (C_in / groups) * prod(kernel) multiply-adds
    return out_t.numel() * math.prod(weight.shape[1:])


def _sdpa(args: tuple, out: Any) -> int:
    q, k, v = args[0], args[1], args[2]
    batch = math.prod(q.shape[:-2])
    return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _numel_out(args: tuple, out: Any) -> int:
    out_t = out[0] if isinstance(out, (tuple, list)) else out
    return out_t.numel() if isinstance(out_t, torch.Tensor) else 0


def _numel_in(args: tuple, out: Any) -> int:
    return args[0].numel()


def _pool(args: tuple, out: Any) -> int:
    # one comparison / add per window element and output: kernel volume * outputs
    out_t = out[0] if isinstance(out, (tuple, list)) else out
    return out_t.numel() * math.prod(args[1])


_MACS = {
    aten.mm.default: _mm,
    aten.addmm.default: _addmm,
    aten.bmm.default: _bmm,
    aten.baddbmm.default: _baddbmm,
    aten.convolution.default: _conv,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _sdpa,
    aten._scaled_dot_product_efficient_attention.default: _sdpa,
    aten._scaled_dot_product_flash_attention.default: _sdpa,
    aten._scaled_dot_product_cudnn_attention.default: _sdpa,
}
_OTHER = {
    aten.native_layer_norm.default: _numel_in,
    aten.max_pool2d_with_indices.default: _pool,
    aten.max_pool3d_with_indices.default: _pool,
    aten.avg_pool2d.default: _pool,
    aten.avg_pool3d.default: _pool,
    aten._softmax.default: _numel_out,
    aten._safe_softmax.default: _numel_out,
    aten.mul.Scalar: _numel_out,
    aten.div.Scalar: _numel_out,
    aten.add.Scalar: _numel_out,
    aten.gelu.default: _numel_out,
    aten.add.Tensor: _numel_out,
    aten.add_.Tensor: _numel_out,
    aten.mul.Tensor: _numel_out,
    aten.mul_.Tensor: _numel_out,
    aten.div.Tensor: _numel_out,
    aten.sub.Tensor: _numel_out,
    aten.mean.dim: _numel_in,
    aten.amax.default: _numel_in,
    aten.sum.dim_IntList: _numel_in,
}
# data movement, shapes and constants: no arithmetic
_FREE = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "clone", "copy_",
    "cat", "slice", "select", "unsqueeze", "squeeze", "split", "split_with_sizes", "unbind",
    "index", "constant_pad_nd", "empty", "empty_like", "new_empty", "zeros", "zeros_like",
    "detach", "alias", "as_strided", "_to_copy", "arange", "lift_fresh", "fill_", "bernoulli_",
    "_unsafe_index", "contiguous", "flatten", "stack", "full", "new_zeros", "empty_strided",
    "_local_scalar_dense", "lift_fresh_copy", "embedding", "gather", "repeat", "new_ones", "ones",
    "ones_like", "scalar_tensor", "_reshape_alias", "max_pool2d_with_indices_backward", "where",
    "isfinite", "all", "eq", "ne", "lt", "gt", "le", "ge", "logical_not", "_to_dense", "dropout",
    "scatter", "floor_divide", "remainder", "upsample_nearest2d", "upsample_nearest3d",
    "native_dropout", "rand", "randn", "uniform_", "normal_", "erfinv_", "clamp_", "clamp",
}


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.scope = ["stem"]
        self.macs: dict[tuple[str, str], int] = defaultdict(int)
        self.other: dict[tuple[str, str], int] = defaultdict(int)
        self.skipped: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if func in _MACS:
            self.macs[(self.scope[-1], name)] += _MACS[func](args, out)
        elif func in _OTHER:
            self.other[(self.scope[-1], name)] += _OTHER[func](args, out)
        elif name not in _FREE:
            self.skipped[name] += 1
        return out


_KINDS = [  # (module path pattern, breakdown category); the first match wins
    (r"^patch_embed\b", "patch_embed"),
    (r"^(norm|head)\b", "head"),
    (r"\.attn\.(qkv|q|k|v)$", "qkv"),  # q, k, v: the three projections of pool_first
    (r"\.attn\.proj$", "attn_proj"),
    (r"\.attn\.pool_[qkv]\b", "pooling"),
    (r"\.attn$", "attention"),  # the attention core: q @ k, rel-pos bias, attn @ v
    (r"\.mlp\.", "mlp"),
    (r"^blocks\.\d+\.proj$", "skip_proj"),
]


def _module_kind(path: str) -> str:
    """The breakdown category of a module of the generator, from its path."""
    for pattern, kind in _KINDS:
        if re.search(pattern, path):
            return kind
    return "other"


def _stage_of(model: MultiscaleViT) -> dict[int, int]:
    """Block index -> stage index."""
    stage_of = {}
    stage = 0
    for i, _ in enumerate(model.blocks):
        stage_of[i] = stage
        if i in model.stage_ends:
            stage += 1
    return stage_of


def _scope(path: str, stage_of: dict[int, int]) -> str:
    """``"<stage>|<module path>"``: the bucket a module's FLOPs are reported under."""
    if path.startswith("blocks."):
        return f"stage{stage_of[int(path.split('.')[1])]}|{path}"
    if path.startswith(("norm", "head")):
        return f"head|{path}"
    return f"stem|{path}"


def count_flops(cfg_or_model: ArchConfig | str | nn.Module, batch_size: int = 1,
                backend: str = "meta", mask_ratio: float | None = None) -> FlopReport:
    """FLOPs (multiply-adds) and parameters of one forward pass; see the module docstring.

    ``mask_ratio``: count the encoder of MAE pretraining instead, run sparsely on the
    ``int(units * (1 - mask_ratio))`` mask units it keeps (no head); compare it with the
    dense ``encoder_gflops``.
    """
    if backend not in ("meta", "fvcore"):
        raise ValueError(f"backend: unknown {backend!r}; known: meta, fvcore")
    if mask_ratio is not None and backend != "meta":
        raise ValueError("mask_ratio: sparse forwards are counted by the meta backend only")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if isinstance(cfg_or_model, MultiscaleViT):
        cfg = cfg_or_model.cfg
    elif isinstance(cfg_or_model, nn.Module):
        raise ValueError("cfg_or_model: count_flops takes an mvit-lab model, config or preset")
    else:
        cfg = resolve_config(cfg_or_model)
    if backend == "fvcore":
        model = cfg_or_model if isinstance(cfg_or_model, MultiscaleViT) else build_model(cfg)
        return _count_fvcore(model.eval(), cfg, batch_size)
    with torch.device("meta"):
        model = build_model(cfg).eval()
        x = torch.empty(batch_size, cfg.in_chans, *(
            cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    counter = _Counter()
    stage_of = _stage_of(model)
    handles = []

    def enter(name: str):
        def hook(module: nn.Module, args: Any) -> None:
            counter.scope.append(name)
        return hook

    def leave(module: nn.Module, args: Any, out: Any) -> None:
        counter.scope.pop()

    for path, module in model.named_modules():
        leaf = next(module.children(), None) is None
        # leaves; the head as a whole; blocks and their attention, whose own ops (SDPA, the
        # rel-pos bias, pooling glue) run outside any child module
        if path and (leaf or path == "head" or re.fullmatch(r"blocks\.\d+(\.attn)?", path)):
            handles.append(module.register_forward_pre_hook(enter(_scope(path, stage_of))))
            handles.append(module.register_forward_hook(leave))
    run = model
    if mask_ratio is not None:
        from mvit_lab.masking import check_sparse, num_units, random_keep

        check_sparse(cfg)
        n = num_units(cfg)
        kept = int(random_keep(1, n, mask_ratio).sum())  # validates the ratio
        ids = torch.arange(kept, device="meta").expand(batch_size, kept)

        def run(x: torch.Tensor) -> Any:
            return model.forward_sparse(x, ids)
    try:
        with torch.no_grad(), counter:
            run(x)
    finally:
        for h in handles:
            h.remove()
    report = _report(counter.macs, counter.other, dict(counter.skipped), model, batch_size,
                     "meta")
    return dataclasses.replace(report, mask_ratio=mask_ratio) if mask_ratio is not None \
        else report


def _report(macs: dict[tuple[str, str], int], other: dict[tuple[str, str], int],
            skipped: dict[str, int], model: nn.Module, batch_size: int,
            backend: str) -> FlopReport:
    by_stage: dict[str, float] = defaultdict(float)
    by_module: dict[str, float] = defaultdict(float)
    by_operator: dict[str, float] = defaultdict(float)
    for (scope, op), n in macs.items():
        stage, _, path = scope.partition("|")
        by_stage[stage] += n / 1e9
        by_module[_module_kind(path or stage)] += n / 1e9
        by_operator[op] += n / 1e9
    return FlopReport(
        gflops=sum(macs.values()) / 1e9, params=sum(p.numel() for p in model.parameters()),
        batch_size=batch_size,
        by_stage=dict(sorted(by_stage.items(), key=lambda kv: _stage_order(kv[0]))),
        by_module=dict(sorted(by_module.items(), key=lambda kv: -kv[1])),
        by_operator=dict(sorted(by_operator.items(), key=lambda kv: -kv[1])),
        other_gflops=sum(other.values()) / 1e9, skipped=skipped, backend=backend,
    )


def _stage_order(name: str) -> tuple[int, int]:
    if name == "stem":
        return (0, 0)
    if name.startswith("stage"):
        return (1, int(name[5:]))
    return (2, 0)


# -- fvcore backend ------------------------------------------------------------------------------
def _fv_sdpa(inputs: list, outputs: list) -> int:
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    return math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def _fv_pool(inputs: list, outputs: list) -> int:
    from fvcore.nn.jit_handles import get_shape

    kernel = inputs[1].toIValue()
    if kernel is None:  # a list built in the graph (prim::ListConstruct) of constants
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return math.prod(get_shape(outputs[0])) * math.prod(kernel)


def _count_fvcore(model: MultiscaleViT, cfg: ArchConfig, batch_size: int) -> FlopReport:
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter

    x = torch.randn(batch_size, cfg.in_chans, *(
        cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    analysis = FlopCountAnalysis(model, x)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _fv_sdpa)
    # counted apart from the multiply-adds (other_gflops), as the meta backend does
    not_macs = {"aten::max_pool2d": _fv_pool, "aten::max_pool3d": _fv_pool,
                "aten::avg_pool2d": _fv_pool, "aten::avg_pool3d": _fv_pool,
                "aten::layer_norm": elementwise_flop_counter(1, 0)}
    analysis.set_op_handle(**not_macs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        by_module = analysis.by_module()
        skipped = dict(analysis.unsupported_ops())
    macs: dict[tuple[str, str], int] = defaultdict(int)
    other: dict[tuple[str, str], int] = defaultdict(int)
    stage_of = _stage_of(model)
    by_op_module = analysis.by_module_and_operator()
    for path, ops in by_op_module.items():
        children = [p for p in by_module if p.startswith(path + ".") and p != path]
        if path == "" or (children and not path.endswith(".attn")):
            continue
        scope = _scope(path, stage_of)
        own = dict(ops)
        if path.endswith(".attn"):  # only the attention core; its children count themselves
            depth = path.count(".") + 1
            for child in (c for c in children if c.count(".") == depth):
                for op, n in by_op_module[child].items():
                    own[op] = own.get(op, 0) - n
        for op, n in own.items():
            if n:
                bucket = other if op in ("layer_norm", "max_pool2d", "max_pool3d", "avg_pool2d",
                                         "avg_pool3d") else macs
                bucket[(scope, op)] += n
    return _report(macs, other, {k: v for k, v in skipped.items() if not _free_jit(k)}, model,
                   batch_size, "fvcore")


def _free_jit(op: str) -> bool:
    """Elementwise ops fvcore does not count and the meta backend lists under other_gflops."""
    return op.split("::")[-1].rstrip("_") in {"add", "mul", "div", "sub", "gelu", "softmax",
                                              "mean", "amax", "sum", "rsub", "pad", "repeat",
                                              "repeat_interleave"}
