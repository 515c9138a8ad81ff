"""Reading many runs fast: SQLite stores read in a few SQL queries, and incremental reads.

:mod:`mvit_lab.tracking` reads runs through these helpers. MLflow's ``search_runs`` builds an
ORM object and an entity for every param, tag and metric of every run: at 5,000 runs of 61
params it took about a minute on a shared 2-core machine
(``benchmarks/results/dashboard_scale_before.json``). MLflow has no narrower read, and no
"changed since" filter on runs (runs have no update time), so for the embedded SQLite store,
which every sweep here defaults to, the runs, tags, params and latest metrics of an
experiment are read with four plain queries on MLflow's own tables (read-only), into the same
rows ``search_runs`` gives. Other stores (a tracking server) go through ``search_runs``.

:class:`RunsCache` keeps one experiment's rows and re-reads only what changed: a cheap
signature query (active runs, their latest start and end times, the newest metric timestamp,
how many run) says whether anything moved; if so only the runs started or ended since, or
with metrics logged since, are read again, and of the runs still running only those whose
tags, param count or latest metrics moved (small queries on those runs say which; a live
sweep's running trials are not read whole on every tick). A deleted or restored run (the
count moves without a run on the watermarks) and every ``full_every_s`` seconds bring a full
read, so a tag set alone on an ended run is seen within that time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["RunsCache", "sqlite_experiments", "sqlite_rows"]

_RUNNING = ("RUNNING", "SCHEDULED")


_READONLY_ROLLBACK = 776  # SQLITE_READONLY_ROLLBACK: a hot journal a reader cannot roll back


def _connect(path: Path) -> sqlite3.Connection:
    """A connection that only reads ``path`` (read-only, never creating it).

    A writer killed mid-transaction (Ray ends a stopped trial's process, which may be logging)
    leaves a hot journal, and the next reader must roll it back before reading: a read-only
    connection cannot, and every query fails with "attempt to write a readonly database". Then
    the store is opened read-write (``mode=rw`` still never creates a file), which rolls the
    journal back as any MLflow client would on its next access; this module only reads."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return con
    except sqlite3.OperationalError as err:
        con.close()
        if getattr(err, "sqlite_errorcode", None) != _READONLY_ROLLBACK:
            raise
    return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)


def sqlite_rows(path: Path, experiment_id: str, where: str = "",
                args: Iterable[Any] = (), params: Iterable[str] | None = None,
                metrics: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The active runs of ``experiment_id`` (narrowed by an SQL ``where`` on the ``runs``
    table ``r``) as ``search_runs``-like rows: ``run_id``, ``run_name``, ``status``,
    ``start_time`` / ``end_time`` (ms), ``tags``, ``params``, ``metrics`` (latest values),
    oldest first. ``params``: read only the params whose names start with one of these
    prefixes; ``metrics``: only these metrics (default: all of each)."""
    cond = "r.experiment_id = ? AND r.lifecycle_stage = 'active'" + (f" AND ({where})"
                                                                      if where else "")
    args = [int(experiment_id), *args]
    param_cond, param_args = _narrow("t.key", params, prefix=True)
    metric_cond, metric_args = _narrow("m.key", metrics, prefix=False)
    con = _connect(path)
    try:
        runs = con.execute(f"SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time "
                           f"FROM runs r WHERE {cond} ORDER BY r.start_time, r.run_uuid",
                           args).fetchall()
        rows = {rid: dict(run_id=rid, run_name=name, status=status, start_time=start,
                          end_time=end, tags={}, params={}, metrics={})
                for rid, name, status, start, end in runs}
        if not rows:
            return []
        sub = f"SELECT r.run_uuid FROM runs r WHERE {cond}"
        for table, field, narrow, extra in (("tags", "tags", "", []),
                                            ("params", "params", param_cond, param_args)):
            for rid, key, value in con.execute(
                    f"SELECT t.run_uuid, t.key, t.value FROM {table} t "
                    f"WHERE t.run_uuid IN ({sub}){narrow}", [*args, *extra]):
                rows[rid][field][key] = value
        for rid, key, value, is_nan in con.execute(
                f"SELECT m.run_uuid, m.key, m.value, m.is_nan FROM latest_metrics m "
                f"WHERE m.run_uuid IN ({sub}){metric_cond}", [*args, *metric_args]):
            rows[rid]["metrics"][key] = float("nan") if is_nan else float(value)
    finally:
        con.close()
    return list(rows.values())


def sqlite_experiments(path: Path) -> list[dict[str, str]]:
    """``name``, ``experiment_id`` and ``lifecycle_stage`` of every experiment, by name: what
    ``MlflowClient`` would say, without creating its store (importing MLflow's SQLAlchemy
    store and checking the schema cost seconds of CPU per process)."""
    con = _connect(path)
    try:
        rows = con.execute("SELECT experiment_id, name, lifecycle_stage FROM experiments "
                           "ORDER BY name").fetchall()
    finally:
        con.close()
    return [dict(experiment_id=str(eid), name=name, lifecycle_stage=stage)
            for eid, name, stage in rows]


def _narrow(column: str, keys: Iterable[str] | None, prefix: bool) -> tuple[str, list]:
    """An SQL condition (`` AND ...``) keeping the ``keys`` (or the names starting with one
    of them, with ``prefix``) of ``column``; nothing when ``keys`` is None."""
    if keys is None:
        return "", []
    keys = list(keys)
    if not keys:
        return " AND 0", []
    if prefix:  # substr, not LIKE: LIKE ignores case and takes _ as a wildcard
        return " AND (" + " OR ".join(f"substr({column}, 1, ?) = ?" for _ in keys) + ")", [
            v for key in keys for v in (len(key), key)]
    return f" AND {column} IN ({','.join('?' * len(keys))})", keys


def _signature(path: Path, experiment_id: str) -> tuple:
    con = _connect(path)
    try:
        runs = con.execute(
            "SELECT COUNT(*), MAX(start_time), MAX(end_time), "
            "SUM(status IN ('RUNNING', 'SCHEDULED')) FROM runs "
            "WHERE experiment_id = ? AND lifecycle_stage = 'active'",
            (int(experiment_id),)).fetchone()
        metric = (None,) if not runs[0] else con.execute(  # (an empty experiment: no scan)
            "SELECT MAX(m.timestamp) FROM latest_metrics m JOIN runs r "
            "ON m.run_uuid = r.run_uuid WHERE r.experiment_id = ?",
            (int(experiment_id),)).fetchone()
    finally:
        con.close()
    return (*runs, metric[0])


class RunsCache:
    """One experiment's rows, kept and refreshed incrementally (SQLite stores; any other
    store is read whole on every refresh).

    ``read_all()`` reads every row; ``read_changed(since)`` the rows that may have changed
    given the previous signature. After :meth:`refresh`, ``rows`` maps run ids to rows (in
    start order), ``changed`` holds the ids read again, and ``version`` counts the refreshes
    that changed something.
    """

    def __init__(self, sqlite_path: Path | None, experiment_id: str, read_all: Any,
                 full_every_s: float = 300.0) -> None:
        self.path = sqlite_path
        self.experiment_id = experiment_id
        self._read_all = read_all
        self.full_every_s = full_every_s
        self.rows: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()
        self.version = 0
        # names this cache in fingerprints: unique across caches and processes (an id() can be
        # reused by a later cache, and a restarted server must not match a page's old state)
        self.token = uuid.uuid4().hex
        self.touched: dict[str, int] = {}  # run id -> the version it last changed (or went) in
        self.full_reads = 0
        self.partial_reads = 0
        self.last_read = 0  # rows the last refresh read from the store
        self.last_digested = 0  # runs the last partial refresh digested one by one
        self._sig: tuple | None = None
        self._digests: dict[str, tuple] = {}  # of the runs running at the last refresh
        self._mark: tuple | None = None  # of the ended runs on the last refresh's watermarks
        self._full_at = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Bring the rows up to date; True if any row changed (or appeared or went)."""
        with self._lock:
            if self.path is None:
                return self._full(None)
            sig = _signature(self.path, self.experiment_id)
            stale = time.monotonic() - self._full_at > self.full_every_s
            if self._sig is None or stale or sig[0] < self._sig[0]:
                return self._full(sig)
            if sig == self._sig and not sig[3]:
                self.changed, self.last_read = set(), 0
                return False  # nothing started, ended, logged a metric, or is running
            return self._partial(sig)

    def _full(self, sig: tuple | None) -> bool:
        if self.path is not None and sig is not None:
            # what the next refresh compares (the running runs' digests, the mark of the runs
            # on the watermarks): taken before the read, so that a write in between moves them
            con = _connect(self.path)
            try:
                ids = [rid for (rid,) in con.execute(
                    "SELECT run_uuid FROM runs WHERE experiment_id = ? AND lifecycle_stage = "
                    "'active' AND status IN ('RUNNING', 'SCHEDULED')",
                    (int(self.experiment_id),))]
                self._digests = _digests(con, ids, set(ids))
                self._mark = _marks(con, self.experiment_id, _watermarks(sig))[0]
            finally:
                con.close()
        rows = self._read_all()
        self.full_reads += 1
        self.last_read = len(rows)
        self._full_at = time.monotonic()
        new = {r["run_id"]: r for r in rows}
        self.changed = {k for k, r in new.items() if self.rows.get(k) != r} | (
            set(self.rows) - set(new))
        self.rows, self._sig = new, sig
        return self._bump()

    def _bump(self) -> bool:
        if self.changed:
            self.version += 1
            self.touched.update(dict.fromkeys(self.changed, self.version))
        return bool(self.changed)

    def _partial(self, sig: tuple) -> bool:
        """Re-read the runs past the watermarks (started, ended or logged a metric after the
        last signature's newest times), and of the runs running those whose times, status,
        latest metrics, param count or tags moved, judged by small queries: a live sweep's
        running trials are not read whole on every tick. The ended runs on the watermarks
        (a write in the same millisecond is possible) are checked together by one aggregate,
        :func:`_marks`, and read again only if it moved: a store whose runs share the newest
        timestamp (copied or imported in one go) is not digested run by run on every tick."""
        watermarks = _watermarks(self._sig)  # type: ignore[arg-type]
        was_running = [k for k, r in self.rows.items() if r["status"] in _RUNNING]
        marks = ",".join("?" * len(was_running))
        # past a watermark: only where the signature's newest time moved (else nothing is)
        moved = [i for i, k in enumerate((1, 2, 4)) if sig[k] != self._sig[k]]  # type: ignore
        past = " OR ".join(_PAST[i] for i in moved) or "0"
        past_args = [watermarks[i] for i in moved]
        con = _connect(self.path)  # type: ignore[arg-type]
        try:
            heads = con.execute(
                f"SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, ({past}) "
                f"FROM runs r WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' AND "
                f"(r.status IN ('RUNNING', 'SCHEDULED') OR {past}"
                + (f" OR r.run_uuid IN ({marks})" if was_running else "") + ")",
                [*past_args, int(self.experiment_id), *past_args, *was_running]).fetchall()
            running = {h[0] for h in heads if h[2] in _RUNNING}
            digests = _digests(con, sorted(running), running)
            self.last_digested = len(digests)
            reread = set()
            for rid, name, status, begun, ended, marked in heads:
                old = self.rows.get(rid)
                if marked or old is None or (old["run_name"], old["status"], old["start_time"],
                                             old["end_time"]) != (name, status, begun, ended):
                    reread.add(rid)
                elif digests.get(rid) != self._digests.get(rid):
                    reread.add(rid)
            # the mark of the last refresh's watermarks, and (for the next refresh, taken
            # before the read: see _full) of this one's
            mark, after = _marks(con, self.experiment_id, watermarks, _watermarks(sig))
            if mark != self._mark:
                reread.update(_on(con, self.experiment_id, watermarks))
            check = [rid for rid in running if rid not in reread]
            for rid, tags in _tags(con, check).items():
                if tags != self.rows[rid]["tags"]:
                    reread.add(rid)
        finally:
            con.close()
        fresh = sqlite_rows(self.path, self.experiment_id,  # type: ignore[arg-type]
                            f"r.run_uuid IN ({','.join('?' * len(reread))})",
                            sorted(reread)) if reread else []
        self._digests, self._mark = digests, after
        self.partial_reads += 1
        self.last_read = len(fresh)
        self.changed = {r["run_id"] for r in fresh if self.rows.get(r["run_id"]) != r}
        new_run = any(r["run_id"] not in self.rows for r in fresh)
        for r in fresh:
            self.rows[r["run_id"]] = r
        if new_run:
            self.rows = dict(sorted(self.rows.items(),
                                    key=lambda kv: (kv[1]["start_time"] or 0, kv[0])))
        self._sig = sig
        changed = self._bump()
        if len(self.rows) != sig[0]:  # a run came back (restored) with old times: read all
            return self._full(sig) or changed
        return changed


# started, ended, logged after a watermark (the signature's newest start, end, metric time)
_PAST = ("r.start_time > ?", "r.end_time > ?",
         "r.run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE timestamp > ?)")


def _watermarks(sig: tuple) -> list[int]:
    """A signature's newest start, end and metric times."""
    return [sig[1] or 0, sig[2] or 0, sig[4] or 0]


# an experiment's ended runs (one ? for the experiment id)
_ENDED = ("experiment_id = ? AND lifecycle_stage = 'active' AND status NOT IN "
          "('RUNNING', 'SCHEDULED')")
_ON = (f"{_ENDED} AND (start_time = ? OR end_time = ? OR run_uuid IN "
       f"(SELECT run_uuid FROM latest_metrics WHERE timestamp = ?))")


def _on(con: sqlite3.Connection, experiment_id: str, watermarks: list[int]) -> list[str]:
    """The ended runs on the ``watermarks`` (started, ended or last logged in their
    millisecond)."""
    return [rid for (rid,) in con.execute(f"SELECT run_uuid FROM runs WHERE {_ON}",
                                          [int(experiment_id), *watermarks])]


def _marks(con: sqlite3.Connection, experiment_id: str,
           *watermarks: list[int]) -> list[tuple]:
    """Per set of ``watermarks``, one aggregate over the ended runs on them: how many started
    or ended in the newest start or end millisecond, with their times and statuses, and of
    their latest metrics those logged in the newest metric millisecond (count, sums of steps
    and values; one scan for all the sets). A write to an ended run in the watermarks'
    millisecond moves it; a running run's writes do not (they are digested one by one)."""
    eid = int(experiment_id)
    stamps = sorted({w[2] for w in watermarks})
    metrics = {ts: (count, steps, values) for ts, count, steps, values in con.execute(
        f"SELECT timestamp, COUNT(*), TOTAL(step), TOTAL(value) FROM latest_metrics WHERE "
        f"timestamp IN ({','.join('?' * len(stamps))}) AND run_uuid IN (SELECT run_uuid FROM "
        f"runs WHERE {_ENDED}) GROUP BY timestamp", [*stamps, eid])}
    out = []
    for w in watermarks:
        runs = con.execute(
            f"SELECT COUNT(*), TOTAL(start_time), TOTAL(end_time), GROUP_CONCAT(DISTINCT "
            f"status) FROM runs WHERE {_ENDED} AND (start_time = ? OR end_time = ?)",
            [eid, w[0], w[1]]).fetchone()
        out.append((*runs, *metrics.get(w[2], (0, 0.0, 0.0))))
    return out


def _digests(con: sqlite3.Connection, run_ids: list[str],
             running: set[str] | frozenset[str] = frozenset()) -> dict[str, tuple]:
    """Per run: a digest of its latest metrics (count, sums of their timestamps, steps and
    values), and for the ``running`` ones how many params. A metric logged in the watermark's
    millisecond, or with a timestamp behind it (another machine's clock), moves the digest;
    params cannot change once logged, only be added (to a running run)."""
    metrics: dict[str, tuple] = {}
    params: dict[str, int] = {}
    for chunk in _chunks(run_ids):
        marks = ",".join("?" * len(chunk))
        metrics.update((rid, tuple(rest)) for rid, *rest in con.execute(
            f"SELECT run_uuid, COUNT(*), SUM(timestamp), SUM(step), TOTAL(value) "
            f"FROM latest_metrics WHERE run_uuid IN ({marks}) GROUP BY run_uuid", chunk))
        mine = [rid for rid in chunk if rid in running]
        if mine:
            params.update(con.execute(
                f"SELECT run_uuid, COUNT(*) FROM params WHERE run_uuid IN "
                f"({','.join('?' * len(mine))}) GROUP BY run_uuid", mine))
    return {rid: (params.get(rid, 0), metrics.get(rid)) for rid in run_ids}


def _tags(con: sqlite3.Connection, run_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {rid: {} for rid in run_ids}
    for chunk in _chunks(run_ids):
        for rid, key, value in con.execute(
                f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN "
                f"({','.join('?' * len(chunk))})", chunk):
            out[rid][key] = value
    return out


def _chunks(items: list[str], size: int = 900) -> Iterator[list[str]]:
    """Pieces under SQLite's limit on the number of ``?`` in a statement (999 before 3.32)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
