from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mvit_lab import build_model
from mvit_lab.cli import main
from mvit_lab.measure import Protocol, measure_throughput
from mvit_lab.measure._devices import ProcessPeakMemory, peak_tflops

TINY = dict(input_size=(1, 32, 32), embed_dim=16, num_classes=5)


def test_cpu_inference_report():
    model = build_model("hiera_t", **TINY)
    r = measure_throughput(model, batch_size=2, protocol=Protocol.fixed(3, iters=2),
                           peak_tflops_override=1.0)
    assert r.device == "cpu" and r.mode == "infer" and r.dtype == "float32"
    assert r.items_per_s > 0 and r.latency_ms > 0 and r.spread >= 0
    assert r.items_per_s == pytest.approx(2 / (r.latency_ms / 1e3))
    assert r.peak_memory_mb > 0 and "RSS" in r.memory_kind
    # MFU = 2 * multiply-adds per item * items/s / peak
    assert r.mfu == pytest.approx(2 * r.gflops_per_item * 1e9 * r.items_per_s / 1e12)
    assert r.peak_source == "given"


def test_cpu_training_step_clears_gradients_and_counts_backward():
    model = build_model("mvitv2_t", **TINY)
    r = measure_throughput(model, batch_size=2, mode="train", protocol=Protocol.fixed(2),
                           peak_tflops_override=1.0)
    assert r.mode == "train" and model.training
    assert all(p.grad is None for p in model.parameters())
    assert r.achieved_tflops == pytest.approx(3 * 2 * r.gflops_per_item * r.items_per_s / 1e3)


def test_any_module_with_an_input_shape():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    r = measure_throughput(model, (3, 2, 2), batch_size=4, protocol=Protocol.fixed(2, iters=2))
    assert r.gflops_per_item is None and r.mfu is None and r.items_per_s > 0
    with pytest.raises(ValueError, match="^input_shape: required"):
        measure_throughput(model)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dtype="float16"), "^dtype: float16 autocast needs CUDA"),
    (dict(dtype="int8"), "^dtype: must be one of"),
    (dict(mode="eval"), "^mode: must be one of"),
    (dict(batch_size=0), "^batch_size: "),
    (dict(device="tpu"), "^device: "),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_throughput(build_model("hiera_t", **TINY), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device is available"):
        measure_throughput(build_model("hiera_t", **TINY), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_report():
    r = measure_throughput(build_model("hiera_t", **TINY), batch_size=4, device="cuda",
                           dtype="bfloat16", protocol=Protocol.fixed(2, iters=3))
    assert r.memory_kind == "cuda allocator peak" and r.peak_memory_mb > 0 and r.mfu > 0


def test_peak_table_by_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.5
    assert peak_tflops("NVIDIA H200", "float16") == 989.4
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "float32") == 19.5
    assert peak_tflops("AMD EPYC", "float32") is None


def test_process_peak_memory_sees_an_allocation():
    with ProcessPeakMemory() as baseline:
        pass
    # more than the process holds now: freed-but-resident heap cannot absorb it
    size = max(64 * 2**20, baseline.peak_bytes) + 64 * 2**20
    with ProcessPeakMemory() as mem:
        block = torch.ones(size // 4)  # touched
        del block
    if mem.exact:
        assert mem.peak_bytes - baseline.peak_bytes > 48 * 2**20


def test_profile_cli_json(capsys):
    assert main(["profile", "hiera_t", "--set", "input_size=[1,32,32]", "--set", "embed_dim=16",
                 "--max-seconds", "1", "--json", "--peak-tflops", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["flops"]["skipped"] == {} and out["speed"]["mfu"] > 0
    assert "mae_encoder_flops" not in out
    assert set(out["flops"]["by_stage"]) == {"stem", "stage0", "stage1", "stage2", "stage3",
                                             "head"}
    # on the CPU the speed is priced as sweeps price it: the ratio to the reference model
    # times the node's calibrated reference speed (kept, so a second profile reuses it)
    speed = out["speed"]
    assert "vs ref-v1" in speed["protocol"] and speed["reference_ratio"] > 0
    assert speed["calibrated_items_per_s"] == pytest.approx(
        speed["reference_ratio"] * speed["reference_calibration"])
    assert main(["profile", "hiera_t", "--set", "input_size=[1,32,32]", "--max-seconds", "1",
                 "--json", "--reference", "off"]) == 0
    raw = json.loads(capsys.readouterr().out)["speed"]
    assert raw["reference_ratio"] is None and "calibrated_items_per_s" not in raw


def test_profile_cli_table(capsys):
    assert main(["profile", "mvitv2_t", "--set", "input_size=[1,32,32]", "--max-seconds", "1",
                 "--batch", "2"]) == 0
    out = capsys.readouterr().out
    for text in ("params: ", "GFLOPs: ", "stage0", "qkv", "throughput: ", "x the node's ref-v1",
                 "as timed: ", "latency: ", "memory: ", "MFU: "):
        assert text in out


def test_profile_cli_counts_the_sparse_mae_encoder(capsys):
    argv = ["profile", "hiera_t", "--set", "input_size=[1,64,64]", "--max-seconds", "1",
            "--mask-ratio", "0.5"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    sparse, dense = out["mae_encoder_flops"], out["flops"]
    assert sparse["mask_ratio"] == 0.5 and "head" not in sparse["by_stage"]
    # 2 of 4 units; the stem stays dense, and stages 3-4 attend globally (quadratic in
    # tokens), so the blocks cost slightly under half
    stem = dense["by_stage"]["stem"]
    assert sparse["by_stage"]["stem"] == stem
    blocks = sparse["gflops"] - stem
    dense_blocks = dense["gflops"] - dense["by_stage"]["head"] - stem
    assert 0.45 * dense_blocks < blocks < 0.5 * dense_blocks
    assert main(argv) == 0
    assert "MAE encoder at mask ratio 0.5 (masked units deleted): " in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["profile", "mvitv2_t", "--set", "foo=1"], "foo: not an ArchConfig field"),
    (["profile", "mvitv2_t", "--mask-ratio", "0.6"], "mask_unit_size: sparse MAE masking"),
    (["profile", "mvitv2_t", "--set", "depths=x"], "depths: must be a non-empty list"),
    (["profile", "mvitv2_t", "--device", "cuda:0"] if not torch.cuda.is_available() else
     ["profile", "mvitv2_t", "--device", "tpu"], "device: "),
])
def test_profile_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mvit-lab: error: ") and message in err and err.count("\n") == 1


def test_protocol_stops_when_blocks_agree_and_reports_them():
    model = build_model("hiera_t", **TINY)
    protocol = Protocol(warmup_s=0.05, block_s=0.02, min_blocks=3, target_spread=0.5, max_s=5)
    r = measure_throughput(model, batch_size=2, protocol=protocol)
    assert r.converged and r.spread <= 0.5 and 3 <= r.blocks < protocol.max_blocks
    assert r.protocol == protocol.name and "3 within 50%" in r.protocol
    fixed = measure_throughput(model, batch_size=2, protocol=Protocol.fixed(4, iters=3))
    assert (fixed.blocks, fixed.iters) == (4, 3)


def test_protocol_gives_up_at_its_time_cap():
    # a target no timing meets: the cap ends it, and the report says so
    protocol = Protocol(warmup_s=0.01, block_s=0.01, min_blocks=2, target_spread=1e-12,
                        max_s=0.3)
    r = measure_throughput(build_model("hiera_t", **TINY), protocol=protocol)
    assert not r.converged and r.blocks >= 2


def test_least_spread_is_the_quiet_stretchs():
    from mvit_lab.measure.speed import _least_spread

    # a co-tenant disturbed blocks 2-4: convergence is judged where the timing agreed
    assert _least_spread([1.0, 1.01, 3.0, 2.5, 2.9, 1.02, 0.99, 1.0], 3) == pytest.approx(0.03)
    assert _least_spread([1.0, 2.0], 5) == pytest.approx(2 / 3)  # fewer values than the window


def test_the_figure_is_the_median_of_every_block_not_of_a_window(monkeypatch):
    """Blocks wander by +-4% around the true step time: the most consistent window of three
    (1.04, 1.04, 1.04) would say 4% slow; the median over all blocks says the truth, and a
    disturbed minority of blocks does not move it."""
    import mvit_lab.measure.speed as speed

    times = iter([1.0, 1.04, 1.04, 1.04, 0.96, 1.0, 0.96, 5.0, 1.0])

    def fake_blocks(steps, dev, iters, protocol):
        return [[next(times) * 1e-3] for _ in range(9)]

    monkeypatch.setattr(speed, "_timed_blocks", fake_blocks)
    protocol = Protocol.fixed(blocks=3, iters=1)
    r = speed.measure_throughput(build_model("hiera_t", **TINY), protocol=protocol)
    assert r.latency_ms == pytest.approx(1.0)
    assert r.spread == 0 and r.blocks == 9


def test_a_reference_timed_in_alternate_blocks_cancels_the_machines_drift(monkeypatch):
    """The machine's speed wanders block to block (x1, x1.5, x2, ...): the model's own block
    times never agree, but each block of the reference (twice as slow per step) drifts with
    it, so the ratio agrees at once and is the true one."""
    import mvit_lab.measure.speed as speed

    calls = []

    def drifting(step, iters, dev):  # the blocks alternate: model, reference, model, ...
        calls.append(step)
        factor = 1 + 0.5 * ((len(calls) - 1) // 2 % 3)
        per_step = 0.001 if len(calls) % 2 else 0.002
        return [per_step * factor] * iters

    monkeypatch.setattr(speed, "_time_steps", drifting)
    model = build_model("hiera_t", **TINY)
    quick = dict(warmup_s=0.01, block_s=0.01, min_blocks=3, target_spread=0.01, max_s=5)
    r = measure_throughput(model, batch_size=4, protocol=Protocol(reference=True, **quick))
    assert r.converged and r.spread == 0 and r.blocks == 3
    assert r.reference_ratio == pytest.approx(2.0)  # the model is twice the reference's speed
    assert r.items_per_s == pytest.approx(4 / (0.001 * 1.5))  # raw: the window's median
    assert r.reference_items_per_s == pytest.approx(4 / (0.002 * 1.5))
    assert "vs ref-v1" in r.protocol
    assert len(set(calls)) == 2  # two different steps were timed
    calls.clear()
    alone = measure_throughput(model, batch_size=4, protocol=Protocol(reference=False, **quick))
    assert not alone.converged and alone.reference_ratio is None
    assert "ref" not in alone.protocol and len(set(calls)) == 1


def test_a_block_holds_at_least_min_iters_steps_while_the_cap_allows():
    from mvit_lab.measure.speed import _block_iters

    p = Protocol(block_s=0.2, min_blocks=5, max_s=30, min_iters=10)
    assert _block_iters(0.001, 0.001, p) == 200  # fast steps: block_s decides
    assert _block_iters(0.075, 0.15, p) == 10  # a training step: 10, not 3 (0.2 s / 75 ms)
    # 5 blocks of 10 steps of 1 s (and 1 s of the reference's) would take 100 s > 30 s cap
    assert _block_iters(1.0, 2.0, p) == 3
    assert _block_iters(20.0, 40.0, p) == 1  # never fewer than one
    assert _block_iters(0.075, 0.15, dataclasses.replace(p, min_iters=1)) == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(min_blocks=0), "^protocol.min_blocks: "),
    (dict(min_iters=0), "^protocol.min_iters: "),
    (dict(min_iters=None), "^protocol.min_iters: "),
    (dict(min_blocks=5, max_blocks=4), "^protocol.max_blocks: must be an integer >= min"),
    (dict(target_spread=0), "^protocol.target_spread: "),
    (dict(block_s=-1), "^protocol.block_s: "),
    (dict(iters=0), "^protocol.iters: "),
    (dict(reference="yes"), "^protocol.reference: must be true, false or null"),
])
def test_bad_protocols(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**kwargs)


def test_sdpa_backend_is_read_from_the_kernels_that_ran():
    r = measure_throughput(build_model("hiera_t", **TINY), protocol=Protocol.fixed(1),
                           backend=True)
    assert r.sdpa_backend not in (None, "none")  # CPU: flash (cpu) or math
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    r = measure_throughput(mlp, (3, 2, 2), protocol=Protocol.fixed(1), backend=True)
    assert r.sdpa_backend == "none"


def test_training_step_updates_the_weights():
    model = build_model("mvitv2_t", **TINY)
    before = [p.detach().clone() for p in model.parameters()]
    measure_throughput(model, batch_size=2, mode="train", protocol=Protocol.fixed(1))
    # forward + backward + an AdamW step: the optimizer's update is part of the timed step
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
