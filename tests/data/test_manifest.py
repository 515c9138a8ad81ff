from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest

import mvit_lab.data.datasets as datasets_module
from mvit_lab.data.datasets import ImageFolder, VideoList
from mvit_lab.data.manifest import manifest_path, open_manifest
from mvit_lab.data.moving_digits import _write_h264


def _video(path, frames):
    t = np.arange(frames, dtype=np.int64)[:, None, None, None]
    _write_h264(path, np.broadcast_to(t * 12, (frames, 16, 16, 3)).astype(np.uint8))


@pytest.fixture
def video_list(tmp_path):
    for i, frames in enumerate((10, 12, 14)):
        _video(tmp_path / f"v{i}.mp4", frames)
    good = (tmp_path / "v0.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 3])
    rows = ["v0.mp4,a", "v1.mp4,b", "v2.mp4,a", "truncated.mp4,b"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "list.csv"


@pytest.fixture
def probes(monkeypatch):
    """Count the decodes behind probing."""
    calls = []
    for name in ("probe_video", "count_frames", "probe_image"):
        real = getattr(datasets_module, name)

        def counted(path, real=real, name=name):
            calls.append((name, path.name))
            return real(path)

        monkeypatch.setattr(datasets_module, name, counted)
    return calls


def _frames(ds):
    return {p.name: n for p, _, n in ds.samples}


def test_probing_happens_once_per_dataset_then_only_for_changed_files(video_list, probes):
    first = VideoList(video_list, (8, 8), clip_len=4)
    assert len(probes) == 4 and first.report.manifest["probed"] == 4
    assert _frames(first) == {"v0.mp4": 10, "v1.mp4": 12, "v2.mp4": 14}
    assert first.report.skipped == {"undecodable video": [str(video_list.parent /
                                                                "truncated.mp4")]}
    probes.clear()
    again = VideoList(video_list, (8, 8), clip_len=4)  # a second trial: nothing decoded
    assert probes == [] and again.report.manifest == dict(
        path=str(manifest_path(video_list)), reused=4, probed=0)
    assert _frames(again) == _frames(first) and again.report.skipped == first.report.skipped
    _video(video_list.parent / "v1.mp4", 20)  # changed on disk: probed again, alone
    changed = VideoList(video_list, (8, 8), clip_len=4)
    assert probes == [("probe_video", "v1.mp4")] and _frames(changed)["v1.mp4"] == 20


def test_a_decoded_entry_serves_a_count_but_not_the_reverse(video_list, probes):
    VideoList(video_list, (8, 8), clip_len=4, probe=False)
    assert {name for name, _ in probes} == {"count_frames"}
    probes.clear()
    VideoList(video_list, (8, 8), clip_len=4, probe=True)  # counting did not decode
    assert {name for name, _ in probes} == {"probe_video"} and len(probes) == 4
    probes.clear()
    VideoList(video_list, (8, 8), clip_len=4, probe=False)
    assert probes == []


def test_image_folders_reuse_their_probe(tmp_path, probes):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        Image.new("RGB", (6, 5)).save(tmp_path / c / "x.png")
    ImageFolder(tmp_path, (8, 8))
    assert len(probes) == 2
    probes.clear()
    ds = ImageFolder(tmp_path, (8, 8))
    assert probes == [] and ds.report.manifest["reused"] == 2
    ImageFolder(tmp_path, (8, 8), probe=False)  # no probing: no manifest needed
    assert probes == []


def _build(csv, queue):
    ds = VideoList(csv, (8, 8), clip_len=4)
    queue.put((ds.report.manifest["probed"], _frames(ds)))


def test_trials_starting_together_probe_once_and_leave_a_valid_manifest(video_list):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(video_list, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(probed for probed, _ in results) == [0, 0, 0, 4]  # one probed, 3 reused
    assert all(frames == results[0][1] for _, frames in results)
    path = manifest_path(video_list)
    record = json.loads(path.read_text())
    assert len(record["entries"]) == 4
    assert not [f for f in os.listdir(path.parent) if ".tmp-" in f]  # no half-written files


def test_an_unreadable_manifest_is_set_aside_and_rebuilt(video_list, probes, caplog):
    VideoList(video_list, (8, 8), clip_len=4)
    path = manifest_path(video_list)
    path.write_text('{"version": 1, "entries": {')  # e.g. a disk that filled up
    probes.clear()
    ds = VideoList(video_list, (8, 8), clip_len=4)
    assert len(probes) == 4 and len(ds) == 3 and "unreadable" in caplog.text
    assert path.with_name(path.name + ".unreadable").is_file()
    assert len(json.loads(path.read_text())["entries"]) == 4


def test_without_a_writable_cache_probing_still_works(video_list, tmp_path, monkeypatch,
                                                      caplog):
    (tmp_path / "not_a_dir").write_text("")
    monkeypatch.setenv("MVIT_LAB_CACHE", str(tmp_path / "not_a_dir"))
    ds = VideoList(video_list, (8, 8), clip_len=4)
    assert len(ds) == 3 and ds.report.manifest["path"] is None
    assert "not writable" in caplog.text


def test_a_probe_interrupted_midway_keeps_what_it_probed(video_list):
    with pytest.raises(KeyboardInterrupt), open_manifest(video_list) as manifest:
        manifest.check(video_list.parent / "v0.mp4", "counted", lambda p: 10, "bad")
        raise KeyboardInterrupt
    entries = json.loads(manifest_path(video_list).read_text())["entries"]
    assert [os.path.basename(k) for k in entries] == ["v0.mp4"]


def test_nothing_is_written_beside_the_dataset(video_list):
    before = sorted(os.listdir(video_list.parent))
    VideoList(video_list, (8, 8), clip_len=4)
    VideoList(video_list, (8, 8), clip_len=4, probe=False)
    assert sorted(os.listdir(video_list.parent)) == before  # a read-only dataset works
    assert manifest_path(video_list).is_file()


def test_probing_runs_on_several_threads_and_keeps_the_order(tmp_path):
    import threading
    import time

    paths = []
    for i in range(8):
        paths.append(tmp_path / f"{i}.bin")
        paths[-1].write_bytes(b"x" * (i + 1))
    threads = set()

    def probe(path):
        threads.add(threading.get_ident())
        time.sleep(0.05)
        if path.name == "3.bin":
            raise ValueError("bad")
        return path.stat().st_size

    with open_manifest(tmp_path / "list.csv") as manifest:
        got = manifest.check_all([*paths, paths[0]], "counted", probe, "bad file", workers=4)
    assert got == [(None, i + 1) if i != 3 else ("bad file", None) for i in range(8)] + [
        (None, 1)]
    assert len(threads) > 1 and manifest.probed == 8
    with open_manifest(tmp_path / "list.csv") as manifest:  # all reused, in order
        assert manifest.check_all(paths, "counted", probe, "bad file") == got[:8]
        assert manifest.reused == 8 and manifest.probed == 0
