"""The train section's speed switches: validated, applied, and (where a CPU can) checked to
compute what the plain step computes."""

from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.train import train
from mvit_lab.train._resume import check_resume_recipe
from mvit_lab.train._shared import amp_setup
from mvit_lab.train.efficiency import amp_dtype, optimizer_options, prepare_model

TINY_MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                  patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
                  mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10,
                  drop_path_rate=0.1)


def _exp(epochs=1, fraction=0.3, **train_kw):
    return experiment_from_dict(dict(
        name="tiny", data=dict(dataset="digits", train_fraction=fraction),
        model=dict(TINY_MODEL),
        train={**dict(epochs=epochs, batch_size=128, lr=0.003, warmup_epochs=1, seed=0),
               **train_kw}))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("compile", "yes", "^train.compile: must be true or false"),
    ("activation_checkpointing", 1, "^train.activation_checkpointing: must be true or false"),
    ("fused_adamw", None, "^train.fused_adamw: must be true or false"),
    ("tf32", "on", "^train.tf32: must be true or false"),
    ("pin_memory", 0, "^train.pin_memory: must be true or false"),
    ("keep", "all", "^train.keep: must be one of 'last', 'best', 'none'"),
    ("keep_weights", "final", "^train.keep_weights: must be true or false"),
    ("amp", "bf16", "^train.amp: must be one of 'auto', 'bfloat16'"),
])
def test_bad_switches_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        _exp(**{key: value})


def test_float16_on_a_cpu_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="^train.amp: float16 autocast needs CUDA"):
        _exp(amp="float16", device="cpu")
    with pytest.raises(ValueError, match="^train.amp: float16 autocast needs CUDA, and this "
                                         "run is on cpu"):
        amp_dtype("float16", "cpu")  # device: auto, resolved to the CPU at run time


def test_amp_dtype_per_device():
    assert amp_dtype("auto", "cpu") == "float32" and amp_dtype("auto", "cuda") == "bfloat16"
    assert amp_dtype("bfloat16", "cpu") == "bfloat16" and amp_dtype("none", "cuda") == "float32"
    assert amp_dtype("float16", "cuda") == "float16"


def test_bf16_autocast_runs_on_the_cpu():
    used, autocast, scaler = amp_setup(torch.device("cpu"), "bfloat16")
    assert used and not scaler.is_enabled()
    model = torch.nn.Linear(8, 4)
    with autocast():
        assert model(torch.randn(2, 8)).dtype == torch.bfloat16
    used, autocast, _ = amp_setup(torch.device("cpu"), "auto")
    with autocast():
        assert not used and model(torch.randn(2, 8)).dtype == torch.float32


@pytest.mark.slow  # four digits epochs
def test_a_bf16_cpu_run_trains_in_bf16_and_says_so():
    result = train(_exp(epochs=2, fraction=1.0, amp="bfloat16", device="cpu"))
    assert result.final["amp_dtype"] == "bfloat16"
    plain = train(_exp(epochs=2, fraction=1.0, device="cpu"))
    assert plain.final["amp_dtype"] == "float32"
    assert plain.final["train_loss"] != result.final["train_loss"]  # bf16 really ran
    assert result.final["val_top1"] > 20  # learns (chance: 10%), as float32 does
    assert abs(result.final["val_top1"] - plain.final["val_top1"]) < 10


def test_fused_adamw_only_on_cuda():
    assert optimizer_options(torch.device("cuda"), True) == {"fused": True}
    assert optimizer_options(torch.device("cuda"), False) == {}
    assert optimizer_options(torch.device("cpu"), True) == {}


def _grads(model, x):
    model.zero_grad()
    torch.manual_seed(3)  # drop path draws the same masks
    model(x).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("preset", ["hiera_t", "mvitv2_t"])
def test_activation_checkpointing_gives_the_same_gradients(preset):
    torch.manual_seed(0)
    model = build_model(preset, input_size=(1, 32, 32), embed_dim=16, depths=(1, 1, 1, 1),
                        num_classes=4, drop_path_rate=0.3).train()
    x = torch.randn(2, 3, 32, 32)
    plain = _grads(model, x)
    from torch.utils import checkpoint as ckpt

    calls = []
    original = ckpt.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return original(*args, **kwargs)

    runner = prepare_model(model, _exp(activation_checkpointing=True).train)
    assert runner is model and model.grad_checkpointing
    import mvit_lab.models.mvit as mvit_module

    mvit_module.checkpoint, saved = spy, mvit_module.checkpoint
    try:
        checkpointed = _grads(model, x)
    finally:
        mvit_module.checkpoint = saved
    assert calls == [False] * len(model.blocks)  # every block, non-reentrant
    assert plain.keys() == checkpointed.keys()
    for name in plain:  # drop path recomputed with the same RNG state: the same gradients
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6)
    model.eval()
    with torch.no_grad():  # nothing to recompute at evaluation
        calls.clear()
        model(x)
    assert calls == []


def test_compile_switch_returns_a_compiled_module_sharing_the_weights():
    model = build_model("hiera_t", input_size=(1, 32, 32), embed_dim=16, num_classes=4)
    runner = prepare_model(model, _exp(compile=True).train)
    assert runner is not model and runner._orig_mod is model  # lazily compiled on first call
    assert dict(runner.named_parameters()).keys() != dict(model.named_parameters()).keys()
    assert prepare_model(model, _exp().train) is model


@pytest.mark.slow
def test_a_compiled_cpu_run_matches_eager_and_saves_plain_keys(tmp_path):
    eager = train(_exp(device="cpu"))
    compiled = train(_exp(device="cpu", compile=True), tmp_path)
    assert compiled.final["val_top1"] == pytest.approx(eager.final["val_top1"], abs=3.0)
    assert compiled.final["train_loss"] == pytest.approx(eager.final["train_loss"], rel=0.02)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert not any(k.startswith("_orig_mod") for k in state["model"])  # loads without compile


def test_speed_switches_may_change_on_resume_but_amp_may_not(tmp_path):
    import json

    exp = _exp()
    (tmp_path / "experiment.json").write_text(json.dumps(exp.to_dict()))
    check_resume_recipe(tmp_path, _exp(compile=True, activation_checkpointing=True,
                                       fused_adamw=False, tf32=False, keep="none"))
    with pytest.raises(ValueError, match="train.amp 'auto' -> 'bfloat16'"):
        check_resume_recipe(tmp_path, _exp(amp="bfloat16"))


def test_a_run_recorded_before_the_switches_resumes(tmp_path):
    import json

    record = _exp().to_dict()
    for key in ("compile", "activation_checkpointing", "fused_adamw", "tf32", "pin_memory",
                "keep", "keep_weights"):
        del record["train"][key]
    record["train"]["amp"] = "bfloat16"  # the old default, which meant what auto means
    (tmp_path / "experiment.json").write_text(json.dumps(record))
    check_resume_recipe(tmp_path, _exp())  # no error
    with pytest.raises(ValueError, match="train.lr"):
        check_resume_recipe(tmp_path, _exp(lr=0.01))


@pytest.mark.parametrize("native", [False, True, None])
def test_emulated_cpu_bf16_is_named_as_slow(native, monkeypatch, caplog):
    import logging

    from mvit_lab.train import efficiency

    monkeypatch.setattr(efficiency, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="mvit_lab.train.efficiency"):
        amp_setup(torch.device("cpu"), "bfloat16")
        amp_setup(torch.device("cpu"), "auto")  # float32 on the CPU: nothing to say
    warned = [r.getMessage() for r in caplog.records]
    if native is False:
        assert len(warned) == 1 and "emulated" in warned[0] and "amp: auto" in warned[0]
    else:  # native bf16, or flags that cannot be read: no claim
        assert warned == []
