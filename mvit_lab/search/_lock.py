"""One driver per sweep: an exclusive ``fcntl.flock`` on ``<sweep dir>/driver.lock``.

The kernel drops a flock when its holder dies (SIGKILL, OOM, a reboot), so a crashed driver
never blocks ``--resume``. The holder writes its pid, host and start time into the file: a
refusal names the live driver, and a driver that takes over a lock whose last holder did not
release it (it crashed) says so. A second driver, or ``--resume`` while the first still runs,
is refused at once rather than training the same trials twice into the same checkpoints.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["LOCK_FILE", "SweepLock"]

log = logging.getLogger(__name__)

LOCK_FILE = "driver.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class SweepLock:
    """Held by the live driver of the sweep in ``sweep_dir``; ``acquire`` refuses with a
    ValueError naming the holder while another driver runs."""

    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None  # the crashed holder taken over, if any

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, Any] | None:
        """What the last holder wrote (None: never held, or released cleanly)."""
        try:
            text = self.path.read_text()
        except (FileNotFoundError, PermissionError):
            return None
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return None

    def acquire(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"{self.path.parent}: {self._describe(self.holder())} is running "
                             "this sweep; wait for it to end (or stop it with Ctrl-C) before "
                             "starting or resuming it again") from None
        previous = self.holder()
        if previous is not None and previous.get("pid") != os.getpid():
            same_host = previous.get("host") == socket.gethostname()
            if same_host and isinstance(previous.get("pid"), int) and _alive(previous["pid"]):
                # flock granted while the recorded driver lives: a file system without flock
                os.close(fd)
                raise ValueError(f"{self.path}: {self._describe(previous)} may still run this "
                                 "sweep (its lock is not enforced on this file system); "
                                 "stop it, or delete the lock file if it is not a driver")
            self.stale = previous
            log.warning("%s: taking over the lock of %s, which ended without releasing it",
                        self.path.parent, self._describe(previous))
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                                     started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty file: released cleanly, not crashed
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def _describe(holder: dict[str, Any] | None) -> str:
        if not holder:
            return "another driver"
        return (f"the driver with pid {holder.get('pid')} on {holder.get('host')} (started "
                f"{holder.get('started')})")
