"""The training loop as ranks of a gloo process group (what Ray Train's workers run), without
Ray: two spawned processes (spawn, not fork: libgomp is not fork-safe once torch computed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mvit_lab.train.checkpoint import SHARDED
from mvit_lab.train.distributed import ShardSampler

TINY = dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
            patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1], embed_dim=8,
            mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False], num_classes=10)


def _tree(epochs: int, batch: int, global_batch: int | None = None, **train_kw) -> dict:
    return dict(name="ddp", data=dict(dataset="digits"), model=dict(TINY),
                train=dict(epochs=epochs, batch_size=batch, threads=1, warmup_epochs=1,
                           global_batch=global_batch, **train_kw))


class _Recorded(torch.utils.data.Dataset):
    def __init__(self, base, seen: list[int]) -> None:
        self.base, self.seen, self.report = base, seen, base.report

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        self.seen.append(i)
        return self.base[i]


def _rank(rank: int, size: int, folder: str, tree: dict, out: str, snapshot_after: int | None,
          resume: bool, mode: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous-{mode}",
                            rank=rank, world_size=size)
    try:
        if mode == "replicas":  # rank 1's weights nudged: the check must refuse
            from mvit_lab.train.distributed import check_replicas

            model = torch.nn.Linear(3, 2)
            torch.nn.init.constant_(model.weight, 1.0)
            if rank == 1:
                with torch.no_grad():
                    model.weight[0, 0] += 1e-6
            try:
                check_replicas(model)
                outcome = "passed"
            except RuntimeError as err:
                outcome = str(err)
            Path(folder, f"{mode}-rank{rank}.json").write_text(json.dumps(outcome))
            return
        from mvit_lab.data import Augment, build_datasets
        from mvit_lab.experiment import experiment_from_dict
        from mvit_lab.train import train
        from mvit_lab.train._shared import seed_everything

        exp = experiment_from_dict(tree)
        seed_everything(exp.train.seed)
        data = build_datasets(exp.data, exp.model, exp.train.seed, Augment.of(exp.train))
        seen: list[int] = []
        epochs: list[list[int]] = []
        data.train = _Recorded(data.train, seen)

        def on_epoch(metrics: dict) -> None:
            epochs.append(sorted(seen))
            seen.clear()
            if snapshot_after is not None and metrics["epoch"] == snapshot_after and rank == 0:
                # the run folder as an interruption after this epoch leaves it
                cut = Path(out).with_name("cut")
                cut.mkdir()
                for name in ("checkpoint.pt", "experiment.json", "metrics.json"):
                    if Path(out, name).is_file():
                        shutil.copy(Path(out, name), cut / name)
                if Path(out, SHARDED).is_dir():
                    shutil.copytree(Path(out, SHARDED), cut / SHARDED)

        result = train(exp, out, resume=resume, callback=on_epoch, datasets=data)
        record = dict(final=result.final, history=result.history, epochs=epochs)
        Path(folder, f"{mode}-rank{rank}.json").write_text(json.dumps(record, default=str))
    finally:
        dist.destroy_process_group()


def _spawn(folder: Path, tree: dict, out: Path, mode: str, snapshot_after: int | None = None,
           resume: bool = False) -> list[dict]:
    mp.start_processes(_rank, args=(2, str(folder), tree, str(out), snapshot_after, resume, mode),
                       nprocs=2, start_method="spawn", join=True)
    return [json.loads((folder / f"{mode}-rank{r}.json").read_text()) for r in range(2)]


def test_shard_sampler_splits_without_padding_or_overlap():
    for n, size in ((10, 3), (2, 4), (359, 2), (0, 2)):
        shards = [list(ShardSampler(n, size, r)) for r in range(size)]
        together = [i for shard in shards for i in shard]
        assert together == list(range(n))  # contiguous, each index once, no padding
        assert [len(s) for s in shards] == [len(ShardSampler(n, size, r)) for r in range(size)]
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_replicas_that_differ_are_refused_on_every_rank(tmp_path):
    results = _spawn(tmp_path, {}, tmp_path, "replicas")
    assert all("rank(s) [1] differ from rank 0" in r for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", ["file", "auto"])
def test_two_ranks_train_disjoint_shards_into_one_model_and_resume_exactly(tmp_path, checkpoint):
    """Two gloo ranks, global batch 64 as 2 x 16 x 2 accumulation steps: disjoint shards
    covering the split each epoch, bit-identical weights, whole-set validation metrics equal
    on both ranks (and to a plain evaluation of the checkpoint); the run folder as it stood
    after epoch 1, resumed, ends with the uninterrupted run's weights and metrics. With
    ``checkpoint_format: auto`` two workers save a sharded checkpoint asynchronously: both
    ranks write about half of it."""
    from mvit_lab.build import build_model
    from mvit_lab.data import build_datasets
    from mvit_lab.experiment import experiment_from_dict
    from mvit_lab.train import evaluate
    from mvit_lab.train._shared import make_loader

    tree = _tree(epochs=2, batch=16, global_batch=64, checkpoint_format=checkpoint)
    full = _spawn(tmp_path, tree, tmp_path / "full", "full", snapshot_after=1)
    for r in full:
        assert r["final"]["global_batch"] == 64 and r["final"]["accumulation"] == 2
        assert r["final"]["workers"] == 2
    assert full[0]["final"]["weights_sha256"] == full[1]["final"]["weights_sha256"]
    for e in range(2):
        a, b = set(full[0]["epochs"][e]), set(full[1]["epochs"][e])
        assert not a & b and len(a | b) == 1438  # disjoint, and together the whole split
    assert full[0]["history"] == [dict(h, epoch_seconds=m["epoch_seconds"])
                                  for h, m in zip(full[1]["history"], full[0]["history"])]
    # the all-reduced validation metrics are the whole set's
    exp = experiment_from_dict(tree)
    if checkpoint == "file":
        state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    else:  # one file from the shards, with DCP's converter (as the module docstring says)
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        folder = tmp_path / "full" / SHARDED / "epoch-000001"
        shards = sorted(folder.glob("*.distcp"))
        sizes = [p.stat().st_size for p in shards]
        assert [p.name for p in shards] == ["__0_0.distcp", "__1_0.distcp"]
        assert max(sizes) < 0.7 * sum(sizes)  # each rank wrote about half
        dcp_to_torch_save(folder, tmp_path / "converted.pt")
        state = dict(torch.load(tmp_path / "converted.pt", weights_only=True),
                     **torch.load(folder / "meta.pt", weights_only=True))
        assert not (tmp_path / "full" / "checkpoint.pt").exists()
    assert len(state["ranks_rng"]) == 2
    model = build_model(exp.model)
    model.load_state_dict(state["model"])
    data = build_datasets(exp.data, exp.model, 0)
    val = evaluate(model, make_loader(data.val, 32, train=False, workers=0,
                                      device=torch.device("cpu")), torch.device("cpu"))
    assert full[0]["final"]["val_top1"] == pytest.approx(val["top1"], abs=1e-9)
    assert full[0]["final"]["val_loss"] == pytest.approx(val["loss"], rel=1e-5)
    # the run folder as it was after epoch 1, resumed by both ranks from rank 0's checkpoint
    resumed = _spawn(tmp_path, tree, tmp_path / "cut", "resumed", resume=True)
    assert [len(e) for e in resumed[0]["epochs"]] == [719]  # epoch 2 alone
    assert resumed[0]["final"]["weights_sha256"] == full[0]["final"]["weights_sha256"]
    assert [h["val_top1"] for h in resumed[0]["history"]] == [
        h["val_top1"] for h in full[0]["history"]]
