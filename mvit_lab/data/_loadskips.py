"""Files that fail when training reads them: replaced by another sample, and counted.

Without probing (``probe: false``), or when a file changes after it was probed, a bad file is
only found when a DataLoader reads it. A sample that fails to load is replaced by the next
loadable one (``i + 1``, ``i + 2``, ...: the same choice in every worker and run; SlowFast
retries with a random index instead, which would draw from the training RNG) and the failure
is recorded. Failing files are remembered per process, so a persistent worker does not
decode them again.

Recording works from DataLoader worker processes too: each failure is one JSON line appended
to a journal file (a temporary file named when the dataset is built, travelling with the
dataset to the workers; appends of a line are atomic). The dataset's ``DataReport`` reads
the journal whenever it is written out (``to_dict``, ``summary``), in whichever process asks:
the count reaches the trial's ``data_report.json`` in MLflow, which the trial writes after
training. Many consecutive failures mean something other than a bad file (a vanished mount,
a bug in a transform): that stops with the last error instead of skipping everything.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["MAX_CONSECUTIVE", "LoadSkips"]

log = logging.getLogger(__name__)

MAX_CONSECUTIVE = 20  # failures in a row that stop the run instead of skipping on
T = TypeVar("T")


class LoadSkips:
    """The journal of one dataset's load failures, and the retry around its loads."""

    def __init__(self, dataset: str, split: str) -> None:
        self.dataset, self.split = dataset, split
        name = f"mvit-lab-skips-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        self.path = Path(tempfile.gettempdir()) / name
        self._bad: set[int] = set()
        weakref.finalize(self, _remove, self.path, os.getpid())

    def load(self, i: int, n: int, load: Callable[[int], T],
             describe: Callable[[int, BaseException], tuple[str, str, str]]) -> T:
        """``load(i)``, or on failure ``load`` of the next sample that loads;
        ``describe(j, error)`` gives the failing sample's (path, label, reason)."""
        failures = 0
        last: BaseException | None = None
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                return load(j)
            except Exception as err:  # decoders raise many types; each means a bad file
                self._bad.add(j)
                path, label, reason = describe(j, err)
                self.record(path, label, reason, err)
                failures, last = failures + 1, err
                if failures >= MAX_CONSECUTIVE:
                    break
        if failures < MAX_CONSECUTIVE:
            raise ValueError(f"data: {self.dataset} {self.split}: no sample left that loads "
                             f"(last error: {last})") from last
        raise ValueError(f"data: {self.dataset} {self.split}: {failures} samples in a row "
                         f"failed to load from sample {i} (last: {last}); more than bad "
                         f"files is wrong") from last

    def record(self, path: str, label: str, reason: str, err: BaseException) -> None:
        log.warning("%s %s: skipping %s (%s while loading: %s)", self.dataset, self.split,
                    path, reason, err)
        line = json.dumps(dict(path=path, label=label, reason=reason,
                               error=f"{type(err).__name__}: {err}"[:300]))
        with open(self.path, "a") as f:  # one write of one line: atomic among appenders
            f.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every failure recorded so far, by any process, once per file."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        seen: dict[str, dict[str, Any]] = {}
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a killed worker
                continue
            seen.setdefault(entry["path"], entry)
        return list(seen.values())


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # not when a forked worker's copy goes
        path.unlink(missing_ok=True)
