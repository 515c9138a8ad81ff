"""What the dataset manifest saves: building a video list with and without it.

    python benchmarks/probe_manifest.py            # 100 videos, 3 s each, 30 fps, 340x256

Generates a video list (H.264, keyframe every 30 frames), then builds ``VideoList`` over it
as a sweep's trials do: the first trial with an empty manifest (it probes every file and
writes the manifest), later trials with the manifest (they only stat the files), and a
trial after one file changed (it probes that file only). Both probing levels are measured:
``probe: true`` decodes every frame, ``probe: false`` reads the packets only. Each build
runs ``--rounds`` times with a fresh cache for the cold ones; medians and (min, max) of
process CPU time and wall time are reported.

Writes ``benchmarks/results/probe_manifest.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from mvit_lab.data.datasets import VideoList

RESULTS = Path(__file__).parent / "results"
CLASSES = [f"class{i}" for i in range(5)]


def write_dataset(root: Path, n: int, seconds: float, fps: int, size: tuple[int, int]) -> Path:
    w, h = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (h, w + round(seconds * fps), 3), dtype=np.uint8)
    rows = []
    for i in range(n):
        path = root / f"{i:04d}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"g": "30", "preset": "ultrafast", "crf": "28", "threads": "1"}
            for t in range(round(seconds * fps)):
                image = texture[:, t:t + w].copy()
                image[:20, : 20 + i % 50] = (3 * t) % 256  # no two videos alike
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        rows.append(f"{path.name},class{i % 5}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


def timed(fn) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def summary(values: list[float]) -> dict[str, float]:
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=2, default=[340, 256], metavar=("W", "H"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "probe_manifest")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_dataset(Path(tmp), args.videos, args.seconds, args.fps, tuple(args.size))
        for probe in (True, False):
            runs: dict[str, list[tuple[float, float]]] = {}
            for r in range(args.rounds):
                os.environ["MVIT_LAB_CACHE"] = str(Path(tmp) / f"cache-{probe}-{r}")

                def build(probe=probe):
                    return VideoList(csv, (224, 224), 16, probe=probe, classes=CLASSES)

                for name in ("first trial (no manifest)", "later trial (manifest)"):
                    cpu, wall, ds = timed(build)
                    runs.setdefault(name, []).append((cpu, wall))
                    assert len(ds) == args.videos  # type: ignore[arg-type]
                os.utime(csv.parent / "0000.mp4")  # one file changed since
                cpu, wall, ds = timed(build)
                assert ds.report.manifest["probed"] == 1  # type: ignore[attr-defined]
                runs.setdefault("after one file changed", []).append((cpu, wall))
            for name, values in runs.items():
                row = dict(probe=probe, build=name, videos=args.videos,
                           cpu_s=summary([c for c, _ in values]),
                           wall_s=summary([w for _, w in values]))
                print(f"probe={probe!s:5s} {name:28s} CPU {row['cpu_s']['median']:.3f} s, "
                      f"wall {row['wall_s']['median']:.3f} s", flush=True)
                rows.append(row)
    record = dict(benchmark="probe_manifest", videos=args.videos, seconds=args.seconds,
                  fps=args.fps, size=args.size, rounds=args.rounds, results=rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["| probe | build | CPU s (median, min-max) | wall s (median, min-max) |",
             "|---|---|---|---|"]
    lines += [f"| {r['probe']} | {r['build']} | {r['cpu_s']['median']:.3f} "
              f"({r['cpu_s']['min']:.3f}-{r['cpu_s']['max']:.3f}) | "
              f"{r['wall_s']['median']:.3f} ({r['wall_s']['min']:.3f}-{r['wall_s']['max']:.3f}) |"
              for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
