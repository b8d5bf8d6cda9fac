"""What keeps the local runtime steady when left running (moto is pinned; tests fail loudly if these move).

Measured with ``tests/bench/soak.py``: moto 5.2.5 kept 1.2–2.2 MB per generation for
ever. Installed by :func:`imagemint_dev.local.motoext.install`:

1. moto records every model object it ever creates (``BaseModel.__new__`` appends
   each one to its class's ``instances_tracked`` list, for the ``/moto-api``
   dashboard). That includes every deep copy: the copy of an item each
   ``UpdateItem`` takes, every ``Query`` result, every table snapshot a
   transaction takes. The lists now hold their objects weakly: the dashboard
   still lists every live object, nothing is kept alive by it.
2. moto's Step Functions interpreter appends every worker thread it starts to a
   module list (``TMP_THREADS``) and never removes one; the list now drops
   finished threads as it grows.
3. Step Functions executions started with ``StartExecution`` stay in their
   state machine with their whole interpreter state. AWS keeps a STANDARD
   execution's history for 90 days and lists no EXPRESS execution at all; here a
   state machine keeps its running executions and its latest
   :data:`KEEP_FINISHED_EXECUTIONS` finished ones (``DescribeExecution`` of an
   older one answers ``ExecutionDoesNotExist``).
4. S3 object bodies live in files under the state directory
   (:func:`keep_objects_in`), not in the process: a body is read from its file
   when it is served and the file is removed with its object. What S3 would keep,
   the runtime keeps, on disk.
5. The C allocator (glibc): two malloc arenas instead of sixteen
   (:func:`tune_allocator`), and freed heap pages returned to the system every
   :data:`TRIM_EVERY_S` seconds (:class:`Trimmer`); the local stack does both.
6. DynamoDB TTL: moto stores a table's ``TimeToLiveSpecification`` but never deletes
   an expired item, so every rate-limit window counter (``rl#...``), lease map
   (``cc#...``) and idempotency record stayed for ever. DynamoDB deletes an item
   some time after its TTL attribute (epoch seconds) has passed, and ignores
   values more than five years in the past; :func:`expire_items` does the same, and
   :class:`Expirer` runs it every :data:`EXPIRE_EVERY_S` seconds (the local stack
   enables TTL on the tables the template enables it on). As in DynamoDB, an
   expired item may still be read until it is deleted: nothing may rely on either.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("imagemint_dev.local")

#: Finished executions a state machine keeps (the running ones are always kept).
KEEP_FINISHED_EXECUTIONS = 50

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _weak_model_tracking()
    _prune_interpreter_threads()
    _bodies_on_disk()
    _installed = True


# ---- 1. moto's model tracker ----
class LiveInstances:
    """A model class's ``instances_tracked``: its live instances, held weakly (appended, iterated)."""

    __slots__ = ("_refs", "_pruned_at")

    def __init__(self, objects: Iterable[Any] = ()) -> None:
        self._refs: list[weakref.ref[Any]] = []
        self._pruned_at = 0
        for obj in objects:
            self.append(obj)

    def append(self, obj: Any) -> None:
        try:
            ref = weakref.ref(obj)
        except TypeError:  # a class without weak references: not tracked (only the dashboard reads these)
            return
        refs = self._refs
        refs.append(ref)
        if len(refs) > 2 * self._pruned_at + 64:  # amortised: drop the dead ones as the list doubles
            self._refs = [r for r in refs if r() is not None]  # an append racing this one is only unlisted
            self._pruned_at = len(self._refs)

    def __iter__(self) -> Iterator[Any]:
        return iter([obj for obj in (r() for r in list(self._refs)) if obj is not None])

    def __len__(self) -> int:
        return sum(1 for r in list(self._refs) if r() is not None)


def _weak_model_tracking() -> None:
    from moto.core.base_backend import InstanceTrackerMeta
    from moto.core.common_models import BaseModel

    slot = "_imagemint_live_instances"

    def get(cls: type) -> LiveInstances:
        box = cls.__dict__.get(slot)
        if box is None:
            box = LiveInstances()
            type.__setattr__(cls, slot, box)
        return box  # type: ignore[no-any-return]

    def set_(cls: type, value: Iterable[Any]) -> None:  # moto's reset assigns a new list
        type.__setattr__(cls, slot, LiveInstances(value))

    # A data descriptor on the metaclass wins over each class's own ``instances_tracked`` list.
    InstanceTrackerMeta.instances_tracked = property(get, set_)  # type: ignore[attr-defined]
    stack: list[type] = [BaseModel]
    while stack:  # what was tracked before: moved over (if alive), the old lists emptied
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        old = cls.__dict__.get("instances_tracked")
        if isinstance(old, list):
            set_(cls, old)
            old.clear()


# ---- 2. the interpreter's thread list ----
class RunningThreads(list):  # type: ignore[type-arg]
    """moto's ``TMP_THREADS``: finished threads are dropped as the list grows."""

    def append(self, thread: Any) -> None:
        if len(self) >= 64:
            self[:] = [t for t in self if t.is_alive()]  # a racing append is only unlisted
        super().append(thread)


def _prune_interpreter_threads() -> None:
    import sys

    from moto.stepfunctions.parser import utils

    old = utils.TMP_THREADS
    if isinstance(old, RunningThreads):
        return
    new = RunningThreads(t for t in old if t.is_alive())
    # The interpreter's modules bound the list at import (``from ... import TMP_THREADS``).
    for module in list(sys.modules.values()):
        if getattr(module, "TMP_THREADS", None) is old:
            module.TMP_THREADS = new  # type: ignore[attr-defined]
    old.clear()  # a module imported later and bound to the old list still only holds live ones long


# ---- 3. finished executions ----
def prune_executions(state_machine: Any, keep: int | None = None) -> int:
    """Forget all but the latest ``keep`` finished executions of ``state_machine``; how many went."""
    keep = KEEP_FINISHED_EXECUTIONS if keep is None else keep
    executions = state_machine.executions
    finished = [
        e for e in list(executions) if str(getattr(e.exec_status, "value", e.exec_status)) != "RUNNING"
    ]
    gone = finished[: max(0, len(finished) - keep)]
    for execution in gone:
        with contextlib.suppress(ValueError):
            executions.remove(execution)  # one at a time: a StartExecution appending meanwhile is kept
    return len(gone)


# ---- 4. S3 bodies on disk ----
_objects_dir: Path | None = None
_names = itertools.count()


def keep_objects_in(directory: Path | None) -> None:
    """Keep the bodies of S3 objects created from now on in ``directory`` (None: in memory, moto's way).

    The folder is emptied first (bodies left by a runtime that did not stop).
    """
    global _objects_dir
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
    _objects_dir = directory


class FileBody:
    """An S3 object's body in a file, with the part of a file's interface moto's ``FakeKey`` uses.

    No descriptor stays open (thousands of objects would exhaust them): each call opens the file.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pos = 0
        self._lock = threading.Lock()
        path.touch()

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._lock:
            if whence == os.SEEK_SET:
                self._pos = offset
            elif whence == os.SEEK_CUR:
                self._pos += offset
            else:
                self._pos = self._path.stat().st_size + offset
            return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        with self._lock, open(self._path, "rb") as f:
            f.seek(self._pos)
            data = f.read(size)
            self._pos += len(data)
            return data

    def write(self, data: bytes) -> int:
        with self._lock, open(self._path, "r+b") as f:
            f.seek(self._pos)
            n = f.write(data)
            self._pos += n
            return n

    def truncate(self, size: int | None = None) -> int:
        with self._lock, open(self._path, "r+b") as f:
            return f.truncate(self._pos if size is None else size)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._path.unlink()

    @property
    def closed(self) -> bool:
        return not self._path.exists()


def _bodies_on_disk() -> None:
    from moto.s3.models import FakeKey

    original_init = FakeKey.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        directory = _objects_dir
        if directory is None or not directory.is_dir():
            return
        # moto wrote the body into an in-memory buffer; it moves to its own file.
        memory = self._value_buffer
        memory.seek(0)
        body = FileBody(directory / f"{os.getpid()}-{next(_names)}")
        while chunk := memory.read(1 << 20):
            body.write(chunk)
        body.seek(0)
        self._value_buffer = body
        memory.close()

    FakeKey.__init__ = __init__  # type: ignore[method-assign]


# ---- 5. the C allocator ----
#: glibc's ``M_ARENA_MAX`` (``mallopt``).
_M_ARENA_MAX = -8
#: Malloc arenas for the process (glibc's default is 8 per core) unless ``MALLOC_ARENA_MAX`` is set.
ARENAS = 2
#: Seconds between two returns of freed heap memory to the system (:class:`Trimmer`).
TRIM_EVERY_S = 10.0


def _libc() -> Any:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl has neither)
        return None


def tune_allocator() -> bool:
    """Fewer malloc arenas (glibc): True if set.

    The runtime is many short threads (one per request, per moto request, per Lambda invocation,
    per Step Functions worker); glibc gives threads up to 16 arenas on 2 cores, and memory freed in
    one stays there, fragmented: measured, most of the 1.2–2.2 MB a generation once added. Call it
    before the threads start; ``MALLOC_ARENA_MAX`` in the environment wins.
    """
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, ARENAS))


class Trimmer:
    """Every ``every_s`` seconds, ``malloc_trim(0)``: free pages of the heap go back to the system.

    A thread's heap keeps what it freed until trimmed; trimming a few hundred MB takes milliseconds.
    No-op where glibc is absent.
    """

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        self._libc = _libc()
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Trimmer:
        if self._libc is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="imagemint-malloc-trim", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._libc.malloc_trim(0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


# ---- 6. DynamoDB TTL ----
#: Seconds between two sweeps of expired DynamoDB items (:class:`Expirer`).
EXPIRE_EVERY_S = 30.0
#: DynamoDB leaves alone TTL values further than this in the past (five years).
_TTL_MAX_AGE_S = 5 * 365 * 24 * 3600


def expire_items(backend: Any, now: float | None = None) -> int:
    """Delete the items of ``backend``'s TTL-enabled tables whose TTL has passed; how many went.

    ``backend`` is moto's ``DynamoDBBackend``; runs under the runtime's DynamoDB lock, so no request
    sees a table mid-sweep.
    """
    import time

    from imagemint_dev.local.motoext import DYNAMODB_LOCK

    now = time.time() if now is None else now
    gone = 0
    with DYNAMODB_LOCK:
        for table in list(backend.tables.values()):
            ttl = getattr(table, "ttl", None) or {}
            attribute = ttl.get("AttributeName")
            if ttl.get("TimeToLiveStatus") != "ENABLED" or not attribute:
                continue
            for item in table.all_items():
                value = item.attrs.get(attribute)
                if value is None or value.type != "N":  # DynamoDB: only a Number attribute expires
                    continue
                try:
                    at = float(value.value)
                except ValueError:
                    continue
                if now - _TTL_MAX_AGE_S <= at <= now:
                    table.delete_item(item.hash_key, item.range_key)
                    gone += 1
    return gone


class Expirer:
    """Every ``every_s`` seconds, :func:`expire_items` on each backend ``backends()`` returns."""

    def __init__(self, backends: Any, every_s: float = EXPIRE_EVERY_S) -> None:
        self._backends = backends
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Expirer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="imagemint-ddb-ttl", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                for backend in self._backends():
                    expire_items(backend)
            except Exception:  # noqa: BLE001 - housekeeping: logged, the next sweep tries again
                log.debug("DynamoDB TTL sweep failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
