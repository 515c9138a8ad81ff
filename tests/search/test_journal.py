"""Writes a store refuses are kept on disk and replayed once, in order."""

from __future__ import annotations

import json

from mvit_lab.search.journal import JOURNAL, Recorder, plain_text, replay_journals
from mvit_lab.tracking import Tracker, ensure_experiment, metric_history, runs_dataframe


def _store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    ensure_experiment("j", uri)
    return uri, Tracker(uri, "j").start_parent("sweep", {}, {})


def test_a_refused_write_and_all_later_ones_go_to_the_journal_then_replay(tmp_path):
    uri, parent = _store(tmp_path)
    journal = tmp_path / "trials" / "t1" / JOURNAL
    rec = Recorder(uri, "j", journal)
    run = rec.start_child(parent, "t1", {"model.embed_dim": 8}, dict(trial_id="t1"))
    rec.log_metrics(run, dict(val_top1=50.0), step=1)
    broken = tmp_path / "mlruns.db-journal"  # every query now fails (disk I/O error)
    broken.mkdir()
    rec.log_metrics(run, dict(val_top1=60.0), step=2)
    assert rec.offline and "disk I/O" in rec.error
    broken.rmdir()  # back, but this trial stays on its journal: one place per write
    rec.log_metrics(run, dict(val_top1=70.0), step=3)
    rec.set_tags(run, dict(status="finished"))
    rec.finish(run, "FINISHED")
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["method"] for e in entries] == ["log_metrics", "log_metrics", "set_tags",
                                              "finish"]
    runs = runs_dataframe(uri, "j", parent_run_id=parent)
    assert runs["status"].tolist() == ["RUNNING"]  # until the replay
    assert replay_journals(tmp_path / "trials", uri, "j") == ["t1"]
    history = metric_history(uri, run, "val_top1")
    assert [(s, v) for s, v in history] == [(1, 50.0), (2, 60.0), (3, 70.0)]
    runs = runs_dataframe(uri, "j", parent_run_id=parent)
    assert runs["status"].tolist() == ["FINISHED"] and runs["tag.status"][0] == "finished"
    assert not journal.exists()  # replayed once: a second replay has nothing to do
    assert replay_journals(tmp_path / "trials", uri, "j") == []
    assert len(metric_history(uri, run, "val_top1")) == 3


def test_a_run_never_created_is_created_by_the_replay(tmp_path):
    uri, parent = _store(tmp_path)
    (tmp_path / "mlruns.db-journal").mkdir()
    rec = Recorder(uri, "j", tmp_path / "trials" / "t2" / JOURNAL)
    run = rec.start_child(parent, "t2", {}, dict(trial_id="t2"))
    assert run == "$run"
    rec.log_metrics(run, dict(val_top1=1.0), step=1)
    rec.finish(run, "FINISHED")
    (tmp_path / "mlruns.db-journal").rmdir()
    replay_journals(tmp_path / "trials", uri, "j")
    runs = runs_dataframe(uri, "j", parent_run_id=parent)
    assert len(runs) == 1 and runs["tag.trial_id"][0] == "t2"
    assert runs["status"][0] == "FINISHED" and runs["metric.val_top1"][0] == 1.0


def test_a_replay_that_fails_midway_keeps_what_is_left(tmp_path, monkeypatch):
    uri, parent = _store(tmp_path)
    (tmp_path / "mlruns.db-journal").mkdir()
    journal = tmp_path / "trials" / "t3" / JOURNAL
    rec = Recorder(uri, "j", journal)
    run = rec.start_child(parent, "t3", {}, dict(trial_id="t3"))
    for step in (1, 2, 3):
        rec.log_metrics(run, dict(val_top1=float(step)), step=step)
    (tmp_path / "mlruns.db-journal").rmdir()
    calls = []
    real = Tracker.log_metrics

    def flaky(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "log_metrics", flaky)
    try:
        replay_journals(tmp_path / "trials", uri, "j")
    except OSError:
        pass
    left = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["method"] for e in left] == ["log_metrics", "log_metrics"]
    assert all(e["args"][0] != "$run" for e in left)  # the run exists now: no second one
    monkeypatch.setattr(Tracker, "log_metrics", real)
    replay_journals(tmp_path / "trials", uri, "j")
    runs = runs_dataframe(uri, "j", parent_run_id=parent)
    assert len(runs) == 1
    assert [s for s, _ in metric_history(uri, runs["run_id"][0], "val_top1")] == [1, 2, 3]


def test_reasons_are_plain_text():
    coloured = "\x1b[36mray::_trainable()\x1b[39m (pid=123)\x1b[0m failed"
    assert plain_text(coloured) == "ray::_trainable() (pid=123) failed"
