"""train.checkpoint_format / train.async_checkpoint in one process: a sharded (DCP)
checkpoint, written synchronously or from DCP's thread, resumes exactly as the one-file
checkpoint does; an epoch whose save was interrupted is never read. (Two ranks writing their
shards: tests/train/test_distributed.py.)"""

from __future__ import annotations

import shutil

import pytest
import torch

from mvit_lab.experiment import experiment_from_dict
from mvit_lab.train import train
from mvit_lab.train.checkpoint import SHARDED, has_checkpoint

TINY_MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                  patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
                  mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _exp(epochs: int, **train_kw):
    return experiment_from_dict(dict(
        name="tiny", data=dict(dataset="digits", train_fraction=0.3), model=dict(TINY_MODEL),
        train={**dict(epochs=epochs, batch_size=128, lr=0.003, warmup_epochs=1, seed=0,
                      threads=1, ema_decay=0.9), **train_kw}))


def _snapshot_after(epoch: int, out, cut):
    """A callback copying the run folder as a kill right after ``epoch`` leaves it."""

    def on_epoch(metrics):
        if metrics["epoch"] == epoch:
            shutil.copytree(out, cut)

    return on_epoch


@pytest.mark.parametrize("async_save", [True, False])
def test_a_sharded_checkpoint_resumes_to_the_uninterrupted_run(tmp_path, async_save):
    kw = dict(checkpoint_format="sharded", async_checkpoint=async_save)
    full = train(_exp(3, **kw), tmp_path / "full", callback=_snapshot_after(
        2, tmp_path / "full", tmp_path / "cut"))
    folders = sorted(p.name for p in (tmp_path / "full" / SHARDED).iterdir())
    assert folders == ["epoch-000002"]  # older epochs removed once the newer one committed
    assert not (tmp_path / "full" / "checkpoint.pt").exists()
    assert sorted(p.name for p in (tmp_path / "cut" / SHARDED).iterdir()) == ["epoch-000001"]
    # an epoch whose save was interrupted (no meta.pt, a damaged .metadata) is never read
    partial = tmp_path / "cut" / SHARDED / "epoch-000002"
    shutil.copytree(tmp_path / "cut" / SHARDED / "epoch-000001", partial)
    (partial / "meta.pt").unlink()
    (partial / ".metadata").write_bytes(b"truncated")
    assert has_checkpoint(tmp_path / "cut")
    resumed = train(_exp(3, **kw), tmp_path / "cut", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["val_top1"] for h in resumed.history] == [h["val_top1"] for h in full.history]
    assert [h["val_ema_top1"] for h in resumed.history] == [
        h["val_ema_top1"] for h in full.history]
    assert resumed.history[-1]["train_loss"] == full.history[-1]["train_loss"]
    # the interrupted save's folder was written again, whole, and committed
    assert sorted(p.name for p in (tmp_path / "cut" / SHARDED).iterdir()) == ["epoch-000002"]
    assert (partial / "meta.pt").is_file()


def test_the_newest_checkpoint_wins_when_the_format_changes_on_resume(tmp_path):
    """A run started with one file, continued sharded (a runtime switch): the sharded epoch is
    the newer one and is what a second resume reads; both formats resume the same run."""
    out = tmp_path / "run"
    reference = train(_exp(3), tmp_path / "reference")

    def stop_after(epoch):
        def on_epoch(metrics):
            if metrics["epoch"] == epoch:
                raise KeyboardInterrupt
        return on_epoch

    with pytest.raises(KeyboardInterrupt):
        train(_exp(3), out, callback=stop_after(1))
    with pytest.raises(KeyboardInterrupt):
        train(_exp(3, checkpoint_format="sharded"), out, resume=True, callback=stop_after(2))
    assert (out / "checkpoint.pt").is_file() and (out / SHARDED / "epoch-000001").is_dir()
    done = train(_exp(3), out, resume=True)  # file format again: reads the sharded epoch 2
    assert [h["epoch"] for h in done.history] == [1, 2, 3]
    assert [h["val_top1"] for h in done.history] == [h["val_top1"] for h in reference.history]


def test_keep_none_removes_a_sharded_checkpoint(tmp_path):
    train(_exp(1, checkpoint_format="sharded", keep="none", keep_weights=True), tmp_path)
    assert not (tmp_path / SHARDED).exists()
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert set(state) == {"model", "ema", "epoch"}


def test_bad_checkpoint_settings_name_the_field():
    with pytest.raises(ValueError, match="train.checkpoint_format"):
        _exp(1, checkpoint_format="zarr")
    with pytest.raises(ValueError, match="train.async_checkpoint"):
        _exp(1, async_checkpoint="yes")
