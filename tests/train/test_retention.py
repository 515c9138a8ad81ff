"""train.keep / train.keep_weights: what a finished run leaves on disk."""

from __future__ import annotations

import pytest
import torch

from mvit_lab import build_model
from mvit_lab.experiment import experiment_from_dict
from mvit_lab.train import train
from mvit_lab.train.retention import checkpoint_bytes, is_best, retain

TINY_MODEL = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                  patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=16,
                  mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _exp(epochs=3, **train_kw):
    return experiment_from_dict(dict(
        name="tiny", data=dict(dataset="digits", train_fraction=0.3), model=dict(TINY_MODEL),
        train={**dict(epochs=epochs, batch_size=128, lr=0.003, warmup_epochs=1, seed=0),
               **train_kw}))


def _pt(folder):
    return sorted(p.name for p in folder.glob("*.pt"))


def test_keep_last_is_todays_behaviour(tmp_path):
    train(_exp(epochs=1), tmp_path)
    assert _pt(tmp_path) == ["checkpoint.pt"]


def test_keep_none_with_weights_leaves_only_the_final_weights(tmp_path):
    result = train(_exp(epochs=2, keep="none", keep_weights=True, ema_decay=0.9), tmp_path)
    assert _pt(tmp_path) == ["weights.pt"]
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert state["epoch"] == 1 and set(state) == {"model", "ema", "epoch"}
    model = build_model(_exp().model)
    model.load_state_dict(state["model"])  # strict: the plain model's keys
    assert result.history[-1]["epoch"] == 2


def test_keep_best_keeps_the_best_epochs_weights(tmp_path, monkeypatch):
    import mvit_lab.train.loop as loop

    saved = []
    original = loop.save_weights

    def spy(path, model, ema, epoch):
        saved.append((epoch, {k: v.clone() for k, v in model.state_dict().items()}))
        original(path, model, ema, epoch)

    monkeypatch.setattr(loop, "save_weights", spy)
    result = train(_exp(keep="best"), tmp_path)
    assert _pt(tmp_path) == ["best.pt"]
    tops = [row["val_top1"] for row in result.history]
    best_epoch = max(range(len(tops)), key=lambda i: (tops[i], i))
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    assert state["epoch"] == best_epoch == saved[-1][0]
    for key, value in saved[-1][1].items():
        torch.testing.assert_close(state["model"][key], value)


def test_an_unfinished_run_keeps_its_checkpoint_to_resume(tmp_path):
    def stop(metrics):
        if metrics["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_exp(epochs=2, keep="none"), tmp_path, callback=stop)
    assert _pt(tmp_path) == ["checkpoint.pt"]
    train(_exp(epochs=2, keep="none"), tmp_path, resume=True)
    assert _pt(tmp_path) == []


def test_retain_removes_stale_temporaries_and_an_old_best(tmp_path):
    model = torch.nn.Linear(2, 2)
    for name in ("checkpoint.pt", "best.pt", "checkpoint.pt.tmp-123"):
        (tmp_path / name).write_bytes(b"x")
    out = retain(tmp_path, "last", False, model, None, 0)
    assert out["kept"] == ["checkpoint.pt"]
    assert sorted(out["removed"]) == ["best.pt", "checkpoint.pt.tmp-123"]


def test_is_best_ties_go_to_the_later_epoch():
    assert is_best([dict(val_top1=5.0)])
    assert is_best([dict(val_top1=5.0), dict(val_top1=5.0)])
    assert not is_best([dict(val_top1=6.0), dict(val_top1=5.0)])
    assert not is_best([dict(val_top1=6.0), dict(train_loss=1.0)])  # not evaluated


def test_checkpoint_bytes_match_a_saved_checkpoint(tmp_path):
    model = build_model(_exp().model)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    torch.save(dict(model=model.state_dict(), optimizer=optimizer.state_dict()),
               tmp_path / "c.pt")
    with torch.device("meta"):
        meta = build_model(_exp().model)
    estimate = checkpoint_bytes(meta)
    actual = (tmp_path / "c.pt").stat().st_size
    assert estimate <= actual < estimate * 1.25 + 200_000  # pickling adds per-tensor records
