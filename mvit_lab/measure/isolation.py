"""Cost measurements in isolation: a node-local reader/writer lock per device.

Every training or evaluation step of every trial on a node holds its device's lock *shared*,
one step at a time; a cost measurement holds it *exclusively*. So the co-tenants of a device
(trials sharing a node's cores, or fractions of one GPU) pause between two of their steps for
the seconds a measurement takes, and no measurement times another trial's work::

    lock = device_lock(torch.device("cpu"))
    with lock.exclusive() as waited:       # a measurement: waits for in-flight steps
        ...
    with training(lock):                    # a trial: each batch of guard(loader) is a step
        for x, y in guard(loader):
            ...

The lock is ``flock(2)`` on two files in a node-local directory (``MVIT_LAB_LOCK_DIR``, or
the temporary directory): the kernel drops a dead process's locks, so a crashed or killed
holder never deadlocks the node. Readers take ``rw`` shared; a writer takes ``rw``
exclusively. A second file, ``gate``, gives writers priority: a writer holds it while it waits,
and readers pass through it, so the overlapping steps of two trials cannot keep ``rw`` held
shared forever. Locks are per device: ``cpu`` for a node's cores, ``cuda-<uuid>`` for each GPU
(Ray's ``CUDA_VISIBLE_DEVICES`` renumbers GPUs per process; the UUID does not change).

What the lock cannot pause: processes that are not mvit-lab trials, and DataLoader workers
filling their prefetch queue (bounded by ``prefetch_factor``) while their trial waits. Ray
starts its workers at nice 15, so on a node where anything else runs, a measurement in a trial
gets a fraction of the CPU that the same measurement gets in a plain process (7x less here at
load 20): :func:`foreground` lifts the measuring threads to nice 0 where the process may (root,
or ``CAP_SYS_NICE``), and the cost record says which nice value it ran at. The
measurement protocol (``measure.speed``) times blocks until their medians agree, so such
residual noise shows as a wider spread or more blocks rather than a wrong median.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

__all__ = ["DeviceLock", "device_key", "device_lock", "foreground", "guard", "lock_dir",
           "training"]

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "MVIT_LAB_LOCK_DIR"


def lock_dir() -> Path:
    """The node-local directory of the device locks (``MVIT_LAB_LOCK_DIR`` overrides).

    Keep it on a local file system: ``flock`` over some network file systems is not shared
    between hosts, and the lock is meant for one node anyway.
    """
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"mvit-lab-locks-{os.getuid()}"


def device_key(device: torch.device) -> str:
    """A node-wide name for a device: ``cpu``, or ``cuda-<uuid>`` (stable across processes
    whatever ``CUDA_VISIBLE_DEVICES`` says)."""
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            return f"cuda-{uuid}"
        return f"cuda-pci-{props.pci_bus_id}" if hasattr(props, "pci_bus_id") else \
            f"cuda-{index}"
    raise ValueError(f"device: no lock for device type {device.type!r}")


class DeviceLock:
    """The reader/writer lock of one device on this node (see the module docstring)."""

    def __init__(self, key: str, directory: str | Path | None = None) -> None:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"device lock: bad key {key!r}")
        self.key = key
        self.directory = Path(directory) if directory is not None else lock_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._gate = os.open(self.directory / f"{key}.gate", os.O_RDWR | os.O_CREAT, 0o600)
        self._rw = os.open(self.directory / f"{key}.rw", os.O_RDWR | os.O_CREAT, 0o600)
        self._shared_depth = 0
        self._hold = 0  # counts acquisitions: a stale release must not drop a newer one
        self._exclusive = False

    def close(self) -> None:
        for fd in (self._gate, self._rw):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:  # the fds; the kernel drops their locks with them
        self.close()

    def __repr__(self) -> str:
        return f"DeviceLock({self.key!r}, {str(self.directory)!r})"

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """One step of training or evaluation: waits while a measurement holds the device."""
        if self._shared_depth or self._exclusive:  # nested in this process: already held
            self._shared_depth += 1
            try:
                yield
            finally:
                self._shared_depth = max(self._shared_depth - 1, 0)
            return
        fcntl.flock(self._gate, fcntl.LOCK_SH)  # blocks while a writer waits or measures
        try:
            fcntl.flock(self._rw, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self._shared_depth, self._hold = 1, self._hold + 1
        hold = self._hold
        try:
            yield
        finally:
            if self._hold == hold and self._shared_depth:  # not force-released meanwhile
                self.release()

    def release(self) -> None:
        """Drop a shared hold whatever its depth: a step abandoned by an exception (its
        suspended generator may live on in a traceback) must not keep measurements waiting."""
        if self._shared_depth:
            self._shared_depth = 0
            self._hold += 1
            fcntl.flock(self._rw, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = 600.0) -> Iterator[float | None]:
        """A measurement: waits for the in-flight steps of every co-tenant, then holds the
        device alone. Yields the seconds waited, or ``None`` when ``timeout`` ran out first
        (a co-tenant stuck inside one step): the measurement then runs unisolated, and the
        caller records that."""
        if self._shared_depth:
            raise RuntimeError(f"device lock {self.key}: a measurement inside a training step "
                               "of the same process would wait for itself")
        if self._exclusive:
            raise RuntimeError(f"device lock {self.key}: already held exclusively")
        start = time.monotonic()
        got_gate = _poll(self._gate, start, timeout)
        got_rw = got_gate and _poll(self._rw, start, timeout)
        waited = time.monotonic() - start
        if not got_rw:
            log.warning("device lock %s: co-tenants still inside a step after %.0f s; "
                        "measuring without isolation", self.key, waited)
        self._exclusive = got_rw
        try:
            yield waited if got_rw else None
        finally:
            self._exclusive = False
            if got_rw:
                fcntl.flock(self._rw, fcntl.LOCK_UN)
            if got_gate:
                fcntl.flock(self._gate, fcntl.LOCK_UN)


def _poll(fd: int, start: float, timeout: float | None) -> bool:
    """Take ``fd`` exclusively, polling (a blocking flock cannot time out)."""
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if timeout is not None and time.monotonic() - start > timeout:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


_LOCKS: dict[tuple[str, str], DeviceLock] = {}


def device_lock(device: torch.device | str, directory: str | Path | None = None) -> DeviceLock:
    """This process's lock object for ``device`` (one per device and directory)."""
    device = torch.device(device)
    key = device_key(device)
    folder = str(Path(directory) if directory is not None else lock_dir())
    lock = _LOCKS.get((key, folder))
    if lock is None:
        lock = _LOCKS[(key, folder)] = DeviceLock(key, folder)
    return lock


_ACTIVE: list[DeviceLock] = []


@contextlib.contextmanager
def training(lock: DeviceLock | None) -> Iterator[None]:
    """Within this block, :func:`guard` makes each batch a step under ``lock`` (shared).
    ``None`` leaves steps unguarded (a plain ``train`` outside a sweep)."""
    if lock is None:
        yield
        return
    _ACTIVE.append(lock)
    try:
        yield
    finally:
        _ACTIVE.remove(lock)
        lock.release()


def guard(batches: Iterable) -> Iterator:
    """``batches``, each one held as a step: the shared lock is taken after the batch is
    loaded and held until the next one is asked for, i.e. while the caller computes on it.
    Without an active :func:`training` block, ``batches`` pass through untouched."""
    if not _ACTIVE:
        yield from batches
        return
    lock = _ACTIVE[-1]
    for batch in batches:
        with lock.shared():
            yield batch


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process as a whole
        return [0]


@contextlib.contextmanager
def foreground() -> Iterator[int]:
    """Run the block at nice 0 if this process's threads are niced (Ray's workers: 15) and
    lowering it is allowed; yields the nice value the block runs at. Linux keeps a nice value
    per thread, so every thread of the process (torch's pool too) is lifted, then put back."""
    which = os.PRIO_PROCESS
    before = {}
    for tid in _threads():
        with contextlib.suppress(OSError):
            before[tid] = os.getpriority(which, tid)
    now = os.getpriority(which, 0)
    lifted = {}
    if now > 0:
        for tid, nice in before.items():
            try:
                os.setpriority(which, tid, 0)
                lifted[tid] = nice
            except PermissionError:
                break  # not allowed here: measure at the nice value we have
            except OSError:  # the thread ended meanwhile
                continue
    try:
        yield os.getpriority(which, 0)
    finally:
        for tid, nice in lifted.items():
            with contextlib.suppress(OSError):
                os.setpriority(which, tid, nice)
