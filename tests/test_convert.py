"""Converted reference weights reproduce the references' logits (CPU, fp32, eval, <= 1e-4)."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from references import (
    build_reference,
    converted_pair,
    input_for,
    max_logit_diff,
    perturb_,
)

from mvit_lab import build_model, get_config
from mvit_lab.convert import (
    check_state_dict,
    convert_state_dict,
    detect_source,
    load_pretrained,
    unwrap_checkpoint,
)
from mvit_lab.reference import config_from_reference

TOL = 1e-4


def _check(source: str, name: str, kwargs: dict, batch: int = 2) -> float:
    ref, ours = converted_pair(source, name, kwargs)
    diff = max_logit_diff(ref, ours, input_for(ours.cfg.input_size, ours.cfg.in_chans, batch))
    print(f"{source} {name} {kwargs}: max |logit diff| = {diff:.2e}")
    assert diff <= TOL
    return diff


# -- every published model, at its published size -----------------------------------------------
@pytest.mark.parametrize(("source", "name", "preset"), [
    ("timm", "mvitv2_tiny", "mvitv2_t"),
    ("timm", "mvitv2_small", "mvitv2_s"),
    ("timm", "mvitv2_base", "mvitv2_b"),
    pytest.param("timm", "mvitv2_large", "mvitv2_l", marks=pytest.mark.slow),
    ("timm", "hiera_tiny_224", "hiera_t"),
    ("timm", "hiera_small_224", "hiera_s"),
    ("timm", "hiera_base_224", "hiera_b"),
    ("timm", "hiera_base_plus_224", "hiera_b_plus"),
    ("hiera", "hiera_tiny_224", "hiera_t"),
    pytest.param("hiera", "hiera_base_16x224", "hiera_b_16x224", marks=pytest.mark.slow),
    pytest.param("torchvision", "mvit_v1_b", "mvitv1_b_16x4", marks=pytest.mark.slow),
    pytest.param("torchvision", "mvit_v2_s", "mvitv2_s_16x4", marks=pytest.mark.slow),
])
def test_published_models_match(source, name, preset):
    cfg = config_from_reference(source, name)
    # the reference's architecture is the preset's (training-only knobs aside)
    assert cfg.replace(drop_path_rate=0.0, head_dropout=0.0) == get_config(preset)
    _check(source, name, {}, batch=1 if source in ("torchvision", "hiera") else 2)


def test_timm_cls_token_model_needs_timm_residual_pooling():
    cfg = config_from_reference("timm", "mvitv2_small_cls")
    assert cfg.residual_pooling_cls and cfg.head_pool == "cls"
    _check("timm", "mvitv2_small_cls", dict(img_size=(64, 64)))
    # the original code's residual pooling (cls token excluded) gives different logits
    ref, ours = converted_pair("timm", "mvitv2_small_cls", dict(img_size=(64, 64)))
    original = build_model(ours.cfg.replace(residual_pooling_cls=False)).eval()
    original.load_state_dict(ours.state_dict())
    assert max_logit_diff(ref, original, input_for(ours.cfg.input_size)) > 1e-3


# -- non-default configs drawn from the references' own constructor arguments --------------------
SETTINGS = settings(max_examples=12, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@st.composite
def timm_mvitv2_args(draw):
    n = draw(st.integers(2, 4))
    q_pools = draw(st.integers(0, n - 1))
    side = draw(st.sampled_from([32, 64]))
    return dict(
        depths=tuple(draw(st.integers(1, 2)) for _ in range(n)),
        embed_dim=draw(st.sampled_from([16, 24])),
        num_heads=draw(st.sampled_from([1, 2])),
        mode=draw(st.sampled_from(["conv", "max", "avg"])),
        kernel_qkv=draw(st.sampled_from([(3, 3), (1, 1)])),
        stride_q=tuple((2, 2) if 0 < i <= q_pools else (1, 1) for i in range(n)),
        stride_kv_adaptive=draw(st.sampled_from([(1, 1), (2, 2), (4, 4)])),
        use_cls_token=draw(st.booleans()),
        use_abs_pos=draw(st.booleans()),
        residual_pooling=draw(st.booleans()),
        rel_pos_type=draw(st.sampled_from(["spatial", "none"])),
        expand_attn=draw(st.booleans()),
        mlp_ratio=draw(st.sampled_from([2.0, 4.0])),
        qkv_bias=draw(st.booleans()),
        img_size=(side, side),
        num_classes=draw(st.integers(2, 9)),
    )


@st.composite
def hiera_args(draw, video: bool, timm: bool):
    n = draw(st.integers(2, 4))
    kw: dict = dict(
        embed_dim=draw(st.sampled_from([16, 24])),
        num_heads=draw(st.sampled_from([1, 2])),
        stages=tuple(draw(st.integers(1, 2)) for _ in range(n)),
        q_pool=draw(st.integers(0, n - 1)),
        mask_unit_attn=tuple(draw(st.booleans()) for _ in range(n)),
        dim_mul=draw(st.sampled_from([1.5, 2.0])),
        head_mul=draw(st.sampled_from([1.0, 2.0])),
        mlp_ratio=draw(st.sampled_from([2.0, 4.0])),
        num_classes=draw(st.integers(2, 9)),
    )
    side = draw(st.sampled_from([32, 64]))
    # Hiera's precondition: a mask unit divides q_stride ** (stages - 1); otherwise its
    # unrolled token order does not group a mask unit's tokens into one window
    mu = draw(st.sampled_from([m for m in (2, 4, 8) if 2 ** (n - 1) % m == 0]))
    if video:
        kw.update(input_size=(draw(st.sampled_from([4, 8])), side, side), q_stride=(1, 2, 2),
                  mask_unit_size=(1, mu, mu), patch_kernel=(3, 4, 4), patch_stride=(2, 4, 4),
                  patch_padding=(1, 0, 0), sep_pos_embed=draw(st.booleans()))
    else:
        kw.update(mask_unit_size=(mu, mu), patch_kernel=(draw(st.sampled_from([4, 7])),) * 2,
                  patch_stride=(4, 4))
        kw["patch_padding"] = ((kw["patch_kernel"][0] - 4 + 1) // 2,) * 2
        kw["img_size" if timm else "input_size"] = (side, side)
    return kw


def _tv_blocks(depths, dim, heads, expand, q_every, kv, kernel):
    """A torchvision-style block table, written the way torchvision's builders write theirs."""
    blocks, kv = [], list(kv)
    for s, d in enumerate(depths):
        for j in range(d):
            first = j == 0 and s > 0
            if first:
                kv = [max(k // q, 1) for k, q in zip(kv, (1, 2, 2))]
            if expand:
                cin, cout = dim * 2 ** (s - 1 if first else s), dim * 2**s
            else:
                cin = dim * 2**s
                cout = dim * 2 ** (s + 1) if j == d - 1 and s < len(depths) - 1 else cin
            pool_q = first or q_every
            blocks.append(dict(num_heads=heads * 2**s, input_channels=cin, output_channels=cout,
                               kernel_q=list(kernel) if pool_q else [],
                               stride_q=([1, 2, 2] if first else [1, 1, 1]) if pool_q else [],
                               kernel_kv=list(kernel), stride_kv=list(kv)))
    return blocks


@st.composite
def torchvision_args(draw):
    n = draw(st.integers(2, 4))
    expand = draw(st.booleans())
    return dict(
        block_setting=_tv_blocks(
            tuple(draw(st.integers(1, 2)) for _ in range(n)), draw(st.sampled_from([16, 24])),
            draw(st.sampled_from([1, 2])), expand, draw(st.booleans()),
            draw(st.sampled_from([(1, 2, 2), (1, 4, 4)])),
            draw(st.sampled_from([(3, 3, 3), (1, 3, 3)]))),
        proj_after_attn=expand,
        residual_pool=draw(st.booleans()),
        residual_with_cls_embed=draw(st.booleans()),
        rel_pos_embed=draw(st.booleans()),
        spatial_size=(draw(st.sampled_from([32, 64])),) * 2,
        temporal_size=draw(st.sampled_from([4, 8])),
        num_classes=draw(st.integers(2, 9)),
    )


# Configs a reference accepts but computes degenerately, which mvit-lab rejects by design:
# heads that do not divide a width (Hiera's reshape(-1) silently absorbs the remainder) and mask
# units smaller than a pooled token (Hiera's window size floors to 0 or 1).
DEGENERATE = ("num_heads:", "mask_unit_size:")


def _reference_or_skip(source, name, kwargs):
    """Draws the reference itself cannot build or run are not tests of the conversion."""
    try:
        cfg = config_from_reference(source, name, **kwargs)
    except ValueError as err:
        assume(not str(err).startswith(DEGENERATE))
        raise
    try:
        ref = build_reference(source, name, kwargs).eval()
        with torch.no_grad():
            ref(input_for(cfg.input_size, batch=1))
    except (AssertionError, RuntimeError, ZeroDivisionError, IndexError) as err:
        assume(False)
        raise AssertionError from err


FAMILIES = [
    ("timm", "mvitv2_tiny", timm_mvitv2_args()),
    ("timm", "hiera_tiny_224", hiera_args(video=False, timm=True)),
    ("hiera", "hiera_tiny_224", hiera_args(video=False, timm=False)),
    ("hiera", "hiera_base_16x224", hiera_args(video=True, timm=False)),
    ("torchvision", "mvit_v2_s", torchvision_args()),
]


@pytest.mark.parametrize(("source", "name", "strategy"), FAMILIES,
                         ids=[f"{s}-{n}" for s, n, _ in FAMILIES])
@SETTINGS
@given(data=st.data())
def test_variants_from_the_references_own_arguments(source, name, strategy, data):
    kwargs = data.draw(strategy)
    _reference_or_skip(source, name, kwargs)
    _check(source, name, kwargs)


# -- per-stage features, so a mismatch points at its stage ----------------------------------------
def _assert_stages(ref_maps, ours_maps):
    assert len(ref_maps) == len(ours_maps)
    for stage, (a, b) in enumerate(zip(ref_maps, ours_maps)):
        assert a.shape == b.shape, f"stage {stage}: {a.shape} != {b.shape}"
        diff = (a - b).abs().max().item()
        assert diff <= TOL, f"stage {stage} differs by {diff:.2e}"


@pytest.mark.parametrize("name", ["mvitv2_tiny", "hiera_tiny_224"])
def test_intermediates_timm(name):
    ref, ours = converted_pair("timm", name, dict(img_size=(64, 64)))
    x = input_for(ours.cfg.input_size)
    with torch.no_grad():
        _assert_stages(ref.forward_intermediates(x, intermediates_only=True),
                       ours.forward_intermediates(x))


def test_intermediates_official_hiera_video():
    kwargs = dict(input_size=(4, 64, 64), q_stride=(1, 2, 2), mask_unit_size=(1, 4, 4),
                  stages=(1, 2, 2, 1), patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4),
                  patch_padding=(1, 3, 3), sep_pos_embed=True, num_classes=400)
    ref, ours = converted_pair("hiera", "hiera_base_16x224", kwargs)
    x = input_for(ours.cfg.input_size)
    with torch.no_grad():
        _, maps = ref(x, return_intermediates=True)  # [B, T, H, W, C] per stage
        _assert_stages([m.permute(0, 4, 1, 2, 3) for m in maps], ours.forward_intermediates(x))


def test_intermediates_torchvision():
    ref, ours = converted_pair("torchvision", "mvit_v2_s",
                               dict(spatial_size=(64, 64), temporal_size=4))
    x = input_for(ours.cfg.input_size)
    maps = []
    for i in ours.stage_ends:  # torchvision has no intermediates API: hook its stage ends
        ref.blocks[i].register_forward_hook(lambda m, args, out: maps.append(out))
    with torch.no_grad():
        ref(x)
    ref_maps = [tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, *thw)
                for tokens, thw in maps]
    with torch.no_grad():
        _assert_stages(ref_maps, ours.forward_intermediates(x))


# -- SlowFast and facebookresearch/mvit checkpoints ---------------------------------------------
# No package ships these models, so a reference of the same architecture is re-keyed into their
# documented layout: flat blocks.N, attn.pool_q + attn.norm_q, head.projection, model_state.
_SLOWFAST_FROM_TORCHVISION = [
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^pos_encoding\.class_token$", "cls_token"),
    (r"^pos_encoding\.spatial_pos$", "pos_embed_spatial"),
    (r"^pos_encoding\.temporal_pos$", "pos_embed_temporal"),
    (r"^pos_encoding\.class_pos$", "pos_embed_class"),
    (r"\.attn\.project\.0\.", ".attn.proj."),
    (r"\.attn\.pool_([qkv])\.pool\.weight$", r".attn.pool_\1.weight"),
    (r"\.attn\.pool_([qkv])\.norm_act\.0\.", r".attn.norm_\1."),
    (r"\.mlp\.0\.", ".mlp.fc1."),
    (r"\.mlp\.3\.", ".mlp.fc2."),
    (r"^(blocks\.\d+)\.project\.", r"\1.proj."),
    (r"^head\.1\.", "head.projection."),
]
_MVIT_FROM_TIMM = [
    (r"\.shortcut_proj_(attn|mlp)\.", ".proj."),
    (r"^head\.fc\.", "head.projection."),
]


def _rekey(sd, rules, flatten_depths=None):
    out = {}
    offsets = [sum(flatten_depths[:i]) for i in range(len(flatten_depths or []))]
    for key, value in sd.items():
        if flatten_depths:
            key = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.",
                         lambda m: f"blocks.{offsets[int(m[1])] + int(m[2])}.", key)
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        if key in ("cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"):
            value = value.reshape(1, -1, value.shape[-1])
        out[key] = value
    return out


@pytest.mark.parametrize("name", [
    "mvit_v2_s",  # MViTv2-S: rel-pos, residual pooling, widening in attention
    "mvit_v1_b",  # MViTv1-B: separate space / time / class positions, widening in the MLP
])
def test_slowfast_checkpoint(tmp_path, name):
    torch.manual_seed(0)
    kwargs = dict(spatial_size=(64, 64), temporal_size=4)
    ref = perturb_(build_reference("torchvision", name, kwargs)).eval()
    cfg = config_from_reference("torchvision", name, **kwargs)
    path = tmp_path / "slowfast.pyth"
    torch.save({"epoch": 30, "model_state": _rekey(ref.state_dict(), _SLOWFAST_FROM_TORCHVISION),
                "optimizer_state": {}}, path)
    model = load_pretrained(path, cfg).eval()  # the source is detected from the keys
    diff = max_logit_diff(ref, model, input_for(cfg.input_size))
    print(f"slowfast ({name} layout): max |logit diff| = {diff:.2e}")
    assert diff <= TOL


def test_mvit_checkpoint(tmp_path):
    torch.manual_seed(0)
    kwargs = dict(img_size=(64, 64))
    ref = perturb_(build_reference("timm", "mvitv2_tiny", kwargs)).eval()
    cfg = config_from_reference("timm", "mvitv2_tiny", **kwargs)
    sd = _rekey(ref.state_dict(), _MVIT_FROM_TIMM, flatten_depths=cfg.depths)
    assert detect_source(sd) == "mvit"
    path = tmp_path / "MViTv2_T_in1k.pyth"
    torch.save({"model_state": sd, "epoch": 300}, path)
    model = load_pretrained(path, cfg, source="mvit").eval()
    diff = max_logit_diff(ref, model, input_for(cfg.input_size))
    print(f"mvit: max |logit diff| = {diff:.2e}")
    assert diff <= TOL


# -- load_pretrained, detection and errors -------------------------------------------------------
def test_detect_source_for_every_layout():
    with torch.device("meta"):
        assert detect_source(build_reference("timm", "mvitv2_tiny", {}).state_dict()) == "timm"
        assert detect_source(build_reference("timm", "hiera_tiny_224", {}).state_dict()) == "timm"
        from torchvision.models.video import mvit_v2_s
        assert detect_source(mvit_v2_s().state_dict()) == "torchvision"
    hiera_sd = build_reference("hiera", "hiera_tiny_224", dict(input_size=(64, 64))).state_dict()
    assert detect_source(hiera_sd) == "hiera"
    ours = build_model("mvitv2_t", input_size=(1, 64, 64)).state_dict()
    with pytest.raises(ValueError, match="already an mvit-lab state dict"):
        detect_source(ours)


def test_unwrap_checkpoint_handles_wrappers_and_ddp_prefix():
    t = torch.zeros(1)
    assert unwrap_checkpoint({"model_state": {"a": t}, "epoch": 3}) == {"a": t}
    assert unwrap_checkpoint({"state_dict": {"module.a": t, "module.b": t}}) == {"a": t, "b": t}
    with pytest.raises(ValueError, match="not tensors"):
        unwrap_checkpoint({"a": t, "epoch": 3})


def test_load_pretrained_into_a_preset_and_fine_tune_head(tmp_path):
    ref = build_reference("timm", "hiera_tiny_224", dict(img_size=(64, 64)))
    path = tmp_path / "hiera_tiny.pth"
    torch.save(ref.state_dict(), path)
    model = load_pretrained(path, get_config("hiera_t", input_size=(1, 64, 64)))
    assert torch.equal(model.blocks[3].attn.qkv.weight, ref.blocks[3].attn.qkv.weight)
    # a new label set: everything but the classifier comes from the checkpoint
    tuned = load_pretrained(path, get_config("hiera_t", input_size=(1, 64, 64), num_classes=10),
                            reset_head=True)
    assert tuned.head.fc.out_features == 10
    assert torch.equal(tuned.norm.weight, ref.head.norm.weight)


def test_load_pretrained_takes_the_encoder_of_mae_checkpoints(tmp_path):
    """Hiera's MAE release layout (model_state, with decoder), mvit-lab's MAE, and an
    encoder.pt all fine-tune from the encoder; the head and its norm start fresh."""
    from hiera.hiera_mae import MaskedAutoencoderHiera

    from mvit_lab.models.mae import DecoderConfig, MaskedAutoencoder

    cfg = get_config("hiera_t", input_size=(1, 64, 64), q_pool=2, num_classes=10)
    official = MaskedAutoencoderHiera(input_size=(64, 64), embed_dim=96, num_heads=1,
                                      stages=(1, 2, 7, 2), q_pool=2, decoder_embed_dim=32,
                                      decoder_depth=1, decoder_num_heads=2)
    ours = MaskedAutoencoder(cfg, DecoderConfig(dim=32, depth=1, heads=2))
    files = {"official.pth": {"model_state": official.state_dict()},
             "ours.pth": ours.state_dict(), "encoder.pt": ours.encoder_state_dict()}
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
    assert detect_source(files["official.pth"]["model_state"]) == "mae"
    assert detect_source(files["ours.pth"]) == "mae"
    assert detect_source(files["encoder.pt"]) == "encoder"
    for name, source in (("official.pth", official), ("ours.pth", ours.encoder),
                         ("encoder.pt", ours.encoder)):
        model = load_pretrained(tmp_path / name, cfg)
        assert torch.equal(model.blocks[5].attn.qkv.weight, source.blocks[5].attn.qkv.weight)
        assert torch.equal(model.pos_embed, source.pos_embed)
        assert model.head.fc.out_features == 10 and model(torch.randn(1, 3, 64, 64)).shape == (
            1, 10)


def test_load_pretrained_lists_what_does_not_fit(tmp_path):
    ref = build_reference("timm", "hiera_tiny_224", dict(img_size=(64, 64)))
    path = tmp_path / "hiera_tiny.pth"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ValueError) as info:
        load_pretrained(path, get_config("hiera_s", input_size=(1, 64, 64)))
    msg = str(info.value)
    assert "does not fit" in msg and "missing" in msg and "blocks.10.attn.qkv.weight" in msg
    with pytest.raises(ValueError, match=r"wrong shape .*head.fc.weight"):
        load_pretrained(path, get_config("hiera_t", input_size=(1, 64, 64), num_classes=10))


def test_load_pretrained_refuses_pickled_objects_and_junk(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_pretrained(junk, "hiera_t")

    class Evil:
        def __reduce__(self):
            return (print, ("side effect",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": Evil()}, evil)
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_pretrained(evil, "hiera_t")  # weights_only=True refuses arbitrary objects
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_pretrained(tmp_path / "missing.pth", "hiera_t")


# -- SlowFast PATCH_2D, SEPARATE_QKV and POOL_FIRST checkpoints, synthetically ------------------
# An mvit-lab model written out in SlowFast's layout (test_convert_originals.py runs SlowFast's
# own classes where their sources exist). The embedded cfg is SlowFast's ImageNet MVITv2_T.yaml
# at 64 px and EMBED_DIM 32 (96 published), to keep the tests seconds long.
_SLOWFAST_MVITV2_T = """
DATA: {NUM_FRAMES: 1, TRAIN_CROP_SIZE: 64, TEST_CROP_SIZE: 64, INPUT_CHANNEL_NUM: [3]}
MVIT:
  PATCH_2D: True
  ZERO_DECAY_POS_CLS: False
  MODE: "conv"
  CLS_EMBED_ON: False
  PATCH_KERNEL: [7, 7]
  PATCH_STRIDE: [4, 4]
  PATCH_PADDING: [3, 3]
  EMBED_DIM: 32
  NUM_HEADS: 1
  MLP_RATIO: 4.0
  QKV_BIAS: True
  DROPPATH_RATE: 0.1
  DEPTH: 10
  NORM: "layernorm"
  DIM_MUL: [[1, 2.0], [3, 2.0], [8, 2.0]]
  HEAD_MUL: [[1, 2.0], [3, 2.0], [8, 2.0]]
  POOL_KVQ_KERNEL: [1, 3, 3]
  POOL_KV_STRIDE_ADAPTIVE: [1, 4, 4]
  POOL_Q_STRIDE: [[0, 1, 1, 1], [1, 1, 2, 2], [2, 1, 1, 1], [3, 1, 2, 2], [4, 1, 1, 1],
                  [5, 1, 1, 1], [6, 1, 1, 1], [7, 1, 1, 1], [8, 1, 2, 2], [9, 1, 1, 1]]
  RESIDUAL_POOLING: True
  USE_ABS_POS: False
  REL_POS_SPATIAL: True
  DIM_MUL_IN_ATT: True
MODEL: {NUM_CLASSES: 1000, ARCH: mvit, MODEL_NAME: MViT, DROPOUT_RATE: 0.0}
SOLVER: {BASE_LR: 0.00025}
"""


def _to_slowfast(sd, separate_qkv=False, time_kernel=1):
    """mvit-lab keys -> SlowFast's: 3-D pooling convs [hd, 1, kt, kh, kw] (PATCH_2D), norm_q,
    head.projection; with ``separate_qkv`` the fused qkv split into q / k / v."""
    out = {}
    for key, value in sd.items():
        m = re.match(r"^(blocks\.\d+\.attn)\.pool_([qkv])\.(conv|norm)\.(.*)$", key)
        if m and m[3] == "conv":
            w = torch.randn(*value.shape[:2], time_kernel, *value.shape[2:])  # unseen taps
            w[:, :, time_kernel // 2] = value
            key, value = f"{m[1]}.pool_{m[2]}.{m[4]}", w
        elif m:
            key = f"{m[1]}.norm_{m[2]}.{m[4]}"
        elif separate_qkv and re.search(r"\.attn\.qkv\.", key):
            for name, part in zip("qkv", value.chunk(3)):
                out[key.replace(".qkv.", f".{name}.")] = part
            continue
        out[key.replace("head.fc.", "head.projection.")] = value
    return out


def _ours(pool_first=False, **kw):
    cfg = config_from_reference("slowfast", _SLOWFAST_MVITV2_T).replace(pool_first=pool_first,
                                                                         **kw)
    torch.manual_seed(0)
    return perturb_(build_model(cfg)).eval()


def _same_logits(a, b):
    x = input_for(a.cfg.input_size)
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


@pytest.mark.parametrize("time_kernel", [1, 3])
def test_slowfast_patch_2d_pool_kernels_convert(tmp_path, time_kernel):
    """Before: 35 shape errors on MViTv1-B (SlowFast's MVIT_B_16_CONV), one per pooling conv."""
    cfg = get_config("mvitv1_b", input_size=(1, 64, 64), embed_dim=32)
    torch.manual_seed(0)
    ours = perturb_(build_model(cfg)).eval()
    sd = _to_slowfast(ours.state_dict(), time_kernel=time_kernel)
    assert sum(k.endswith((".pool_q.weight", ".pool_k.weight", ".pool_v.weight"))
               for k in sd) == 35
    assert detect_source(sd) == "slowfast"
    path = tmp_path / "MVIT_B_16_CONV.pyth"
    torch.save({"model_state": sd, "epoch": 300}, path)
    # on a one-frame grid only the centre time tap meets a frame; the others are ignored
    assert _same_logits(load_pretrained(path, cfg).eval(), ours) == 0.0
    if time_kernel > 1:
        even = {k: v[:, :, :2] if v.ndim == 5 else v for k, v in sd.items()}
        with pytest.raises(ValueError, match="even temporal kernel 2"):
            convert_state_dict(even, "slowfast", cfg)


def test_slowfast_checkpoint_builds_from_its_own_cfg(tmp_path):
    ours = _ours()
    path = tmp_path / "checkpoint_epoch_00300.pyth"
    torch.save({"model_state": _to_slowfast(ours.state_dict()), "epoch": 300,
                "cfg": _SLOWFAST_MVITV2_T}, path)
    model = load_pretrained(path).eval()  # no config: SlowFast's cfg entry says it all
    assert model.cfg == ours.cfg.replace(drop_path_rate=0.1)
    assert model.cfg.replace(drop_path_rate=0.0, input_size=(1, 224, 224),
                             embed_dim=96) == get_config("mvitv2_t")
    assert _same_logits(model, ours) == 0.0


def test_separate_qkv_checkpoints_are_fused(tmp_path):
    """Before: refused as POOL_FIRST. SEPARATE_QKV projects with three linears, then pools."""
    ours = _ours()
    sd = _to_slowfast(ours.state_dict(), separate_qkv=True)
    cfg_text = _SLOWFAST_MVITV2_T.replace("PATCH_2D: True", "PATCH_2D: True\n  SEPARATE_QKV: True")
    path = tmp_path / "separate.pyth"
    torch.save({"model_state": sd, "cfg": cfg_text}, path)
    assert _same_logits(load_pretrained(path).eval(), ours) < 1e-5
    # no cfg entry: the two layouts have the same keys, so the caller says which
    bare = tmp_path / "bare.pyth"
    torch.save({"model_state": sd}, bare)
    with pytest.raises(ValueError, match="no cfg entry that says which"):
        load_pretrained(bare, ours.cfg)
    assert _same_logits(load_pretrained(bare, ours.cfg, separate_qkv=True).eval(), ours) < 1e-5
    with pytest.raises(ValueError, match=r"^pool_first: the checkpoint has SEPARATE_QKV"):
        load_pretrained(path, ours.cfg.replace(pool_first=True))


def test_pool_first_checkpoints_load(tmp_path):
    """Before: refused by design. Now a pool_first config, read from the checkpoint's cfg."""
    ours = _ours(pool_first=True)
    sd = _to_slowfast(ours.state_dict())
    assert "blocks.1.attn.q.weight" in sd and "blocks.1.attn.norm_q.weight" in sd
    cfg_text = _SLOWFAST_MVITV2_T.replace("PATCH_2D: True", "PATCH_2D: True\n  POOL_FIRST: True")
    path = tmp_path / "pool_first.pyth"
    torch.save({"model_state": sd, "cfg": cfg_text}, path)
    model = load_pretrained(path).eval()
    assert model.cfg.pool_first and _same_logits(model, ours) == 0.0
    with pytest.raises(ValueError, match=r"^pool_first: the checkpoint has POOL_FIRST"):
        load_pretrained(path, ours.cfg.replace(pool_first=False))
    bare = tmp_path / "bare.pyth"
    torch.save(sd, bare)  # no cfg: a pool_first config is the caller's statement
    assert _same_logits(load_pretrained(bare, ours.cfg).eval(), ours) == 0.0
    with pytest.raises(ValueError, match="separate_qkv: True, but the checkpoint's own cfg"):
        load_pretrained(path, separate_qkv=True)
    fused = {"blocks.0.attn.qkv.weight": torch.zeros(3, 1)}
    with pytest.raises(ValueError, match=r"^pool_first: the config pools before projecting"):
        convert_state_dict(fused, "slowfast", ours.cfg)


def test_config_from_reference_reads_yaml(tmp_path):
    cfg = config_from_reference("slowfast", _SLOWFAST_MVITV2_T, DATA={"TRAIN_CROP_SIZE": 224},
                                MVIT={"DROPPATH_RATE": 0.0, "EMBED_DIM": 96})
    assert cfg == get_config("mvitv2_t")
    path = tmp_path / "MVITv2_T.yaml"
    path.write_text(_SLOWFAST_MVITV2_T)
    assert config_from_reference("slowfast", str(path)).input_size == (1, 64, 64)
    # yacs-style tuples are read as integer tuples, nothing is evaluated
    text = _SLOWFAST_MVITV2_T.replace("PATCH_2D: True", "PATCH_2D: False")
    for key, value in (("KERNEL", "(3, 7, 7)"), ("STRIDE", "(2, 4, 4)"), ("PADDING", "(1, 3, 3)")):
        text = re.sub(rf"PATCH_{key}: \[.*\]", f"PATCH_{key}: {value}", text)
    video = config_from_reference("slowfast", text, DATA={"NUM_FRAMES": 4})
    assert video.input_size == (4, 64, 64) and video.patch_kernel == (3, 7, 7)


@pytest.mark.parametrize(("text", "overrides", "error"), [
    (_SLOWFAST_MVITV2_T, dict(MVIT={"POOL_SIZE": 3}), r"^MVIT\.POOL_SIZE: not an option"),
    (_SLOWFAST_MVITV2_T, dict(MVIT={"REV": {"ENABLE": True}}), r"^MVIT\.REV\.ENABLE: "),
    (_SLOWFAST_MVITV2_T, dict(MVIT={"MODE": "conv_unshared"}), r"^MVIT\.MODE: "),
    (_SLOWFAST_MVITV2_T, dict(MVIT={"NORM_STEM": True}), r"^MVIT\.NORM_STEM: "),
    (_SLOWFAST_MVITV2_T, dict(MODEL={"MODEL_NAME": "MaskMViT"}), r"^MODEL\.MODEL_NAME: "),
    (_SLOWFAST_MVITV2_T, dict(MVIT={"POOL_KVQ_KERNEL": [1, 4, 4]}),
     r"^MVIT\.POOL_KVQ_KERNEL: kernel \[1, 4, 4\] with stride \[1, 1, 1\] is padded"),
    (_SLOWFAST_MVITV2_T, dict(DATA={"TRAIN_CROP_SIZE": 72}), r"^MVIT: the blocks are not"),
    ("MVIT:\n  DEPTH: 2\n DIM_MUL: []", {}, r"^name: not valid YAML .* at line 3"),
    ("missing.yaml", {}, r"^name: no such YAML file"),
])
def test_config_from_reference_yaml_errors_name_the_key(text, overrides, error):
    with pytest.raises(ValueError, match=error):
        config_from_reference("slowfast", text, **overrides)


def test_load_pretrained_without_config_needs_an_embedded_one(tmp_path):
    ref = build_reference("timm", "hiera_tiny_224", dict(img_size=(64, 64)))
    path = tmp_path / "hiera_tiny.pth"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ValueError, match=r"^cfg_or_preset: required for a timm checkpoint"):
        load_pretrained(path)
    sd = _to_slowfast(_ours().state_dict())
    torch.save({"model_state": sd}, path)
    with pytest.raises(ValueError, match="has no cfg entry to read the architecture from"):
        load_pretrained(path)


def test_config_from_reference_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^pool_first: "):
        config_from_reference("timm", "mvitv2_tiny", pool_first=True)
    with pytest.raises(ValueError, match=r"^img_sizes: not an argument"):
        config_from_reference("timm", "hiera_tiny_224", img_sizes=(64, 64))
    with pytest.raises(ValueError, match=r"^name: timm has no model 'mvitv3'"):
        config_from_reference("timm", "mvitv3")
    with pytest.raises(ValueError, match=r"^abs_win_pos_embed: "):
        config_from_reference("timm", "hiera_tiny_224", abs_win_pos_embed=True)
    with pytest.raises(ValueError, match=r"^source: unknown 'pyslowfast'"):
        config_from_reference("pyslowfast", "MVITv2_S_16x4")


def test_converted_state_dict_fits_exactly():
    ref = build_reference("torchvision", "mvit_v1_b", dict(spatial_size=(64, 64),
                                                          temporal_size=4))
    cfg = config_from_reference("torchvision", "mvit_v1_b", spatial_size=(64, 64),
                                temporal_size=4)
    assert check_state_dict(build_model(cfg), convert_state_dict(ref.state_dict(),
                                                                 "torchvision", cfg)) == []
