"""Seeking video decode against the decode it replaced, side by side, in process CPU time.

    python benchmarks/video_decode.py                 # 10 s, 30 fps, 340x256, 7 rounds

Writes a 10 s, 30 fps, 340x256 H.264 video (textured, moving; x264 ``veryfast`` with
B-frames) for each keyframe interval, then decodes a 16x4 clip at its end (frames 239, 243,
..., 299) with the decode before seeking (from frame 0 up to the last frame needed, every
frame converted to RGB: the old ``decode_video``, copied below) and with today's
``decode_video``, both followed by the same float conversion. The two alternate within each
round; a round times ``--reps`` calls of each with ``time.process_time`` (all threads of this
process, so decoder threads count). Reported: the median per-call CPU of each, the ratio of
the medians, and the spread of the per-round ratios (min, max). Every call's frames are
checked to be identical. Each video is measured with FFmpeg's threads (``AUTO``, what
``decode_video`` uses in the main process) and without (``NONE``, what it uses inside a
DataLoader worker), the old decode taking the same setting. A second case decodes three
evaluation views (16x4 clips at the start, middle and end) in one call.

Writes ``benchmarks/results/video_decode.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from mvit_lab.data import _decode
from mvit_lab.data._decode import decode_video

RESULTS = Path(__file__).parent / "results"
END = "16x4 clip at the end"


def decode_before(path: str | Path, indices: list[int]) -> torch.Tensor:
    """``decode_video`` as it was before seeking (float output; its thread setting was "AUTO"
    everywhere; here it takes the same setting as today's, so the two differ only in what
    they decode)."""
    wanted = max(indices)
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = _decode.thread_type()  # as today's decode_video
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) > wanted:
                break
    frames = [frames[min(i, len(frames) - 1)] for i in indices]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)


def decode_after(path: str | Path, indices: list[int]) -> torch.Tensor:
    return decode_video(path, indices).float().div_(255)


def write_video(path: Path, seconds: float, fps: int, keyint: int, size: tuple[int, int],
                bframes: int) -> None:
    """Smooth moving gradients, film-grain texture and a moving square: a bitrate near
    Kinetics' 340x256 clips rather than incompressible noise. ``bframes`` > 0 puts that many
    B-frames between P-frames (b-adapt off: x264 would choose none for this content; real
    camera footage gets them, and YouTube's and ffmpeg's default encodes use them)."""
    w, h = size
    frames = round(seconds * fps)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = np.random.default_rng(0).normal(0, 12, (h, w + frames, 3)).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0",
                          "bf": str(bframes), "preset": "veryfast", "threads": "1",
                          "x264-params": "b-adapt=0"}
        for t in range(frames):
            image = np.stack([128 + 60 * np.sin(xx / 23 + t / 9),
                              128 + 60 * np.cos(yy / 17 - t / 13),
                              128 + 50 * np.sin((xx + yy) / 31 + t / 7)], -1)
            image += grain[:, t:t + w]
            x, y = 40 + (3 * t) % (w - 80), 60 + int(40 * np.sin(t / 15))
            image[y:y + 40, x:x + 40] = (5 * t) % 255
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_types(path: Path) -> dict[str, int]:
    """Frames per picture type, and how many no other frame refers to."""
    with av.open(str(path)) as container:
        types = [av.video.frame.PictureType(f.pict_type).name
                 for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.skip_frame = "NONREF"
        referenced = sum(1 for _ in container.decode(video=0))
    counts = {t: types.count(t) for t in sorted(set(types))}
    return dict(counts, unreferenced=len(types) - referenced)


def clip(start: int, clip_len: int = 16, stride: int = 4) -> list[int]:
    return [start + i * stride for i in range(clip_len)]


def measure(path: Path, indices: list[int], rounds: int, reps: int) -> dict:
    reference = decode_before(path, indices)
    if not torch.equal(decode_after(path, indices), reference):
        raise AssertionError(f"{path}: frames differ from the full decode")
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds):
        order = (("before", decode_before), ("after", decode_after))
        for name, fn in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.process_time()
            for _ in range(reps):
                out = fn(path, indices)
            cpu[name].append((time.process_time() - start) / reps)
            if not torch.equal(out, reference):
                raise AssertionError(f"{path}: {name} gave different frames")
    ratios = [b / a for b, a in zip(cpu["before"], cpu["after"])]
    before, after = statistics.median(cpu["before"]), statistics.median(cpu["after"])
    return dict(cpu_ms_before=[1e3 * x for x in cpu["before"]],
                cpu_ms_after=[1e3 * x for x in cpu["after"]],
                median_ms_before=1e3 * before, median_ms_after=1e3 * after,
                ratio=before / after, ratio_min=min(ratios), ratio_max=max(ratios),
                identical=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keyints", type=int, nargs="+", default=[12, 24, 37, 48, 60])
    parser.add_argument("--bframes", type=int, nargs="+", default=[3, 0],
                        help="B-frames between P-frames, one video per value")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=2, default=[340, 256], metavar=("W", "H"))
    parser.add_argument("--threads", nargs="+", default=["AUTO", "NONE"],
                        help="FFmpeg thread types: AUTO as in the main process, NONE as in a "
                             "DataLoader worker")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "video_decode")
    args = parser.parse_args()
    frames = round(args.seconds * args.fps)
    span = 15 * 4 + 1
    cases = {END: clip(frames - span),
             "3 views (start, middle, end)": clip(0) + clip((frames - span) // 2)
             + clip(frames - span)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for bframes in args.bframes:
            for keyint in args.keyints:
                path = Path(tmp) / f"k{keyint}-b{bframes}.mp4"
                write_video(path, args.seconds, args.fps, keyint, tuple(args.size), bframes)
                types = frame_types(path)
                for case, threads in [(c, t) for c in cases for t in args.threads]:
                    if case != END and (bframes, threads) != (args.bframes[0], args.threads[0]):
                        continue  # evaluation views: one setting is enough to show
                    _decode.THREAD_TYPE = threads
                    row = dict(case=case, keyint=keyint, bframes=bframes, threads=threads,
                               bytes=path.stat().st_size, frame_types=types,
                               **measure(path, cases[case], args.rounds, args.reps))
                    print(f"{case:30s} keyint {keyint:3d} bframes {bframes} {threads:4s}: "
                          f"{row['median_ms_before']:7.1f} ms -> {row['median_ms_after']:6.1f} "
                          f"ms CPU, {row['ratio']:.2f}x (rounds {row['ratio_min']:.2f}-"
                          f"{row['ratio_max']:.2f})", flush=True)
                    results.append(row)
    record = dict(benchmark="video_decode", video=dict(seconds=args.seconds, fps=args.fps,
                                                       size=args.size, codec="h264 veryfast"),
                  rounds=args.rounds, reps=args.reps, machine=platform.machine(),
                  processor=platform.processor(), torch_threads=torch.get_num_threads(),
                  pyav=av.__version__, ffmpeg=av.library_versions.get("libavcodec"),
                  results=results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["| case | keyframe every | B-frames | threads | CPU before (ms) | CPU after (ms) "
             "| ratio | rounds |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['keyint']} | {r['bframes']} | {r['threads']} | "
              f"{r['median_ms_before']:.1f} | "
              f"{r['median_ms_after']:.1f} | {r['ratio']:.2f}x | "
              f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f} |" for r in results]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
