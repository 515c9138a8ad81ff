"""Seeking video decode: only the stretches of a video that the wanted frames need.

A frame is named by its position in presentation order (what a decode from the start
yields). The packets' timestamps, read without decoding, map positions to presentation
timestamps (pts); for each wanted frame the decoder seeks to the last keyframe at or before it
(unless decoding on from where it is is shorter) and decodes forward to it. Several clips of
one video (evaluation views) are read in one forward pass over one open container. On the
way, frames that nothing refers to and nobody wants (most B-frames) are not decoded at all,
and only wanted frames are converted to RGB.

Anything the timestamps cannot vouch for returns ``None`` and the caller decodes from the
start: packets without pts or with repeated pts, a seek that does not land on a keyframe at
or before the wanted frame (tried at the keyframe's pts, then its dts), a wanted frame that
never comes out of the decoder (truncated data).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

__all__ = ["VideoIndex", "decode_frames", "read_index"]

# Decoding on is cheaper than seeking when the next keyframe is only this many frames ahead:
# a seek throws away the frames the decoder's threads have in flight.
SEEK_AHEAD = 16
# Decoders whose "NONREF" discard drops exactly the frames no other frame refers to (H.264
# nal_ref_idc 0, HEVC sub-layer non-reference, VP8/9 frames that refresh no reference, MPEG
# B-frames); elsewhere every frame is decoded.
SKIPS_UNREFERENCED = {"h264", "hevc", "vp8", "vp9", "mpeg1video", "mpeg2video", "mpeg4"}


@dataclass(frozen=True)
class VideoIndex:
    """A video stream's frames as the demuxer sees them.

    ``pts``: the presentation timestamps of all frames, ascending (position ``i`` is frame
    ``i``), or ``None`` when some packet has no pts or two share one. ``keyframes``: (pts,
    dts) of the keyframe packets, ascending by pts. ``num_frames`` counts the packets either
    way.
    """

    num_frames: int
    pts: list[int] | None
    keyframes: list[tuple[int, int | None]]


def read_index(container: av.container.InputContainer, stream: av.VideoStream) -> VideoIndex:
    """Demux (no decoding) the whole stream and index its packets."""
    pts: list[int | None] = []
    keyframes = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packets demux() yields at the end
            continue
        pts.append(packet.pts)
        if packet.is_keyframe and packet.pts is not None:
            keyframes.append((packet.pts, packet.dts))
    count = len(pts)
    if any(p is None for p in pts) or len(set(pts)) != count:
        return VideoIndex(count, None, [])
    return VideoIndex(count, sorted(pts), sorted(keyframes))  # type: ignore[arg-type]


def decode_frames(container: av.container.InputContainer, stream: av.VideoStream,
                  indices: list[int]) -> list[np.ndarray] | None:
    """Frames ``indices`` (``[H, W, 3]`` uint8 each, past the end: the last), or ``None``
    when the timestamps cannot be trusted (the caller then decodes from the start)."""
    index = read_index(container, stream)
    if index.pts is None or not index.keyframes or index.num_frames == 0:
        return None
    last = index.num_frames - 1
    targets = sorted({min(i, last) for i in indices})
    found = _decode_targets(container, stream, index, targets)
    if found is None:
        return None
    return [found[min(i, last)] for i in indices]


def _decode_targets(container: av.container.InputContainer, stream: av.VideoStream,
                    index: VideoIndex, targets: list[int]) -> dict[int, np.ndarray] | None:
    """Decode frames ``targets`` (ascending positions) going forward through the video."""
    pts: list[int] = index.pts  # type: ignore[assignment]
    key_pts = [k for k, _ in index.keyframes]
    position_of = {p: i for i, p in enumerate(pts)}
    wanted = {pts[t]: t for t in targets}
    found: dict[int, np.ndarray] = {}
    frames: Iterator[av.VideoFrame] | None = None  # the decoder's output since the last seek
    position = -1  # frame position of the last frame decoded
    for target in targets:
        if target in found:
            continue
        k = bisect.bisect_right(key_pts, pts[target]) - 1
        if k < 0:  # no keyframe at or before the frame: nothing to seek to
            return None
        key, key_dts = index.keyframes[k]
        if frames is None or position_of[key] - position > SEEK_AHEAD:
            frames = _seek(container, stream, (key, key_dts), target, position_of, wanted)
            if frames is None:
                return None
        for frame in frames:
            at = position_of.get(frame.pts)  # type: ignore[arg-type]
            if at is None:
                return None  # a timestamp the index lacks
            position = at
            if frame.pts in wanted:
                found[at] = frame.to_ndarray(format="rgb24")
            if at >= target:
                break
        if target not in found:
            return None
    return found


def _seek(container: av.container.InputContainer, stream: av.VideoStream,
          offsets: tuple[int, int | None], target: int, position_of: dict[int, int],
          wanted: dict[int, int]) -> Iterator[av.VideoFrame] | None:
    """Seek to the keyframe at ``offsets`` (its pts, then its dts) and return the decoder's
    frames from there, or ``None`` if neither lands on a keyframe at or before ``target``.

    MP4, MOV and Matroska seek by pts (the keyframe's dts would land a whole keyframe
    interval early), MPEG-TS by dts (its pts lands after the keyframe); the first decoded
    frame tells which worked."""
    for offset in dict.fromkeys(o for o in offsets if o is not None):
        container.seek(offset, stream=stream, backward=True)
        frames = _decode(container, stream, wanted)
        first = next(frames, None)
        if first is None or first.pts is None or not first.key_frame:
            continue
        if position_of.get(first.pts, target + 1) <= target:
            return itertools.chain([first], frames)
    return None


def _decode(container: av.container.InputContainer, stream: av.VideoStream,
            wanted: dict[int, int]) -> Iterator[av.VideoFrame]:
    """``container.decode(stream)``, except that frames no other frame refers to are not
    decoded unless wanted (the decoder drops them whole: nothing else can change)."""
    context = stream.codec_context
    if context.name not in SKIPS_UNREFERENCED:
        yield from container.decode(stream)
        return
    try:
        for packet in container.demux(stream):
            context.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            yield from packet.decode()
    finally:
        context.skip_frame = "DEFAULT"
