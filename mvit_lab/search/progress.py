"""A sweep that talks: one line per ended trial, a periodic status line, and quiet libraries.

:class:`SweepProgress` is a Ray Tune ``Callback`` (ray.tune.Callback, Ray 2.x hooks
``on_trial_complete`` / ``on_trial_error`` / ``on_step_end``) that runs in the driver::

    [3/14] pool_mode=max,embed_dim=16 val_top1 97.8 gflops 0.0011 throughput 2100 (12 s)
    [4/14] embed_dim=256 pruned: params 3.1e+05 > max 2e+05 (1 s)
    status: 2 running, 3 finished, 1 failed, 0 pruned, 8 pending; 5 min elapsed, ~12 min left

:func:`quiet_libraries` sends what MLflow, Ray, Optuna and Alembic log (migrations, Ray's token
warning, Tune's configuration box and TensorBoard hint, Optuna's study banner) to a log file in
the sweep folder instead of the terminal, and turns off MLflow's artifact progress bars.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.tune import Callback

__all__ = ["NOISY_LOGGERS", "LibraryLog", "SweepProgress", "format_duration", "quiet_libraries"]

NOISY_LOGGERS = ("mlflow", "alembic", "ray", "optuna", "filelock", "urllib3")
_DONE = ("TERMINATED", "ERROR")


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _number(value: float) -> str:
    """``97.8``, ``0.0011``, ``2100``, ``3.1e+07``: a short reading, not every digit."""
    size = abs(value)
    if size >= 1e6:
        return f"{value:.2g}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def _error_line(trial: Any) -> str:
    """The last line of the trial's error: ``FloatingPointError: loss is nan ...``."""
    text = ""
    try:
        err = trial.get_error()
        text = str(err) if err is not None else ""
    except Exception:  # an error that cannot be unpickled here
        text = getattr(trial, "error_msg", "") or ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "error"


class SweepProgress(Callback):
    """Prints (through ``write``) one line per finished, pruned or failed trial and, every
    ``every_s`` seconds, the sweep's status with an estimate of the time left."""

    def __init__(self, total: int, describe: Callable[[dict[str, Any]], str],
                 columns: tuple[str, ...], write: Callable[[str], None], *,
                 every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.describe, self.columns, self.write = total, describe, columns, write
        self.every_s, self.clock = every_s, clock
        self.started = clock()
        self.last_status = self.started
        self.counts = dict(finished=0, failed=0, pruned=0, interrupted=0)
        self.ended: set[str] = set()
        self.before = 0  # trials that had ended before this driver (a resumed sweep)
        self.seen_first_step = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its RunConfig into the experiment folder: the terminal and the
        # closures stay behind (a restored sweep gets a live callback again)
        state = dict(self.__dict__)
        for key in ("write", "describe", "clock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.write, self.describe, self.clock = (lambda line: None), str, time.monotonic

    # -- Ray Tune hooks --
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.seen_first_step:
            return
        self.seen_first_step = True
        done = [t for t in trials if t.status in _DONE]
        self.ended.update(t.trial_id for t in done)
        self.before = len(done)
        for t in done:  # the status line counts them too
            status = "failed" if t.status == "ERROR" else (t.last_result or {}).get(
                "status", "finished")
            status = "interrupted" if status == "running" else status
            self.counts[status] = self.counts.get(status, 0) + 1
        if done:
            self.write(f"resumed: {len(done)} of {self.total} trials had ended; running the rest")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        status = result.get("status") or "finished"
        if status == "running":  # stopped by Ray (a time budget, a scheduler) mid-training
            status = "stopped" if self._stopped_at_rung(result) else "interrupted"
        self._ended(trial, status, self._line(trial, result, status))

    stop_notes: str | None = None  # the trials folder, where MOASHA notes whom it stopped

    def _stopped_at_rung(self, result: dict[str, Any]) -> bool:
        from mvit_lab.search.moasha import STOPPED

        key = result.get("trial_key")
        return bool(self.stop_notes and key and (Path(self.stop_notes) / key / STOPPED).is_file())

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        self._ended(trial, "failed", f"failed: {_error_line(trial)}"
                    + self._seconds(result))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = self.clock()
        if now - self.last_status >= self.every_s:
            self.last_status = now
            self.write(self.status_line(trials))

    # -- lines --
    def status_line(self, trials: list) -> str:
        running = sum(t.status == "RUNNING" for t in trials)
        pending = max(0, self.total - len(self.ended) - running)
        elapsed = self.clock() - self.started
        done_here = len(self.ended) - self.before
        line = (f"status: {running} running, {self.counts['finished']} finished, "
                f"{self.counts['failed']} failed, {self.counts['pruned']} pruned, "
                + (f"{self.counts['stopped']} stopped early, " if self.counts.get("stopped")
                   else "")
                + f"{pending} pending; {format_duration(elapsed)} elapsed")
        if done_here and pending + running:
            left = elapsed / done_here * (pending + running)
            line += f", ~{format_duration(left)} left"
        return line

    def _ended(self, trial: Any, status: str, text: str) -> None:
        if trial.trial_id in self.ended:
            return
        self.ended.add(trial.trial_id)
        self.counts[status] = self.counts.get(status, 0) + 1
        try:
            name = self.describe(trial.config)
        except Exception:  # a config this sweep cannot name: show Ray's id
            name = trial.trial_id
        self.write(f"[{len(self.ended)}/{self.total}] {name} {text}")

    def _line(self, trial: Any, result: dict[str, Any], status: str) -> str:
        if status == "pruned":
            return f"pruned: {result.get('reason', '')}" + self._seconds(result)
        if status == "interrupted":
            return "stopped before it finished" + self._seconds(result)
        if status == "stopped":  # by MOASHA: truncated, never on a front
            return (f"stopped early at epoch {result.get('epoch')} (truncated): "
                    + " ".join(f"{k} {_number(float(result[k]))}" for k in self.columns
                               if isinstance(result.get(k), (int, float)))
                    + self._seconds(result))
        cells = [f"{k} {_number(float(result[k]))}" for k in self.columns
                 if isinstance(result.get(k), (int, float))]
        return " ".join(cells) + self._seconds(result)

    @staticmethod
    def _seconds(result: dict[str, Any]) -> str:
        seconds = result.get("time_total_s")
        return f" ({format_duration(seconds)})" if isinstance(seconds, (int, float)) else ""


class LibraryLog:
    """Where the libraries' output goes: a file, opened only once :meth:`open` names it.

    Until then (validation, starting Ray) it buffers, so a sweep refused before it created
    anything leaves no folder behind. ``write`` makes it usable as ``sys.stdout``.
    """

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._file: Any = None
        self.path: Path | None = None
        self.terminal_fd: int | None = None
        self.closed_to: Any = None  # once closed, where late writes go (the terminal)

    def open(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._file.write("".join(self._buffer))
        self._file.flush()
        self._buffer.clear()

    def write(self, text: str) -> int:
        if self.closed_to is not None:  # a handler Ray made while we were sys.stderr
            return self.closed_to.write(text)
        if self._file is None:
            self._buffer.append(text)
        else:
            self._file.write(text)
            self._file.flush()
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def isatty(self) -> bool:  # no colours, no progress bars
        return False

    def fileno(self) -> int:
        """The terminal's descriptor, for code that needs a real one (``faulthandler``, which
        Ray enables): a crash dump still reaches the user."""
        if self.terminal_fd is None:
            raise OSError("the library log has no file descriptor")
        return self.terminal_fd

    def close(self, then: Any = None) -> None:
        """Close the file; later writes go to ``then`` (default: the real stderr)."""
        self.closed_to = then or sys.__stderr__
        if self._file is not None:
            self._file.close()
            self._file = None


class _ToLibraryLog(logging.Handler):
    def __init__(self, sink: LibraryLog) -> None:
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.format(record) + "\n")
        except Exception:  # a log line is never worth failing the sweep
            self.handleError(record)


@contextmanager
def quiet_libraries(sink: LibraryLog, verbose: bool = False) -> Iterator[LibraryLog]:
    """Route the third-party loggers (:data:`NOISY_LOGGERS`) and anything printed to stdout /
    stderr (Ray Tune's configuration box and TensorBoard hint) to ``sink``. With ``verbose``
    the terminal keeps all of it and the loggers also go to ``sink``. Restores everything on
    exit."""
    handler = _ToLibraryLog(sink)
    saved = []
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate, logger.level))
        if not verbose:
            for h in list(logger.handlers):
                logger.removeHandler(h)
            logger.propagate = False
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    old_env = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    streams = sys.stdout, sys.stderr
    if not verbose:
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # the report's downloads
        try:
            sink.terminal_fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # pytest's capture, a notebook
            sink.terminal_fd = None
        sys.stdout = sys.stderr = sink  # type: ignore[assignment]
    try:
        yield sink
    finally:
        sys.stdout, sys.stderr = streams
        for logger, handlers, propagate, level in saved:
            logger.removeHandler(handler)
            for h in handlers:
                if h not in logger.handlers:
                    logger.addHandler(h)
            logger.propagate, logger.level = propagate, level
        if not verbose:
            if old_env is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = old_env
