"""Issue 17: `mvit-lab pareto` reads only the params and metrics its table needs, as rows, and
never imports torch; what it prints is what the full runs frame gives."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from mvit_lab.cli import main
from mvit_lab.search.pareto import front_table, parse_objectives
from mvit_lab.search.records import sweep_records
from mvit_lab.tracking import runs_dataframe

ROOT = Path(__file__).resolve().parents[2]


def _experiment(tmp_path, uri, name="ablation"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(dict(
        name=name, data=dict(dataset="digits"), model=dict(preset="mvitv2_t"),
        search=dict(params=dict(embed_dim=dict(choice=[16, 24]))),
        objectives=dict(val_top1="max", gflops="min"), tracking=dict(uri=uri))))
    return path


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def test_pareto_json_equals_the_front_of_the_full_runs_frame(fixture_store, tmp_path, capsys):
    path = _experiment(tmp_path, fixture_store["uri"])
    assert main(["pareto", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # the front as it was computed before the narrow read: the frame of every column
    runs = runs_dataframe(fixture_store["uri"], "ablation")
    runs = runs[runs["parent_run_id"].notna()]
    objectives = parse_objectives(dict(val_top1="max", gflops="min"))
    front = front_table(sweep_records(runs, objectives), objectives)
    config_cols = [c for c in runs.columns if c.startswith("param.model.")]
    by_id = runs.set_index("run_id")
    expected = json.loads(json.dumps(
        [dict(r, config={c[len("param.model."):]: by_id.loc[r["run_id"], c]
                         for c in config_cols}) for r in front], default=str))
    assert len(got) == 2 and [r["run_id"] for r in got] == [r["run_id"] for r in expected]
    for mine, theirs in zip(got, expected):
        assert {k: _nan_to_none(v) for k, v in mine.items()} == \
            {k: _nan_to_none(v) for k, v in theirs.items()}
    assert [(r["val_top1"], r["gflops"]) for r in got] == [(94.0, 1.0), (87.0, 0.5)]
    # the table (which reads no params at all) as the full frame's records print it
    from mvit_lab.cli import _front_rows, _table
    from mvit_lab.search.records import cost_summary

    records = sweep_records(runs, objectives)
    expected_text = "\n".join([
        "2 of 8 trials on the front of val_top1 max, gflops min",
        cost_summary([r for r in records if r["status"] == "finished"]),
        _table(_front_rows(front, list(objectives)),
               ["rank", "point", "seed", "val_top1", "gflops", "params", "throughput"])]) + "\n"
    assert main(["pareto", str(path)]) == 0
    assert capsys.readouterr().out == expected_text


def test_pareto_imports_neither_torch_nor_mlflow(fixture_store, tmp_path):
    path = _experiment(tmp_path, fixture_store["uri"])
    code = ("import sys; from mvit_lab.cli import main; rc = main(['pareto', sys.argv[1]]); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch', "
            "'mlflow imported' if 'mlflow' in sys.modules else 'no mlflow', rc)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # a SQLite store is read with SQL: importing MLflow alone costs ~3 CPU-s
    assert done.stdout.strip().splitlines()[-1] == "no torch no mlflow 0"
