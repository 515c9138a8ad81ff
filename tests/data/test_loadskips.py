from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mvit_lab.data import _loadskips
from mvit_lab.data.datasets import ImageFolder, VideoList
from mvit_lab.data.moving_digits import _write_h264


def _folder(root):
    """6 good images, a truncated PNG, text named .jpg and a 'bomb' (over the pixel limit the
    test sets): only decoding finds them."""
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "cat" / "fake.jpg").write_text("not an image")
    Image.new("RGB", (100, 100)).save(root / "cat" / "bomb.png")
    return root


@pytest.fixture
def small_pixel_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 > 2 x 1000: refused


def _skipped(report):
    return {k: sorted(p.rsplit("/", 1)[-1] for p in v)
            for k, v in report.to_dict()["skipped"].items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_without_probing_bad_files_are_skipped_and_counted_while_loading(
        tmp_path, small_pixel_limit, workers):
    ds = ImageFolder(_folder(tmp_path), (8, 8), probe=False)
    assert len(ds) == 9 and ds.report.usable == 9  # nothing decoded yet
    loader = DataLoader(ds, batch_size=4, num_workers=workers)
    for _ in range(2):  # two epochs: a bad file counts once
        labels = torch.cat([y for _, y in loader])
        assert len(labels) == 9  # each bad sample replaced by the next that loads
    assert _skipped(ds.report) == {
        "undecodable image (found while loading)": ["fake.jpg", "truncated.png"],
        "image too large (Pillow's decompression-bomb limit) (found while loading)":
            ["bomb.png"]}
    report = ds.report.to_dict()
    assert report["usable"] == 6 and report["per_class"] == {"cat": 3, "dog": 3}
    assert "skipped 3" in ds.report.summary()


def test_probing_names_a_decompression_bomb(tmp_path, small_pixel_limit):
    ds = ImageFolder(_folder(tmp_path), (8, 8), probe=True)
    assert len(ds) == 6 and "bomb.png" in str(
        ds.report.skipped["image too large (Pillow's decompression-bomb limit)"])


def test_a_video_that_fails_while_loading_is_replaced_and_counted(tmp_path):
    for i in range(3):
        _write_h264(tmp_path / f"v{i}.mp4", np.full((6, 16, 16, 3), 80 * i, np.uint8))
    (tmp_path / "l.csv").write_text("v0.mp4,a\nv1.mp4,b\nv2.mp4,a\n")
    ds = VideoList(tmp_path / "l.csv", (8, 8), clip_len=2, probe=False)
    (tmp_path / "v1.mp4").write_bytes(b"\x00" * 4096)  # changed after the dataset was built
    clip, label = ds[1]
    assert label == 0 and clip.float().mean() > ds[0][0].float().mean()  # v2 (brighter) for v1
    assert _skipped(ds.report) == {"undecodable video (found while loading)": ["v1.mp4"]}
    assert ds.report.to_dict()["per_class"] == {"a": 2, "b": 0}


def test_many_failures_in_a_row_stop_with_the_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_loadskips, "MAX_CONSECUTIVE", 3)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(4):
            Image.new("RGB", (4, 4)).save(tmp_path / c / f"{i}.png")
    ds = ImageFolder(tmp_path, (8, 8), probe=False)
    for p in tmp_path.glob("*/*.png"):  # e.g. the dataset's mount went away
        p.unlink()
    with pytest.raises(ValueError, match="3 samples in a row failed to load"):
        ds[0]


def test_a_training_run_finishes_and_its_report_counts_the_files(tmp_path, small_pixel_limit):
    from mvit_lab.experiment import experiment_from_dict
    from mvit_lab.train import train

    exp = experiment_from_dict(dict(
        name="bad-files",
        data=dict(dataset="image_folder", root=str(_folder(tmp_path / "data")), probe=False,
                  val_fraction=0.4, num_workers=1),
        model=dict(preset="hiera_t", input_size=[1, 16, 16], patch_kernel=[1, 2, 2],
                   patch_stride=[1, 2, 2], patch_padding=[0, 0, 0], depths=[1, 1],
                   embed_dim=16, mask_unit_size=[1, 4, 4], mask_unit_attn=[True, False],
                   num_classes=2),
        train=dict(epochs=1, batch_size=4)))
    result = train(exp)  # before: the first bad file stopped the run with a traceback
    skipped = [path for report in result.data_reports for paths in report["skipped"].values()
               for path in paths]  # what the trial logs to MLflow as data_report.json
    assert sorted(p.rsplit("/", 1)[-1] for p in skipped) == [
        "bomb.png", "fake.jpg", "truncated.png"]
