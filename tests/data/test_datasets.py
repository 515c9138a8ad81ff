from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mvit_lab.data import build_datasets
from mvit_lab.data._decode import clip_indices, clip_starts, decode_video
from mvit_lab.data.datasets import ImageFolder, ShuffledFrames, VideoList, load_digits_split
from mvit_lab.data.moving_digits import _write_h264, class_names, generate_moving_digits
from mvit_lab.experiment import DataConfig
from mvit_lab.presets import get_config

IMAGE_MODEL = get_config("hiera_t", input_size=(1, 32, 32))
VIDEO_MODEL = get_config("hiera_b_16x224", input_size=(4, 32, 32), mask_unit_size=(1, 4, 4),
                         mask_unit_attn=(True, False, False, False))


# -- digits ---------------------------------------------------------------------------------------
def test_digits_split_is_stratified_seeded_and_complete():
    tx, ty, _, vy = load_digits_split(0.2, seed=0)
    assert len(ty) + len(vy) == 1797 and tx.shape[1:] == (8, 8)
    assert 355 <= len(vy) <= 365
    for c in range(10):  # every class is split 80 / 20
        share = (vy == c).sum() / ((vy == c).sum() + (ty == c).sum())
        assert abs(share - 0.2) < 0.02
    again = load_digits_split(0.2, seed=0)
    assert torch.equal(again[3], vy) and not torch.equal(load_digits_split(0.2, 1)[3], vy)


def test_digits_datasets_are_sized_for_the_model():
    data = build_datasets(DataConfig(dataset="digits"), IMAGE_MODEL)
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10 and data.num_classes == 10
    assert data.val_shuffled is None
    assert data.train.report.usable + data.val.report.usable == 1797


# -- image folders --------------------------------------------------------------------------------
def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def _bad_image_folder(root):
    for c in ("cat", "dog"):
        for i in range(3):
            _png(root / c / f"{i}.png", 40 * i)
    (root / "cat" / "empty.png").write_bytes(b"")
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "fake.jpg").write_text("not an image")
    (root / "dog" / "notes.txt").write_text("hello")


def test_image_folder_skips_and_counts_bad_files(tmp_path, caplog):
    _bad_image_folder(tmp_path)
    ds = ImageFolder(tmp_path, (16, 16))
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    r = ds.report
    assert r.total == 10 and r.usable == 6
    assert {k: len(v) for k, v in r.skipped.items()} == {
        "empty file": 1, "undecodable image": 2, "not an image suffix": 1}
    assert "skipping" in caplog.text
    x, y = ds[5]
    assert x.shape == (3, 16, 16) and y == 1


def test_image_folder_split_or_train_val_layout(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            for i in range(2):
                _png(tmp_path / "tv" / split / c / f"{i}.png", i)
    data = build_datasets(DataConfig(dataset="image_folder", root=str(tmp_path / "tv")),
                          IMAGE_MODEL)
    assert len(data.train) == 4 and len(data.val) == 4 and data.classes == ["a", "b"]
    for c in ("a", "b"):
        for i in range(10):
            _png(tmp_path / "flat" / c / f"{i}.png", i)
    data = build_datasets(DataConfig(dataset="image_folder", root=str(tmp_path / "flat"),
                                     val_fraction=0.2), IMAGE_MODEL)
    assert len(data.train) == 16 and len(data.val) == 4


def test_no_usable_samples_is_an_error_before_training(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="has no usable samples"):
        build_datasets(DataConfig(dataset="image_folder", root=str(tmp_path)), IMAGE_MODEL)
    with pytest.raises(ValueError, match="is not a directory"):
        build_datasets(DataConfig(dataset="image_folder", root=str(tmp_path / "nope")),
                       IMAGE_MODEL)


# -- video lists ----------------------------------------------------------------------------------
def _video(path, frames, value=None):
    t = np.arange(frames, dtype=np.int64)[:, None, None, None]
    video = np.broadcast_to(t * 12 if value is None else value, (frames, 16, 16, 3)).copy()
    _write_h264(path, video.astype(np.uint8))


def _bad_video_list(tmp_path):
    for i in range(4):
        _video(tmp_path / f"v{i}.mp4", 12)
    (tmp_path / "empty.mp4").write_bytes(b"")
    good = (tmp_path / "v0.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.mp4").write_text("not a video")
    rows = ["path,label", "v0.mp4,a", "v1.mp4,b", "v2.mp4,a", "v3.mp4,zebra", "missing.mp4,a",
            "empty.mp4,b", "truncated.mp4,a", "text.mp4,b"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "list.csv"


def test_video_list_skips_and_counts_bad_files(tmp_path):
    ds = VideoList(_bad_video_list(tmp_path), (8, 8), clip_len=4, classes=["a", "b"])
    r = ds.report
    assert r.total == 8 and r.usable == 3 and len(ds) == 3
    assert {k: len(v) for k, v in r.skipped.items()} == {
        "label not in the class list": 1, "missing file": 1, "empty file": 1,
        "undecodable video": 2}
    clip, label = ds[0]
    assert clip.shape == (3, 4, 8, 8) and label == 0


def test_clip_sampling_random_in_training_spread_in_evaluation(tmp_path):
    _video(tmp_path / "ramp.mp4", 20)  # frame t has brightness 12 * t
    (tmp_path / "l.csv").write_text("ramp.mp4,x\n")
    train = VideoList(tmp_path / "l.csv", (16, 16), clip_len=4, stride=2, train=True)
    starts = set()
    for seed in range(20):
        torch.manual_seed(seed)
        clip, _ = train[0]
        frame_values = clip.float().mean(dim=(0, 2, 3))  # brightness per sampled frame
        starts.add(round(float(frame_values[0]), 1))
        assert torch.all(frame_values.diff() > 0)  # 4 frames, stride 2, in order
    assert len(starts) > 3  # random positions
    val = VideoList(tmp_path / "l.csv", (16, 16), clip_len=4, stride=2, train=False,
                    num_clips=3)
    clips, _ = val[0]
    assert clips.shape == (3, 3, 4, 16, 16)
    firsts = clips.float().mean(dim=(1, 3, 4))[:, 0]
    assert torch.all(firsts.diff() > 0)  # evenly spaced, first to last


def test_clip_index_helpers():
    assert clip_indices(20, 4, 2, start=3) == [3, 5, 7, 9]
    assert clip_indices(5, 4, 2, start=0) == [0, 2, 4, 4]  # short video: repeat the last frame
    assert clip_starts(20, 4, 2, 3) == [0, 6, 13]
    assert clip_starts(20, 4, 2, 1) == [6]
    assert clip_starts(3, 4, 2, 2) == [0, 0]


def test_decode_video_stops_at_the_last_needed_frame(tmp_path):
    _video(tmp_path / "v.mp4", 12)
    full = decode_video(tmp_path / "v.mp4")
    assert full.shape == (12, 3, 16, 16) and full.dtype == torch.uint8
    some = decode_video(tmp_path / "v.mp4", [5, 1])
    torch.testing.assert_close(some, full[[5, 1]])


def test_without_probing_frame_counts_come_from_the_container(tmp_path):
    _video(tmp_path / "ramp.mp4", 20)  # frame t has brightness 12 * t
    (tmp_path / "l.csv").write_text("ramp.mp4,x\n")
    train = VideoList(tmp_path / "l.csv", (16, 16), clip_len=4, stride=2, probe=False)
    assert train.samples[0][2] == 20  # not a placeholder
    for seed in range(10):  # every clip is 4 distinct frames, not the last one repeated
        torch.manual_seed(seed)
        clip, _ = train[0]
        assert torch.all(clip.float().mean(dim=(0, 2, 3)).diff() > 0)


# -- moving digits and shuffled frames ------------------------------------------------------------
@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    return generate_moving_digits(tmp_path_factory.mktemp("md"), num_train=24, num_val=12,
                                  frames=8, seed=3)


def test_moving_digits_written_once_as_h264(moving):
    assert (moving / "train.csv").read_text().startswith("path,label\n")
    rows = (moving / "val.csv").read_text().splitlines()[1:]
    assert len(rows) == 12 and all(r.split(",")[1] in class_names((0, 1, 2, 3, 4)) for r in rows)
    import av

    with av.open(str(moving / rows[0].split(",")[0])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    mtime = (moving / "val.csv").stat().st_mtime_ns
    again = generate_moving_digits(moving.parent, num_train=24, num_val=12, frames=8, seed=3)
    assert again == moving and (moving / "val.csv").stat().st_mtime_ns == mtime


def test_moving_digits_move_in_the_labelled_direction(moving):
    ds = VideoList(moving / "train.csv", (32, 32), clip_len=8, train=False)
    for i in range(len(ds)):
        clip, label = ds[i]
        mass = clip[0, 0].float() - clip[0, 0].min()  # [T, H, W] at the first clip, one channel
        cols = torch.arange(32.0)
        x = [(m.sum(0) * cols).sum() / m.sum() for m in mass]
        moved = x[-1] - x[0]
        direction = ds.classes[label].split("_")[1]
        assert (moved > 3) if direction == "right" else (moved < -3)


def test_shuffled_frames_permute_time_only(moving):
    val = VideoList(moving / "val.csv", (32, 32), clip_len=8, train=False)
    shuffled = ShuffledFrames(val, seed=0)
    (a, la), (b, lb) = val[2], shuffled[2]
    assert la == lb and a.shape == b.shape and not torch.equal(a, b)
    frames_a = sorted(a[0, :, :].sum(dim=(0, 2, 3)).tolist())
    frames_b = sorted(b[0, :, :].sum(dim=(0, 2, 3)).tolist())
    assert frames_a == pytest.approx(frames_b)  # the same frames, reordered
    assert torch.equal(shuffled[2][0], b)  # a fixed order per sample


def test_moving_digits_datasets(moving):
    data = build_datasets(DataConfig(dataset="moving_digits", root=str(moving.parent),
                                     num_train=24, num_val=12, frames=8), VIDEO_MODEL, seed=3)
    assert data.num_classes == 10 and data.val_shuffled is not None
    clip, _ = data.train[0]
    assert clip.shape == (3, 4, 32, 32)


def test_a_class_list_taken_from_the_labels_is_announced_with_likely_typos(tmp_path, caplog):
    _video(tmp_path / "v.mp4", 6)
    rows = ["v.mp4,archery"] * 6 + ["v.mp4,bowling"] * 6 + ["v.mp4,archey"]  # one typo
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    ds = VideoList(tmp_path / "l.csv", (8, 8), clip_len=2)
    assert len(ds.classes) == 3  # still inferred, but not silently:
    assert "data.classes is not set: 3 classes" in caplog.text
    assert "'archey' (1 samples) looks like a typo of 'archery' (6)" in caplog.text
    inferred = ds.report.to_dict()["inferred_classes"]
    assert inferred["num_classes"] == 3 and list(inferred["suspected_typos"]) == ["archey"]
    caplog.clear()
    pinned = VideoList(tmp_path / "l.csv", (8, 8), clip_len=2, classes=["archery", "bowling"])
    assert "data.classes is not set" not in caplog.text and len(pinned) == 12
    assert "inferred_classes" not in pinned.report.to_dict()


def test_broken_symlinks_are_counted_not_dropped(tmp_path):
    for c in ("a", "b"):
        for i in range(2):
            _png(tmp_path / "img" / c / f"{i}.png", i)
    (tmp_path / "img" / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    ds = ImageFolder(tmp_path / "img", (8, 8))
    assert ds.report.total == 5 and len(ds) == 4
    assert ds.report.skipped == {"broken symlink": [str(tmp_path / "img" / "a" / "gone.png")]}
    data = build_datasets(DataConfig(dataset="image_folder", root=str(tmp_path / "img"),
                                     val_fraction=0.5), IMAGE_MODEL)  # the seeded split too
    assert sum(r.total for r in data.reports) == 5
    assert [r.skipped for r in data.reports if r.skipped] == [
        {"broken symlink": [str(tmp_path / "img" / "a" / "gone.png")]}]
    _video(tmp_path / "v.mp4", 6)
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (tmp_path / "l.csv").write_text("v.mp4,a\ngone.mp4,a\nmissing.mp4,a\n")
    videos = VideoList(tmp_path / "l.csv", (8, 8), clip_len=2)
    assert {k: len(v) for k, v in videos.report.skipped.items()} == {
        "broken symlink": 1, "missing file": 1}
