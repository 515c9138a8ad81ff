"""Sparse masked-autoencoder pretraining (Hiera's MAE) for any config that can run sparsely.

The encoder is the standard ``MultiscaleViT`` run by ``forward_sparse``: masked mask units are
deleted from the sequence. Hiera's multi-scale decoder then

1. fuses the last output of every resolution at the final one: a strided conv per unit
   (kernel = stride = that stage's unit grid / the final unit grid), summed with the last
   stage's output, then a LayerNorm;
2. embeds to the decoder width, puts the kept units back on the final grid with a learned mask
   token in every deleted unit, adds a position embedding and runs plain transformer blocks;
3. predicts each final token's pixels, normalised per patch, and the loss is the mean squared
   error on the masked units only.

Names and layouts follow ``hiera-transformer``'s ``MaskedAutoencoderHiera`` so its weights load
by name (``convert_mae_state_dict``); the encoder's weights load straight into the standard
model (``load_encoder``). Video targets, as there, take the first frame of each token's time
extent and lay a patch out (y, x, channel); image targets (channel, y, x).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mvit_lab._validate import _as_int
from mvit_lab.config import ArchConfig, BlockSpec, expand_blocks
from mvit_lab.masking import (
    check_sparse,
    ids_from_keep,
    keep_from_ids,
    random_keep,
    unit_counts,
)
from mvit_lab.models._layout import window_merge
from mvit_lab.models.block import MultiScaleBlock
from mvit_lab.models.mvit import MultiscaleViT

__all__ = ["DecoderConfig", "MAEOutput", "MaskedAutoencoder", "convert_mae_state_dict",
           "load_encoder"]


@dataclass(frozen=True)
class DecoderConfig:
    """The MAE decoder (Hiera's defaults: 512 wide, 8 blocks, 16 heads)."""

    dim: int = 512
    depth: int = 8
    heads: int = 16
    norm_pix_loss: bool = True  # targets normalised per patch (mean 0, variance 1)

    def __post_init__(self) -> None:
        _as_int("decoder.dim", self.dim)
        _as_int("decoder.depth", self.depth, minimum=0)
        _as_int("decoder.heads", self.heads)
        if self.dim % self.heads:
            raise ValueError(f"decoder.heads: {self.heads} heads do not divide decoder.dim "
                             f"{self.dim}")


class MAEOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    pred: torch.Tensor  # [masked tokens, pixels per token], over the batch in order
    target: torch.Tensor  # same shape
    keep: torch.Tensor  # [B, num mask units] bool, True = kept (seen by the encoder)


class MaskedAutoencoder(nn.Module):
    """MAE around ``MultiscaleViT(cfg)``; see the module docstring. ``forward(x, mask_ratio)``
    draws a random unit mask (or takes ``keep``) and returns an ``MAEOutput``."""

    def __init__(self, cfg: ArchConfig, decoder: DecoderConfig | None = None) -> None:
        super().__init__()
        self.notes = check_sparse(cfg)  # raises where cfg cannot run sparsely
        decoder = decoder or DecoderConfig()
        self.cfg, self.decoder_cfg = cfg, decoder
        self.encoder = MultiscaleViT(cfg)
        del self.encoder.norm, self.encoder.head  # pretraining has no classifier
        grids = self.encoder.stage_grids
        # the last output of each resolution, and the final one
        self.fused_stages = tuple(s for s in range(len(grids))
                                  if s == len(grids) - 1 or grids[s] != grids[s + 1])
        counts = unit_counts(cfg)[1:] if cfg.is_image else unit_counts(cfg)
        final_unit = tuple(g // c for g, c in zip(grids[-1], counts))
        self.final_grid, self.final_unit = grids[-1], final_unit
        dim_out = cfg.num_features
        conv = nn.Conv2d if cfg.is_image else nn.Conv3d
        heads: list[nn.Module] = []
        specs = expand_blocks(cfg)
        for s in self.fused_stages[:-1]:
            kernel = tuple(g // c // f for g, c, f in zip(grids[s], counts, final_unit))
            # a stage's output width: MViTv1/v2 (expand in the MLP) widen at its last block
            width = specs[self.encoder.stage_ends[s]].dim_out
            heads.append(conv(width, dim_out, kernel, kernel))
        heads.append(nn.Identity())
        self.multi_scale_fusion_heads = nn.ModuleList(heads)
        self.encoder_norm = nn.LayerNorm(dim_out, eps=cfg.norm_eps)
        d = decoder.dim
        self.decoder_embed = nn.Linear(dim_out, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, math.prod(self.final_grid), d))
        full = (1, *self.final_grid) if cfg.is_image else self.final_grid
        ones = (1, 1, 1)
        spec = BlockSpec(index=0, stage=0, dim=d, dim_out=d, attn_dim=d, num_heads=decoder.heads,
                         mlp_hidden=int(d * cfg.mlp_ratio), in_grid=full, q_grid=full,
                         kv_grid=full, q_stride=ones, q_kernel=None, kv_stride=ones,
                         kv_kernel=None, skip_kernel=None, mask_unit_attn=False, q_window=None,
                         kv_window=None, rel_pos_size=None, drop_path=0.0,
                         project_in_attn=False)
        self.decoder_blocks = nn.ModuleList(
            MultiScaleBlock(spec, image=cfg.is_image, pool_mode="none", has_cls=False,
                            residual_pooling=False, qkv_bias=True, norm_eps=cfg.norm_eps)
            for _ in range(decoder.depth))
        self.decoder_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        # one final token covers patch_stride * (q strides so far) pixels per spatial axis
        total = [p * g0 // g for p, g0, g in zip(cfg.patch_stride, cfg.patch_grid,
                                                 (1, *self.final_grid) if cfg.is_image
                                                 else self.final_grid)]
        self.pred_size = tuple(total[1:])  # (h, w) pixels of one predicted patch
        self.time_step = total[0]  # video: the first frame of each token's time extent
        self.decoder_pred = nn.Linear(d, math.prod(self.pred_size) * cfg.in_chans)
        self.counts = counts
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's initialisation: xavier-uniform linear layers (and the stem, as a linear
        layer), unit LayerNorms; position embeddings and the mask token at std 0.02."""
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.encoder.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    @property
    def num_units(self) -> int:
        return math.prod(self.counts)

    # -- encoder ---------------------------------------------------------------------------------
    def forward_encoder(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Fused multi-scale features of the kept units, ``[B, U, *final unit grid, C]``."""
        maps = self.encoder.forward_sparse(x, ids)
        b, u = ids.shape
        fused = None
        for head, stage in zip(self.multi_scale_fusion_heads, self.fused_stages):
            y = maps[stage]  # [B, U, *unit grid, C]
            if not isinstance(head, nn.Identity):
                # [B * U, C, *unit grid] -> conv -> [B, U, *final unit grid, C']
                y = head(y.flatten(0, 1).movedim(-1, 1)).movedim(1, -1)
                y = y.reshape(b, u, *y.shape[1:])
            fused = y if fused is None else fused + y
        return self.encoder_norm(fused)

    # -- decoder ---------------------------------------------------------------------------------
    def forward_decoder(self, latent: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Pixel predictions for every final token, ``[B, L_final, pixels per token]``."""
        units = self.encoder.units(ids)
        x = self.decoder_embed(latent)  # [B, U, *final unit grid, D]
        x = units.scatter(x.reshape(units.batch * units.kept, -1, x.shape[-1]),
                          self.mask_token.reshape(-1), self.final_grid)  # [B, L, D]
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def token_keep(self, keep: torch.Tensor) -> torch.Tensor:
        """Unit mask ``[B, num units]`` -> per final token ``[B, L_final]`` (raster order)."""
        lu = math.prod(self.final_unit)
        # [B, units] -> [B * units, 1, Lu, 1] -> [B, L, 1]
        per_token = keep[:, :, None, None].expand(-1, -1, lu, 1).reshape(-1, 1, lu, 1)
        return window_merge(per_token, keep.shape[0], self.final_grid, self.final_unit)[..., 0]

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The pixels each final token predicts, ``[B, L_final, pixels per token]``."""
        x = self.encoder._check_input(x)
        ph, pw = self.pred_size
        if x.ndim == 4:  # image: [B, C, H, W] -> [B, h, w, C, ph, pw] -> (C, ph, pw) per patch
            t = x.unfold(2, ph, ph).unfold(3, pw, pw).permute(0, 2, 3, 1, 4, 5)
        else:  # video: one frame per token's time extent, (ph, pw, C) per patch
            x = x[:, :, ::self.time_step]
            t = x.unfold(3, ph, ph).unfold(4, pw, pw).permute(0, 2, 3, 4, 5, 6, 1)
            t = t.flatten(1, 3)
        return t.reshape(x.shape[0], -1, math.prod(t.shape[-3:]))

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.6,
                keep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> MAEOutput:
        """Loss of reconstructing the masked units of ``x``; ``keep`` (``[B, num units]`` bool,
        True = seen) fixes the mask, else one is drawn with ``mask_ratio``."""
        if keep is None:
            keep = random_keep(x.shape[0], self.num_units, mask_ratio, generator).to(x.device)
        ids = ids_from_keep(keep)
        pred = self.forward_decoder(self.forward_encoder(x, ids), ids)
        masked = ~self.token_keep(keep_from_ids(ids, self.num_units))
        target = self.targets(x)[masked].to(pred.dtype)
        if self.decoder_cfg.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        pred = pred[masked]
        loss = F.mse_loss(pred.float(), target.float())
        return MAEOutput(loss, pred, target, keep)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights, keyed for ``build_model(cfg)`` (no ``norm`` / ``head``)."""
        return {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}


def load_encoder(model: MultiscaleViT, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load pretrained encoder weights into a standard model; every tensor must fit by name and
    shape. Returns the keys left at their initialisation (the head and its norm)."""
    sd = dict(state_dict)
    if any(k.startswith("encoder.") for k in sd):  # a whole MaskedAutoencoder state dict
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    own = model.state_dict()
    fresh = sorted(k for k in set(own) - set(sd) if k.split(".")[0] in ("norm", "head"))
    problems = [f"missing {k}" for k in sorted(set(own) - set(sd)) if k not in fresh]
    problems += [f"unexpected {k}" for k in sorted(set(sd) - set(own))]
    problems += [f"{k} has shape {tuple(v.shape)}, the model {tuple(own[k].shape)}"
                 for k, v in sd.items() if k in own and v.shape != own[k].shape]
    if problems:
        raise ValueError(f"pretrained encoder: does not fit the model ({len(problems)} "
                         "problems): " + "; ".join(problems[:10]))
    model.load_state_dict(sd, strict=False)
    return fresh


_ENCODER_PREFIXES = ("patch_embed.", "pos_embed", "blocks.")


def convert_mae_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``hiera-transformer``'s ``MaskedAutoencoderHiera`` state dict -> ``MaskedAutoencoder``'s
    (the encoder's keys move under ``encoder.``; the MAE's own keys keep their names)."""
    sd = dict(state_dict.get("model_state", state_dict))
    return {("encoder." + k if k.startswith(_ENCODER_PREFIXES) else k): v
            for k, v in sd.items()}
