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
   older one answers ``ExecutionDoesNotExist``). A kept finished execution keeps
   its description and its history, packed (:class:`FinishedEnvironment`), not
   its interpreter's whole environment.
4. S3 object bodies live in files under the state directory
   (:func:`keep_objects_in`), not in the process: a body is read from its file
   when it is served and the file is removed with its object. What S3 would keep,
   the runtime keeps, on disk. The objects' metadata stays in the process, a
   ``FakeKey`` each (some 3 KiB, two or three a generation): keys share moto's
   default private ACL and state-transition table instead of a copy each.
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
7. DynamoDB items are kept packed between requests (:func:`pack_items`). moto holds
   an item as a tree of Python objects, a ``DynamoType`` (an instance and its
   ``__dict__``) per attribute value, nested maps and lists included: a finished
   legacy job record of 15 KB of JSON took 36 KiB, a ledger entry 2 KiB, and the
   tables grew by some 24 KiB per generation, for ever (DynamoDB keeps them; so
   does the runtime). Between two requests an item now holds its attributes as
   one zlib-compressed pickle (about 5 KiB for that job record); the first
   access in a request unpacks them and the end of the outermost DynamoDB
   section (:func:`imagemint_dev.local.motoext.dynamodb_section`, which every
   request and the TTL sweep run in) packs them again. Every change to an item
   happens in such a section, under :data:`~imagemint_dev.local.motoext.DYNAMODB_LOCK`,
   so none is lost; an item read outside one is unpacked and stays so until the
   next section ends.
8. The embedded chain's trie caches (py-trie's and py-evm's ``lru_cache`` entries
   keep whole tries alive) are emptied every :data:`TRIM_EVERY_S` seconds
   (:func:`forget_trie_caches`, from the :class:`Trimmer`): they filled to 5-6 MB
   over the first hundred generations and helped none of the later blocks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import shutil
import threading
import weakref
import zlib
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
    _packed_items()
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
    for execution in finished[len(gone) :]:
        keep_history_only(execution)
    return len(gone)


#: Seconds after its stop date before a finished execution keeps only its history: the interpreter's
#: thread sets the stop date and status, then reads the output from the environment, then ends.
SETTLE_S = 5.0


class FinishedEnvironment:
    """What a finished execution keeps of its interpreter's environment: its history, packed.

    moto keeps an execution's whole ``Environment`` after it ends (program state, frames, variable
    store, the history as Python objects): some 75 KiB for one of ours, which the
    :data:`KEEP_FINISHED_EXECUTIONS` kept finished executions held for nothing. Only
    ``GetExecutionHistory`` reads it after the end, and the callback and map-run pools (looked up by
    task token or map run ARN, which a finished execution answers as absent); these are kept.
    """

    __slots__ = ("_history", "callback_pool_manager", "map_run_record_pool_manager")

    def __init__(self, env: Any) -> None:
        history = env.event_manager.get_event_history()
        self._history = zlib.compress(pickle.dumps(history, protocol=pickle.HIGHEST_PROTOCOL), 1)
        self.callback_pool_manager = env.callback_pool_manager
        self.map_run_record_pool_manager = env.map_run_record_pool_manager

    @property
    def event_manager(self) -> FinishedEnvironment:
        return self

    def get_event_history(self) -> list[Any]:
        return pickle.loads(zlib.decompress(self._history))  # type: ignore[no-any-return]  # noqa: S301 - ours

    def is_running(self) -> bool:
        return False

    def set_stop(self, *args: Any, **kwargs: Any) -> None:
        """StopExecution of a finished execution: nothing left to stop."""


def keep_history_only(execution: Any, settle_s: float | None = None) -> bool:
    """Replace a finished execution's environment by a :class:`FinishedEnvironment`; True if done now."""
    import datetime

    worker = getattr(execution, "exec_worker", None)
    env = getattr(worker, "env", None)
    stopped = getattr(execution, "stop_date", None)
    if env is None or isinstance(env, FinishedEnvironment) or stopped is None:
        return False
    if str(getattr(execution.exec_status, "value", execution.exec_status)) == "RUNNING":
        return False
    settle = SETTLE_S if settle_s is None else settle_s
    now = datetime.datetime.now(tz=datetime.UTC if stopped.tzinfo is not None else None)
    if now - stopped < datetime.timedelta(seconds=settle):
        return False
    worker.env = FinishedEnvironment(env)
    return True


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
    Slotted, its path a ``str``: one is kept per object for as long as the object exists.
    """

    __slots__ = ("_path", "_pos", "_lock")

    def __init__(self, path: Path | str) -> None:
        self._path = os.fspath(path)
        self._pos = 0
        self._lock = threading.Lock()
        with open(self._path, "ab"):
            pass

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._lock:
            if whence == os.SEEK_SET:
                self._pos = offset
            elif whence == os.SEEK_CUR:
                self._pos += offset
            else:
                self._pos = os.stat(self._path).st_size + offset
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
            os.unlink(self._path)

    @property
    def closed(self) -> bool:
        return not os.path.exists(self._path)


def _bodies_on_disk() -> None:
    from moto.s3.models import FakeKey, get_canned_acl

    original_init = FakeKey.__init__
    # moto gives each key its own copy of these, never changed in place (PutObjectAcl assigns a new
    # ACL): one shared by every key saves about 1 KB an object.
    private = get_canned_acl("private")
    shared: dict[str, Any] = {}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.acl = private  # FakeKey.__init__ always sets a new get_canned_acl("private")
        transitions = shared.setdefault(self.model_name, self._transitions)
        if transitions == self._transitions:
            self._transitions = transitions
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

    Before each trim, :func:`forget_trie_caches`.

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
            forget_trie_caches()
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

    from imagemint_dev.local.motoext import dynamodb_section

    now = time.time() if now is None else now
    gone = 0
    with dynamodb_section():  # DYNAMODB_LOCK; the items the sweep unpacked are packed again at the end
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


# ---- 7. DynamoDB items, packed between requests ----
#: zlib level of packed items: 1 compresses a job record about as well as 6 in a third of the time.
PACK_LEVEL = 1

_unpacked_lock = threading.Lock()
#: Items whose attributes were unpacked since the last :func:`pack_items`, weakly (a temporary copy moto
#: made and dropped is not packed for nothing). No weakref callbacks: the list is emptied at every pack.
_unpacked: list[weakref.ref[Any]] = []


def _pack(attrs: dict[str, Any]) -> bytes:
    return zlib.compress(pickle.dumps(dict(attrs), protocol=pickle.HIGHEST_PROTOCOL), PACK_LEVEL)


def _unpack(packed: bytes) -> dict[str, Any]:
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict

    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    # dict.update, not LimitedSizeDict's __setitem__ (which sizes the whole item at each key): the item
    # was sized when it was written, as moto's own Item.__deepcopy__ does.
    dict.update(attrs, pickle.loads(zlib.decompress(packed)))  # noqa: S301 - our own bytes, from _pack
    return attrs


def _mark_unpacked(item: Any) -> None:
    ref = weakref.ref(item)
    with _unpacked_lock:
        _unpacked.append(ref)


def pack_items() -> int:
    """Pack every unpacked item's attributes (run at the end of each outermost DynamoDB section); how many."""
    with _unpacked_lock:
        refs = _unpacked[:]
        _unpacked.clear()
    packed = 0
    for ref in refs:
        item = ref()
        if item is None:
            continue
        state = item.__dict__
        attrs = state.get("_attrs")
        if attrs is None:
            continue
        try:
            state["_packed"] = _pack(attrs)
        except Exception:  # noqa: BLE001 - never seen; the item stays unpacked, as moto keeps it
            log.debug("could not pack a DynamoDB item", exc_info=True)
            continue
        state["_attrs"] = None
        packed += 1
    return packed


def unpacked_items() -> int:
    """How many items hold their attributes unpacked now (tests)."""
    with _unpacked_lock:
        refs = _unpacked[:]
    return len(
        {id(item) for r in refs if (item := r()) is not None and item.__dict__.get("_attrs") is not None}
    )


def _packed_items() -> None:
    from moto.dynamodb.models.dynamo_type import Item

    def get(self: Any) -> Any:
        state = self.__dict__
        attrs = state.get("_attrs")
        if attrs is None:
            packed = state.get("_packed")
            if packed is None:
                if "attrs" not in state:  # an item made before install() keeps them in its __dict__
                    raise AttributeError("attrs")
                attrs = state["_attrs"] = state.pop("attrs")
                _mark_unpacked(self)
                return attrs
            attrs = state["_attrs"] = _unpack(packed)
            state["_packed"] = None
            _mark_unpacked(self)
        return attrs

    def set_(self: Any, value: Any) -> None:
        state = self.__dict__
        state["_attrs"] = value
        state["_packed"] = None
        _mark_unpacked(self)

    Item.attrs = property(get, set_)  # type: ignore[assignment,method-assign]


# ---- 8. the embedded chain's trie caches ----
def forget_trie_caches() -> int:
    """Empty py-trie's and py-evm's module-level trie caches, if loaded; how many entries went.

    ``HexaryTrie._cached_create_node_to_db_mapping`` (4,096 entries) is an ``lru_cache`` on a method:
    each entry keeps its trie alive, and with it the trie's batch database and pending changes. The
    embedded chain makes new tries for every block, which never hit an older one's entries, so the
    cache only filled: ~36 entries a generation, 5-6 MB when full (plus ~0.5 MB in
    ``eth.db.trie._make_trie_root_and_nodes``). Both only speed up work within one block; emptied
    every :data:`TRIM_EVERY_S` seconds they hold a few hundred entries.
    """
    import sys

    caches = []
    hexary = sys.modules.get("trie.hexary")
    if hexary is not None:
        caches.append(getattr(getattr(hexary, "HexaryTrie", None), "_cached_create_node_to_db_mapping", None))
    eth_trie = sys.modules.get("eth.db.trie")
    if eth_trie is not None:
        caches.append(getattr(eth_trie, "_make_trie_root_and_nodes", None))
    gone = 0
    for cache in caches:
        if cache is not None and hasattr(cache, "cache_clear"):
            gone += cache.cache_info().currsize
            cache.cache_clear()
    return gone
