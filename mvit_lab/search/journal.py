"""A trial's writes to the tracking store, kept on disk when the store refuses them.

A store can become unwritable in the middle of a sweep that runs for days: a read-only mount,
a corrupt SQLite file, a full disk, a tracking server down. Training must not stop for that,
and nothing it produced may be lost. A :class:`Recorder` passes each write to the
:class:`~mvit_lab.tracking.Tracker`; from the first one the store refuses, it says so once
(one log line naming the store and the journal) and appends that write and every later one to
``journal.jsonl`` in the trial's folder instead. :func:`replay_journals` (run by a resumed
sweep's driver) applies each pending journal to the store in order, then renames it, so every
write lands exactly once and no run stays RUNNING.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL", "PENDING_RUN", "Recorder", "plain_text", "replay_journals"]

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
PENDING_RUN = "$run"  # the run id of a trial whose run could not even be created
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain_text(text: str, limit: int = 1000) -> str:
    """``text`` without terminal colour codes (Ray colours its errors), clipped."""
    return _ANSI.sub("", text)[:limit]


def _one_line(err: BaseException) -> str:
    text = plain_text(f"{type(err).__name__}: {err}", 300)
    return " ".join(text.split())


class Recorder:
    """The tracker of one trial, falling back to ``journal`` on the first refused write."""

    def __init__(self, tracking_uri: str, experiment: str, journal: str | Path) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.journal = Path(journal)
        self.error: str | None = None  # why the store was given up on
        self._tracker: Any = None

    @property
    def offline(self) -> bool:
        return self.error is not None

    def _call(self, method: str, *args: Any) -> Any:
        if not self.offline:
            try:
                if self._tracker is None:
                    from mvit_lab.tracking import Tracker

                    self._tracker = Tracker(self.tracking_uri, self.experiment)
                return getattr(self._tracker, method)(*args)
            except ValueError:
                raise  # a bad argument is the caller's error, not the store's
            except Exception as err:  # the store refused: keep going on disk
                self.error = _one_line(err)
                log.error("tracking store %s refused a write (%s); this trial's records go to "
                          "%s until a resumed sweep replays them", self.tracking_uri,
                          self.error, self.journal)
        entry = dict(method=method, args=list(args), time_ms=int(time.time() * 1000))
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return PENDING_RUN if method == "start_child" else None

    def start_child(self, parent: str, name: str, params: dict, tags: dict) -> str:
        return self._call("start_child", parent, name, params, tags)

    def log_metrics(self, run_id: str, metrics: dict, step: int) -> None:
        metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        self._call("log_metrics", run_id, metrics, step)

    def set_tags(self, run_id: str, tags: dict) -> None:
        self._call("set_tags", run_id, tags)

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self._call("log_dict", run_id, obj, artifact_file)

    def finish(self, run_id: str, status: str) -> None:
        self._call("finish", run_id, status)


def replay_journals(trials_dir: str | Path, tracking_uri: str, experiment: str) -> list[str]:
    """Apply every pending trial journal under ``trials_dir`` to the store; returns the trial
    folders replayed. A journal that fails midway keeps its unapplied entries for next time."""
    from mvit_lab.tracking import Tracker

    replayed = []
    journals = sorted(Path(trials_dir).glob(f"*/{JOURNAL}"))
    if not journals:
        return replayed
    tracker = Tracker(tracking_uri, experiment)
    for path in journals:
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        run_id = None
        for i, entry in enumerate(entries):
            args = entry["args"]
            if entry["method"] != "start_child" and args and args[0] == PENDING_RUN:
                if run_id is None:  # the run was never created: find or create it first
                    raise RuntimeError(f"{path}: entry {i} needs a run but none was started")
                args = [run_id, *args[1:]]
            try:
                if entry["method"] == "log_metrics":
                    tracker.log_metrics(*args, timestamp_ms=entry.get("time_ms"))
                else:
                    result = getattr(tracker, entry["method"])(*args)
                    if entry["method"] == "start_child":
                        run_id = result
            except Exception:
                rest = entries[i:]
                if run_id is not None:  # later attempts need not create the run again
                    rest = [dict(e, args=[run_id if a == PENDING_RUN else a
                                          for a in e["args"]]) for e in rest]
                _rewrite(path, rest)
                raise
        path.rename(path.with_name(f"journal.replayed-{int(time.time())}.jsonl"))
        replayed.append(path.parent.name)
    return replayed


def _rewrite(path: Path, entries: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(e, default=str) + "\n" for e in entries))
    os.replace(tmp, path)
