"""Any config either validates, builds and runs, or fails with a ValueError naming a field."""

from __future__ import annotations

import re
from collections import Counter

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvit_lab import ArchConfig, build_model
from mvit_lab.config import knob_names

FIELD_ERROR = re.compile(r"^([a-z_]+)(\[\d+\])?: ")


def _sometimes_wrong(draw, good, wrong):
    """Mostly a value from ``good``; now and then one from ``wrong`` (bad type or range)."""
    return draw(st.one_of(good, good, good, good, good, good, good, good, good, wrong))


def _triple(draw, image: bool, values, t_values=(1, 2)):
    t = 1 if image else draw(st.sampled_from(t_values))
    return (t, draw(st.sampled_from(values)), draw(st.sampled_from(values)))


@st.composite
def arch_knobs(draw) -> dict:
    image = draw(st.booleans())
    n_stages = draw(st.integers(1, 4))
    frames = 1 if image else draw(st.sampled_from([2, 4]))
    side = draw(st.sampled_from([16, 24, 32]))
    knobs: dict = dict(
        input_size=(frames, side, draw(st.sampled_from([side, 16, 32]))),
        in_chans=draw(st.sampled_from([1, 3])),
        num_classes=draw(st.integers(1, 7)),
        depths=tuple(draw(st.integers(1, 2)) for _ in range(n_stages)),
        embed_dim=draw(st.sampled_from([8, 12, 16])),
        num_heads=draw(st.sampled_from([1, 2, 4])),
        dim_mul=draw(st.sampled_from([1.0, 2.0, 2.0, 1.5])),
        head_mul=draw(st.sampled_from([1.0, 2.0])),
        mlp_ratio=draw(st.sampled_from([1.0, 2.0, 4.0])),
        qkv_bias=draw(st.booleans()),
        expand_attn=draw(st.booleans()),
        cls_token=draw(st.booleans()),
        # mostly the values that fit the input kind; the validation tests the others
        abs_pos=draw(st.sampled_from(["none", "joint"] + (["separate"] * 2 if not image else []))),
        rel_pos=draw(st.sampled_from(["none", "spatial"] + (["spatiotemporal"] * 2 if not image
                                                             else []))),
        pool_mode=draw(st.sampled_from(["conv", "max", "avg", "none"])),
        q_pool_every_block=draw(st.booleans()),
        kv_pool_every_block=draw(st.booleans()),
        residual_pooling=draw(st.booleans()),
        residual_pooling_cls=draw(st.booleans()),
        pool_first=draw(st.booleans()),
        skip_pool_kernel=draw(st.sampled_from(["stride", "stride+1"])),
        drop_path_rate=draw(st.sampled_from([0.0, 0.1])),
        head_dropout=draw(st.sampled_from([0.0, 0.2])),
        norm_eps=draw(st.sampled_from([1e-6, 1e-5])),
        head_norm=draw(st.sampled_from(["before", "after"])),
    )
    stride = draw(st.sampled_from([2, 4]))
    knobs["patch_stride"] = (1 if image else draw(st.sampled_from([1, 2])), stride, stride)
    extra = draw(st.sampled_from([0, 1, 3]))
    knobs["patch_kernel"] = tuple(s + (extra if s > 1 else 0) for s in knobs["patch_stride"])
    knobs["patch_padding"] = tuple((k - s + 1) // 2 for k, s in
                                   zip(knobs["patch_kernel"], knobs["patch_stride"]))
    knobs["pool_kernel"] = draw(st.one_of(st.sampled_from(["stride", "stride+1"]),
                                          st.just(_triple(draw, image, [1, 3], (1, 3)))))
    knobs["q_stride"] = _triple(draw, image, [1, 2], (1, 2))
    knobs["q_pool"] = draw(st.one_of(st.none(), st.integers(0, n_stages - 1)))
    knobs["kv_stride"] = draw(st.one_of(st.none(), st.just(_triple(draw, image, [1, 2, 4]))))
    if draw(st.booleans()):
        knobs["mask_unit_size"] = _triple(draw, image, [2, 4, 8])
        knobs["mask_unit_attn"] = tuple(draw(st.booleans()) for _ in range(n_stages))
        knobs["cls_token"] = knobs["cls_token"] and draw(st.integers(0, 4)) == 0
    knobs["head_pool"] = "cls" if knobs["cls_token"] and draw(st.booleans()) else "mean"
    if knobs["pool_mode"] == "none" and draw(st.booleans()):
        # make "no pooling" models (plain ViTs) reachable, not only their errors
        knobs.update(q_pool=0, kv_stride=None, q_pool_every_block=False)
    # now and then a knob gets a wrong type or an out-of-range value
    name = draw(st.sampled_from(sorted(knobs)))
    knobs[name] = _sometimes_wrong(draw, st.just(knobs[name]), st.sampled_from(
        [-1, 0, "x", None, 1.5, (1, 2), True, [], (0, 0, 0)]))
    return knobs


def _check_one(knobs: dict, seen: Counter) -> None:
    try:
        cfg = ArchConfig(**knobs)
    except ValueError as err:
        match = FIELD_ERROR.match(str(err))
        assert match and match[1] in knob_names(), f"error does not name a field: {err}"
        seen["invalid"] += 1
        return
    model = build_model(cfg)
    shape = (2, cfg.in_chans, *(cfg.input_size[1:] if cfg.is_image else cfg.input_size))
    with torch.no_grad():
        logits = model(torch.randn(shape))
    assert logits.shape == (2, cfg.num_classes)
    assert torch.isfinite(logits).all()
    seen["valid"] += 1
    seen["mask_unit"] += cfg.mask_unit_attn is not None
    seen["rel_pos"] += cfg.rel_pos != "none"
    seen["video"] += not cfg.is_image


def test_random_configs_build_and_run_or_name_a_field():
    seen: Counter = Counter()

    @settings(max_examples=500, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(knobs=arch_knobs())
    def check(knobs: dict) -> None:
        _check_one(knobs, seen)

    check()
    # the strategy must reach both sides, and the interesting parts of the valid side
    assert seen["valid"] >= 100, seen
    assert seen["invalid"] >= 50, seen
    assert min(seen["mask_unit"], seen["rel_pos"], seen["video"]) >= 10, seen
