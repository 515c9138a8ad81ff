"""The original SlowFast and facebookresearch/mvit models, their own configs and checkpoint
layout, against mvit-lab's conversion (CPU, fp32, eval).

These tests import the original model classes (see ``originals.py``) and skip where their
sources are absent (CI); ``test_slowfast_layouts.py`` covers the same paths synthetically.
"""

from __future__ import annotations

import pytest
import torch
from originals import load_original
from references import perturb_

from mvit_lab import get_config, load_pretrained
from mvit_lab.measure import count_flops
from mvit_lab.reference import config_from_reference

TOL = 1e-5
SIDE = 64


@pytest.fixture(scope="module")
def originals_root(tmp_path_factory):
    return tmp_path_factory.mktemp("originals")


def _original(repo, root, config, overrides):
    model_cls, get_cfg, configs = load_original(repo, root)
    cfg = get_cfg()
    cfg.merge_from_file(str(configs / config))
    cfg.DATA.TRAIN_CROP_SIZE = cfg.DATA.TEST_CROP_SIZE = SIDE
    cfg.merge_from_list([v for kv in overrides.items() for v in kv])
    cfg.NUM_GPUS = 1  # their builder reads it; the model stays on the CPU
    torch.manual_seed(0)
    model = perturb_(model_cls(cfg)).eval()
    model.head.act = torch.nn.Identity()  # their heads softmax in eval mode
    return model, cfg


def _input(repo, cfg):
    image = repo == "mvit" or cfg.MVIT.PATCH_2D
    shape = (2, 3, SIDE, SIDE) if image else (2, 3, cfg.DATA.NUM_FRAMES, SIDE, SIDE)
    return torch.randn(shape, generator=torch.Generator().manual_seed(1))


# narrow (EMBED_DIM 32) except the published MViTv1-B image model, to keep them seconds each
_N = {"MVIT.EMBED_DIM": 32}
_SLOW = pytest.mark.slow  # 15-30 s each on a shared 2-core machine
CASES = [
    # the three gaps, each on the published configs that have it
    pytest.param("slowfast", "ImageNet/MVIT_B_16_CONV.yaml", {},  # mvitv1_b's weights
                 marks=_SLOW),
    ("slowfast", "ImageNet/MVITv2_S.yaml", _N),  # PATCH_2D, MViTv2-S
    ("slowfast", "ImageNet/MVITv2_S.yaml", {**_N, "MVIT.SEPARATE_QKV": True}),
    ("slowfast", "ImageNet/MVIT_B_16_CONV.yaml", {**_N, "MVIT.POOL_FIRST": True}),
    pytest.param("slowfast", "ImageNet/MVITv2_T.yaml", {**_N, "MVIT.POOL_FIRST": True},
                 marks=_SLOW),
    pytest.param("slowfast", "Kinetics/MVITv2_S_16x4.yaml", {**_N, "DATA.NUM_FRAMES": 4},
                 marks=_SLOW),
    ("slowfast", "Kinetics/MVIT_B_16x4_CONV.yaml",
     {**_N, "DATA.NUM_FRAMES": 4, "MVIT.POOL_FIRST": True}),
    pytest.param("slowfast", "Kinetics/MVITv2_S_16x4.yaml",
                 {**_N, "DATA.NUM_FRAMES": 4, "MVIT.SEPARATE_QKV": True, "MVIT.MODE": "max"},
                 marks=_SLOW),
    # their avg pooling refuses a 2x2 grid under a 3x3 kernel even with padding: max here
    pytest.param("slowfast", "ImageNet/MVITv2_T.yaml",
                 {**_N, "MVIT.POOL_FIRST": True, "MVIT.MODE": "max", "MVIT.CLS_EMBED_ON": True},
                 marks=_SLOW),
    pytest.param("mvit", "MVITv2_T.yaml", _N, marks=_SLOW),
    ("mvit", "MVITv2_T.yaml", {**_N, "MVIT.POOL_FIRST": True, "MVIT.CLS_EMBED_ON": True}),
]


def _case_id(case):
    repo, config, overrides = case.values if hasattr(case, "values") else case
    flags = "-".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items()
                     if k != "MVIT.EMBED_DIM")
    return f"{repo}-{config.split('/')[-1][:-5]}{'-' + flags if flags else ''}"


@pytest.mark.parametrize(("repo", "config", "overrides"), CASES, ids=map(_case_id, CASES))
def test_original_checkpoint_loads_without_a_config(tmp_path, originals_root, repo, config,
                                                    overrides):
    """Their model, their config, their checkpoint dict (save_checkpoint: model_state + the
    cfg YAML dump): load_pretrained(path) alone reproduces the logits."""
    ref, cfg = _original(repo, originals_root, config, overrides)
    path = tmp_path / "checkpoint_epoch_00300.pyth"
    torch.save({"epoch": 300, "model_state": ref.state_dict(), "optimizer_state": {},
                "cfg": cfg.dump()}, path)
    model = load_pretrained(path).eval()
    x = _input(repo, cfg)
    with torch.no_grad():
        expected = ref([x]) if repo == "slowfast" else ref(x)
        diff = (expected - model(x)).abs().max().item()
    print(f"{repo} {config} {overrides}: max |logit diff| = {diff:.2e}")
    assert diff <= TOL
    assert model.cfg.pool_first == bool(cfg.MVIT.POOL_FIRST)


@pytest.mark.parametrize(("repo", "config", "preset"), [
    ("slowfast", "ImageNet/MVIT_B_16_CONV.yaml", "mvitv1_b"),
    ("slowfast", "ImageNet/MVITv2_T.yaml", "mvitv2_t"),
    ("slowfast", "ImageNet/MVITv2_S.yaml", "mvitv2_s"),
    ("slowfast", "Kinetics/MVIT_B_16x4_CONV.yaml", "mvitv1_b_16x4"),
    ("slowfast", "Kinetics/MVITv2_S_16x4.yaml", "mvitv2_s_16x4"),
    ("mvit", "MVITv2_T.yaml", "mvitv2_t"),
    ("mvit", "MVITv2_S.yaml", "mvitv2_s"),
    ("mvit", "MVITv2_B.yaml", "mvitv2_b"),
    ("mvit", "test/MVITv2_L_test.yaml", "mvitv2_l"),
])
def test_published_yaml_is_the_preset(originals_root, repo, config, preset):
    _, _, configs = load_original(repo, originals_root)
    cfg = config_from_reference(repo, str(configs / config))
    assert cfg.replace(drop_path_rate=0.0, head_dropout=0.0) == get_config(preset)


@pytest.mark.slow
def test_pool_first_flops_match_fvcore_on_slowfast(originals_root):
    """The meta counter on the converted pool-first model equals fvcore's count of SlowFast's
    own model (its explicit q @ k and attn @ v matmuls, linears, convs, rel-pos einsums)."""
    from fvcore.nn import FlopCountAnalysis

    ref, cfg = _original("slowfast", originals_root, "Kinetics/MVITv2_S_16x4.yaml",
                         {**_N, "DATA.NUM_FRAMES": 4, "MVIT.POOL_FIRST": True})
    x = _input("slowfast", cfg)[:1]
    analysis = FlopCountAnalysis(ref, ([x],))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    theirs = sum(n for op, n in by_op.items() if op not in ("layer_norm", "batch_norm"))
    ours = count_flops(config_from_reference("slowfast", cfg.dump()))
    print(f"pool-first MViTv2-S 4x64: fvcore on SlowFast {theirs / 1e9:.6f} GFLOPs, "
          f"meta counter {ours.gflops:.6f}")
    # fvcore's einsum handle rounds numpy's einsum_path cost to 4 digits (see test_flops)
    assert ours.gflops == pytest.approx(theirs / 1e9, rel=1e-4)
    assert ours.by_module["qkv"] > 0 and ours.skipped == {}
