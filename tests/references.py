"""Build the live reference models (timm, torchvision, hiera-transformer) for equivalence tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from mvit_lab import build_model
from mvit_lab.convert import convert_state_dict
from mvit_lab.reference import config_from_reference


def build_reference(source: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    if source == "timm" and name.startswith("mvitv2"):
        from timm.models import mvitv2

        fields = {f.name for f in dataclasses.fields(mvitv2.MultiScaleVitCfg)}
        base = {f: getattr(mvitv2.model_cfgs[name], f) for f in ("depths", "embed_dim",
                                                                 "num_heads", "expand_attn",
                                                                 "use_cls_token")}
        if "depths" in kwargs:  # per-stage tuples derived for the named depths do not carry over
            base["embed_dim"] = base["embed_dim"][0]
            base["num_heads"] = base["num_heads"][0]
        cfg_kw = {**base, **{k: v for k, v in kwargs.items() if k in fields}}
        model_kw = {k: v for k, v in kwargs.items() if k not in fields}
        return mvitv2.MultiScaleVit(cfg=mvitv2.MultiScaleVitCfg(**cfg_kw), **model_kw)
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)
    if source == "hiera":
        import hiera

        # the builders pin the architecture; variants call the Hiera constructor with every
        # argument that differs from its defaults (as the test draws do)
        model = hiera.Hiera(**kwargs) if "stages" in kwargs else getattr(hiera, name)(
            pretrained=False, **kwargs)
        model.head.act_func = nn.Identity()  # the original head softmaxes in eval mode
        return model
    if source == "torchvision":
        from torchvision.models.video import mvit

        # the builders pin sizes and flags; variants call MViT with the builder's own block
        # table and flags (read by intercepting the builder), overridden by kwargs
        builder_args = _torchvision_builder_args(name)
        kw = {**builder_args, **kwargs}
        blocks = [b if isinstance(b, mvit.MSBlockConfig) else mvit.MSBlockConfig(**b)
                  for b in kw.pop("block_setting")]
        return mvit.MViT(block_setting=blocks, **kw)
    raise ValueError(source)


def _torchvision_builder_args(name: str) -> dict[str, Any]:
    from torchvision.models.video import mvit

    captured: dict[str, Any] = {}
    original = mvit._mvit

    def capture(**kwargs: Any) -> None:
        captured.update(kwargs)

    mvit._mvit = capture
    try:
        getattr(mvit, name)()
    finally:
        mvit._mvit = original
    for key in ("weights", "progress"):
        captured.pop(key)
    # what _mvit itself fills in when a builder does not pass them
    defaults = dict(residual_pool=False, residual_with_cls_embed=True, rel_pos_embed=False,
                    proj_after_attn=False)
    return {**defaults, **captured}


def perturb_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Randomise every parameter so that a wrong mapping cannot hide.

    Linear weights get unit-variance fan-in scaling, so attention logits are O(1) and a wrong
    set of keys (a window, a pooled token) changes the output visibly; with the references'
    std-0.02 init, attention is nearly uniform and such a bug moves logits by ~1e-4 only.
    Every other tensor (norms, biases, tables, tokens) gets noise, so none keeps a 0 or 1.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        for p in model.parameters():
            if id(p) in linear:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def converted_pair(source: str, name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """(reference, mvit-lab model) with the reference's weights converted and loaded strictly."""
    torch.manual_seed(0)
    ref = perturb_(build_reference(source, name, kwargs)).eval()
    cfg = config_from_reference(source, name, **kwargs)
    ours = build_model(cfg).eval()
    ours.load_state_dict(convert_state_dict(ref.state_dict(), source, cfg), strict=True)
    return ref, ours


def input_for(model_cfg_input: tuple[int, int, int], in_chans: int = 3,
              batch: int = 2) -> torch.Tensor:
    t, h, w = model_cfg_input
    gen = torch.Generator().manual_seed(1)
    shape = (batch, in_chans, h, w) if t == 1 else (batch, in_chans, t, h, w)
    return torch.randn(shape, generator=gen)


def max_logit_diff(ref: nn.Module, ours: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()
