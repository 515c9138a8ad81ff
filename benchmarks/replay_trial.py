"""What a replayed trial costs (``replay:`` in a sweep): the table's answer alone, and the whole
trial through ``run_trial`` with its MLflow run on a local SQLite store, without Ray.

    python benchmarks/replay_trial.py [--table benchmarks/replay/digits_small] [--rounds 3]

Each round replays every point of the table once in a fresh store (each trial creates its
run, logs its params, two artifacts and each epoch's metrics). Writes
``benchmarks/results/replay_trial.{json,md}``: per-trial medians and ranges, beside the
seconds the table's points took to train when they were recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _spread(values: list[float]) -> dict[str, float]:
    return dict(median=statistics.median(values), min=min(values), max=max(values),
                n=len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT / "benchmarks" / "replay" / "digits_small"))
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "replay_digits.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "replay_trial"))
    args = parser.parse_args()

    from mvit_lab.configfile import safe_load
    from mvit_lab.experiment import TrainConfig
    from mvit_lab.search.replay_backend import ReplayedTrial
    from mvit_lab.search.space import parse_space
    from mvit_lab.search.trial import TrialSpec, run_trial
    from mvit_lab.tracking import Tracker, ensure_experiment

    tree = safe_load(Path(args.space).read_text())
    space = parse_space(tree)
    points = space.points()
    replay = dict(table=str(Path(args.table).resolve()), time_scale=0.0)
    recording = json.loads((Path(args.table) / "recording.json").read_text())
    cfg = dataclasses.replace(TrainConfig(), epochs=recording["epochs"])
    answer, trial = [], []
    with tempfile.TemporaryDirectory() as tmp:  # the first call imports torch (TrainResult)
        start = time.perf_counter()
        ReplayedTrial(replay, points[0], space).train(tmp, cfg, lambda metrics: None)
        first = time.perf_counter() - start
    for r in range(args.rounds):
        for point in points:  # the answer alone: table lookup and every epoch's report
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                ReplayedTrial(replay, point, space).train(tmp, cfg, lambda metrics: None)
                answer.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:  # the whole trial, a fresh store per round
            os.environ["MVIT_LAB_LOCK_DIR"] = str(Path(tmp) / "locks")
            uri = f"sqlite:///{tmp}/mlruns.db"
            ensure_experiment("replay_bench", uri)
            parent = Tracker(uri, "replay_bench").start_parent("bench", {}, {})
            for point in points:
                spec = TrialSpec(
                    experiment=dict(name="replay_bench", data=dict(dataset="digits"),
                                    model=dict(preset="mvitv2_t"),
                                    train=dict(epochs=recording["epochs"])),
                    space=tree, point=dataclasses.asdict(point), seed=0, tracking_uri=uri,
                    mlflow_experiment="replay_bench", parent_run_id=parent,
                    trials_dir=str(Path(tmp) / "trials"), replay=replay)
                start = time.perf_counter()
                run_trial(spec)
                trial.append(time.perf_counter() - start)
        print(f"round {r + 1}: answer {statistics.median(answer[-len(points):]) * 1e3:.2f} ms, "
              f"trial {statistics.median(trial[-len(points):]):.3f} s (medians)", flush=True)
    recorded = recording.get("train_seconds_total", float("nan")) / recording["points"]
    result = dict(table=replay["table"], points=len(points), epochs=recording["epochs"],
                  rounds=args.rounds, first_answer_s=first, answer_s=_spread(answer),
                  trial_s=_spread(trial),
                  recorded_train_s_per_point=recorded, machine=platform.processor() or
                  platform.machine(), cpus=os.cpu_count(),
                  load_average=os.getloadavg(), when=time.strftime("%Y-%m-%d %H:%M UTC",
                                                                   time.gmtime()))
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    a, t = result["answer_s"], result["trial_s"]
    out.with_suffix(".md").write_text(
        f"# A replayed trial ({len(points)} points x {recording['epochs']} epochs, "
        f"{args.rounds} rounds)\n\n"
        "| part | median | min | max |\n|---|---|---|---|\n"
        f"| the table's answer (lookup + every epoch) | {a['median'] * 1e3:.2f} ms | "
        f"{a['min'] * 1e3:.2f} ms | {a['max'] * 1e3:.2f} ms |\n"
        f"| the whole trial (`run_trial`, MLflow on SQLite, no Ray) | {t['median']:.3f} s | "
        f"{t['min']:.3f} s | {t['max']:.3f} s |\n\n"
        f"The first answer in a process took {first:.2f} s (it imports torch), not counted "
        f"above. Recorded training: {recorded:.0f} s per point. Load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in result['load_average'])} on {result['cpus']} CPUs "
        f"({result['when']}).\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
