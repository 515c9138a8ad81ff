"""A dataset's manifest: what probing found for each file, reused by every later trial.

Probing decodes every file (or, for videos without ``probe``, reads every packet), which
costs CPU-hours on ImageNet or Kinetics. The manifest records per file its size and
modification time, the frame count (videos) and the skip reason, if any. A file whose size
and mtime still match and that was checked at least as thoroughly as asked is not opened
again; changed, new or less thoroughly checked files are probed and recorded.

Where: ``$MVIT_LAB_CACHE/manifests/`` (default ``~/.cache/mvit-lab/manifests/``), one JSON
file per dataset list (a video CSV) or image root, named after the list's absolute path.
Not beside the dataset: dataset folders are often read-only or shared between users, and a
cache dir is writable wherever trials run (cluster home dirs are usually shared between
nodes, so one probe serves the whole cluster).

Concurrency: a process holds the manifest's lock (``filelock``, next to it) while it loads,
probes and saves, so trials started together probe a new dataset once (the others wait,
then reuse it); a probe killed midway loses only the files since its last save (every
``SAVE_EVERY`` seconds). Saves go to a temporary file, then ``os.replace``: a reader never
sees half a file. An unreadable manifest (corrupt, other version) is set aside and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["LEVELS", "Manifest", "ManifestEntry", "manifest_path", "open_manifest"]

log = logging.getLogger(__name__)

VERSION = 1
SAVE_EVERY = 60.0  # seconds between saves during a long probe
# how thoroughly a file was checked: a decode of every frame vouches for a packet count too
LEVELS = {"counted": 0, "decoded": 1}


@dataclass(frozen=True)
class ManifestEntry:
    size: int
    mtime_ns: int
    level: str  # a key of LEVELS
    frames: int | None = None  # videos
    reason: str | None = None  # why the file is skipped (None: usable)
    error: str | None = None  # the decoder's message, for the curious


def cache_dir() -> Path:
    return Path(os.environ.get("MVIT_LAB_CACHE", "~/.cache/mvit-lab")).expanduser()


def manifest_path(dataset: str | Path) -> Path:
    """Where the manifest of ``dataset`` (a list file or an image root) lives."""
    resolved = Path(dataset).expanduser().absolute()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return cache_dir() / "manifests" / f"{resolved.name or 'root'}-{key}.json"


class Manifest:
    """The entries of one dataset; use through ``open_manifest``."""

    def __init__(self, path: Path | None, dataset: str, entries: dict[str, ManifestEntry]):
        self.path, self.dataset, self.entries = path, dataset, entries
        self.reused = self.probed = 0
        self._dirty, self._saved_at = False, time.monotonic()

    def check(self, path: Path, level: str, probe: Callable[[Path], int | None],
              reason: str | Callable[[Exception], str]) -> tuple[str | None, int | None]:
        """(skip reason, frames) of ``path``: from the manifest when the file is unchanged
        and was checked at ``level`` or better, else from ``probe(path)`` (raising means
        ``reason``, or ``reason(error)``), then recorded."""
        return self.check_all([path], level, probe, reason, workers=1)[0]

    def check_all(self, paths: list[Path], level: str, probe: Callable[[Path], int | None],
                  reason: str | Callable[[Exception], str], workers: int | None = None
                  ) -> list[tuple[str | None, int | None]]:
        """``check`` for many files; those not in the manifest are probed on ``workers``
        threads (default: one per CPU; PyAV and Pillow decode without holding the GIL)."""
        found: dict[str, ManifestEntry] = {}
        todo: list[tuple[str, Path]] = []
        for path in paths:
            key = str(path.absolute())
            entry = self.entries.get(key)
            if entry is not None and key not in found and _current(entry, path, level):
                found[key] = entry
                self.reused += 1
            elif key not in found:
                found[key] = entry  # type: ignore[assignment]  # replaced below
                todo.append((key, path))
        workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
        with ThreadPoolExecutor(workers) as pool:  # results in order, stored here
            for (key, _), entry in zip(todo, pool.map(
                    lambda item: _probe(item[1], level, probe, reason), todo)):
                found[key] = self.entries[key] = entry
                self.probed += 1
                self._dirty = True
                if time.monotonic() - self._saved_at > SAVE_EVERY:
                    self.save()
        return [(found[k].reason, found[k].frames) for k in (str(p.absolute()) for p in paths)]

    def save(self) -> None:
        """Write atomically (the caller holds the lock)."""
        self._saved_at = time.monotonic()
        if self.path is None or not self._dirty:
            return
        record = dict(version=VERSION, dataset=self.dataset,
                      entries={k: _compact(e) for k, e in self.entries.items()})
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(record, separators=(",", ":")) + "\n")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as err:
            log.warning("manifest %s not saved (%s); the next trial probes again", self.path,
                        err)
            tmp.unlink(missing_ok=True)


@contextmanager
def open_manifest(dataset: str | Path, *, lock_timeout: float | None = None
                  ) -> Iterator[Manifest]:
    """The manifest of ``dataset``, locked for this process until the block ends (then
    saved). Without a writable cache dir, an empty manifest that is not saved."""
    path = manifest_path(dataset)
    name = str(Path(dataset).expanduser().absolute())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        lock.acquire(timeout=1)
    except Timeout:
        log.info("waiting for another process probing %s (manifest %s)", name, path)
        lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout)
    except OSError as err:
        log.warning("no manifest for %s: %s is not writable (%s); probing every file",
                    name, path.parent, err)
        yield Manifest(None, name, {})
        return
    try:
        manifest = Manifest(path, name, _load(path, name))
        try:
            yield manifest
        finally:  # also when interrupted: what was probed is kept
            manifest.save()
        if manifest.probed or manifest.reused:
            log.info("manifest %s: %d files reused, %d probed", path, manifest.reused,
                     manifest.probed)
    finally:
        lock.release()


def _load(path: Path, dataset: str) -> dict[str, ManifestEntry]:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
        if record.get("version") != VERSION or record.get("dataset") != dataset:
            raise ValueError(f"version {record.get('version')}, dataset {record.get('dataset')}")
        return {k: ManifestEntry(**v) for k, v in record["entries"].items()}
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        aside = path.with_name(f"{path.name}.unreadable")
        os.replace(path, aside)
        log.warning("manifest %s unreadable (%s); moved to %s and rebuilt", path, err, aside)
        return {}


def _current(entry: ManifestEntry, path: Path, level: str) -> bool:
    stat = path.stat()
    return (entry.size == stat.st_size and entry.mtime_ns == stat.st_mtime_ns
            and LEVELS.get(entry.level, -1) >= LEVELS[level])


def _probe(path: Path, level: str, probe: Callable[[Path], int | None],
           reason: str | Callable[[Exception], str]) -> ManifestEntry:
    stat = path.stat()
    try:
        return ManifestEntry(stat.st_size, stat.st_mtime_ns, level, frames=probe(path))
    except Exception as err:  # decoders raise many types; each means the same here
        why = reason if isinstance(reason, str) else reason(err)
        return ManifestEntry(stat.st_size, stat.st_mtime_ns, level, reason=why,
                             error=f"{type(err).__name__}: {err}"[:300])


def _compact(entry: ManifestEntry) -> dict:
    return {k: v for k, v in asdict(entry).items() if v is not None}
