from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from mvit_lab.data._decode import count_frames, decode_from_start, decode_video, probe_video
from mvit_lab.data._seek import decode_frames, read_index


def write_video(path, frames=150, size=(48, 64), keyint=12, fmt=None, bframes=3):
    """A textured, moving H.264 video with a keyframe every ``keyint`` frames and B-frames,
    so frames depend on each other as in real footage."""
    h, w = size
    rng = np.random.default_rng(keyint)
    texture = rng.integers(0, 255, (h, w + frames, 3), dtype=np.uint8)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0",
                          "bf": str(bframes), "preset": "veryfast", "threads": "1"}
        for t in range(frames):
            image = texture[:, t:t + w].copy()
            image[:8, :8] = (t * 7) % 256  # a per-frame mark: no two frames alike
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frames(path, indices):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return decode_frames(container, stream, indices)


@pytest.mark.parametrize("keyint", [12, 37, 60])
def test_seeking_decode_gives_the_frames_of_a_full_decode(tmp_path, keyint):
    path = write_video(tmp_path / "v.mp4", keyint=keyint)
    full = np.stack(decode_from_start(path, None))  # [150, H, W, 3]
    assert len(full) == 150 and count_frames(path) == 150
    end_clip = [86 + 4 * i for i in range(16)]  # a 16x4 clip ending on the last frame
    views = [s + 4 * i for s in (0, 40, 86) for i in range(16)]  # 3 evaluation views
    rng = np.random.default_rng(0)
    for indices in (end_clip, views, [149, 3, 3, 77, 200], rng.integers(0, 150, 30).tolist()):
        seeked = _frames(path, indices)
        assert seeked is not None  # the seek path ran, not the fallback
        np.testing.assert_array_equal(np.stack(seeked), full[np.minimum(indices, 149)])
        out = decode_video(path, indices)
        assert out.dtype == torch.uint8 and out.shape == (len(indices), 3, 48, 64)
        np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(),
                                      full[np.minimum(indices, 149)])


def test_streams_without_timestamps_decode_from_the_start(tmp_path):
    path = write_video(tmp_path / "v.h264", frames=40, fmt="h264")  # raw stream: no pts
    index = _index(path)
    assert index.pts is None and index.num_frames == 40
    assert _frames(path, [30]) is None  # the seek refuses: the caller falls back
    full = np.stack(decode_from_start(path, None))
    out = decode_video(path, [39, 5, 30]).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(out, full[[39, 5, 30]])


def _index(path):
    with av.open(str(path)) as container:
        return read_index(container, container.streams.video[0])


def test_frame_counts_from_packets_match_a_full_decode(tmp_path):
    path = write_video(tmp_path / "v.mp4", frames=45, keyint=20)
    assert count_frames(path) == probe_video(path) == 45
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(av.error.InvalidDataError):
        count_frames(tmp_path / "text.mp4")


@pytest.mark.parametrize("bits", [8, 16])
def test_images_of_any_bit_depth_decode_to_the_same_8_bits(tmp_path, bits):
    from PIL import Image

    from mvit_lab.data._decode import decode_image, load_image

    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (5, 1))  # [5, 64] gray ramp
    stored = ramp * 257 if bits == 16 else ramp.astype(np.uint8)  # 16 bits: v -> v * 257
    Image.fromarray(stored).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as img:
        assert img.mode == ("I;16" if bits == 16 else "L")
    out = decode_image(tmp_path / "x.png")
    assert out.dtype == torch.uint8 and out.shape == (3, 5, 64)
    np.testing.assert_array_equal(out[0].numpy(), ramp)  # not saturated to white
    assert torch.equal(out[0], out[2])
    pil = load_image(tmp_path / "x.png")  # what Pillow-based transforms get
    assert pil.mode == "RGB" and np.array_equal(np.asarray(pil)[..., 1], ramp)


@pytest.mark.parametrize(("suffix", "fmt", "seeks"), [
    ("mkv", "matroska", True), ("ts", "mpegts", True), ("mov", "mov", True),
    ("avi", "avi", False)])  # AVI packets of B-frame streams carry no pts: decoded from 0
def test_other_containers_give_the_same_frames(tmp_path, suffix, fmt, seeks):
    path = write_video(tmp_path / f"v.{suffix}", frames=90, keyint=37, fmt=fmt)
    full = np.stack(decode_from_start(path, None))
    indices = [26 + 4 * i for i in range(16)] + [3, 200]
    assert (_frames(path, indices) is not None) == seeks
    out = decode_video(path, indices).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(out, full[np.minimum(indices, 89)])


class _ThreadTypes(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        from mvit_lab.data._decode import thread_type

        return thread_type()


def test_decoding_uses_ffmpeg_threads_only_outside_dataloader_workers():
    from mvit_lab.data._decode import thread_type

    assert thread_type() == "AUTO"
    loader = torch.utils.data.DataLoader(_ThreadTypes(), num_workers=1, batch_size=None)
    assert list(loader) == ["NONE", "NONE"]


@pytest.mark.parametrize(("suffix", "fmt"), [("mp4", None), ("mkv", "matroska"),
                                             ("ts", "mpegts")])
def test_decoding_starts_at_the_keyframe_before_the_clip(tmp_path, monkeypatch, suffix, fmt):
    import mvit_lab.data._seek as seek

    decoded = []
    real = seek._decode

    def counting(*args):
        for frame in real(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(seek, "_decode", counting)
    path = write_video(tmp_path / f"v.{suffix}", keyint=37)  # keyframes 0, 37, 74, 111, 148
    full = np.stack(decode_from_start(path, None))
    clip = [86 + 4 * i for i in range(16)]
    np.testing.assert_array_equal(np.stack(_frames(path, clip)), full[clip])
    # frames 74..149 at most (unreferenced B-frames are not even decoded), not from 37
    assert len(decoded) <= 150 - 74
