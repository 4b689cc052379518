"""The sandbox: the only module that imports wasmtime.

Lifecycle, named as in the code: :meth:`Engine.load` compiles a module once per
sha256 digest (or deserialises it from the disk cache), checks its imports and
exports, and pre-links it (:class:`CompiledModule`, holding an ``InstancePre``);
each hook call (:meth:`CompiledModule.invoke`) then gets a fresh Store and
Instance with its own fuel, memory cap and epoch deadline, and is gone after.

The per-call path talks to wasmtime's C API through the ctypes layer that
wasmtime-py generates (``wasmtime._bindings``): the stock ``Func.__call__``,
``instance.exports()`` and ``Memory.read/write`` cost 5-10x the work itself (see
docs/runtime.md). That layer is private, which is why wasmtime is pinned exactly;
every export's signature is checked once at load, because an unchecked call
with the wrong signature is undefined behaviour.

wasmtime's exceptions (``Trap``, ``WasmtimeError``) become podplug errors here
and nowhere else.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import wasmtime
from cachetools import LRUCache
from wasmtime import _bindings as C

from . import abi
from .cache import ModuleCache, default_dir
from .errors import (
    AbiMismatch,
    DeadlineExceeded,
    ForbiddenImport,
    InvalidInput,
    InvalidOutput,
    LoadError,
    MemoryLimit,
    MissingExport,
    OutOfFuel,
    PluginError,
    Trap,
)
from .limits import Limits

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
_PAGE = 65536
_U32 = 0xFFFF_FFFF
_MAX_LOG_LINES = 64  # per call: a chatty or hostile plugin cannot flood the operator's log
_MAX_LOG_LINE = 4096
# The generated bindings load wasmtime with ctypes.CDLL, which drops and retakes
# the GIL around every call. For the calls that only touch a Store's bookkeeping
# (a few hundred nanoseconds) that is all cost: with two threads each drop hands
# the GIL to the other and back (measured: 2 threads ran the demo chain at 0.94x
# one). They go through a PyDLL handle that keeps the GIL; the calls that run
# guest code or zero memory (instantiate, with a start function; the calls into
# the guest; deleting a Store) keep releasing it, so threads overlap there.
_KEEPS_GIL = ctypes.PyDLL(C.dll._name)


def _holding_gil(name: str, restype: Any = None) -> Any:
    fn = _KEEPS_GIL[name]
    fn.argtypes = getattr(C, "_" + name).argtypes
    fn.restype = restype if restype is not None else getattr(C, "_" + name).restype
    return fn


class _G:
    """wasmtime functions called without releasing the GIL (see above)."""

    store_new = _holding_gil("wasmtime_store_new")
    store_context = _holding_gil("wasmtime_store_context")
    set_fuel = _holding_gil("wasmtime_context_set_fuel")
    get_fuel = _holding_gil("wasmtime_context_get_fuel")
    set_epoch_deadline = _holding_gil("wasmtime_context_set_epoch_deadline")
    store_limiter = _holding_gil("wasmtime_store_limiter")
    instance_export_get = _holding_gil("wasmtime_instance_export_get")
    caller_context = _holding_gil("wasmtime_caller_context")
    caller_export_get = _holding_gil("wasmtime_caller_export_get")
    context_get_data = _holding_gil("wasmtime_context_get_data")
    memory_data_size = _holding_gil("wasmtime_memory_data_size")
    # A plain int address: the generated binding returns a POINTER(c_uint8)
    # that costs a cast per call on the hot path.
    memory_data = _holding_gil("wasmtime_memory_data", ctypes.c_void_p)


_memory_data = _G.memory_data
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a NULL function pointer


@dataclass
class CallState:
    """What one call's host functions see: the guest's log lines and last words.
    Reached from the Store's data pointer, never through a global."""

    logs: list[tuple[int, str]] = field(default_factory=list)
    last_words: str | None = None
    #: why a host function refused the guest (bad pointer), if it did
    host_fault: str | None = None
    dropped_logs: int = 0

    def log(self, level: int, text: str) -> None:
        if level >= abi.LOG_PANIC:
            self.last_words = text[:_MAX_LOG_LINE]
        if len(self.logs) < _MAX_LOG_LINES:
            self.logs.append((level, text[:_MAX_LOG_LINE]))
        else:
            self.dropped_logs += 1


@dataclass(frozen=True)
class RawCall:
    """One hook call's raw outcome."""

    output: bytes
    fuel_used: int
    duration_s: float
    logs: tuple[tuple[int, str], ...]


# --- host functions -------------------------------------------------------------
# They run inside wasm and must never raise (wasmtime-py would park the exception
# in a module global): every failure becomes a trap with a message.


class _StoreData:
    """What a Store's data pointer points at: the state of the call running in
    it. A session's Store serves its calls in turn, each with a fresh CallState."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = CallState()


def _state_of(ctx: Any) -> CallState:
    data: _StoreData = ctypes.cast(_G.context_get_data(ctx), ctypes.py_object).value
    return data.state


def _state_and_memory(caller: Any) -> tuple[CallState, int, int]:
    ctx = _G.caller_context(caller)
    state = _state_of(ctx)
    ext = C.wasmtime_extern_t()
    if not _G.caller_export_get(caller, b"memory", 6, ctypes.byref(ext)):
        raise ValueError("the module exports no memory")
    mem = ext.of.memory
    base = _memory_data(ctx, ctypes.byref(mem))
    return state, base or 0, _G.memory_data_size(ctx, ctypes.byref(mem))


def _read(base: int, size: int, ptr: int, length: int) -> bytes:
    ptr &= _U32
    length &= _U32
    if ptr + length > size:
        raise ValueError(f"pointer {ptr}+{length} is outside memory ({size} bytes)")
    return ctypes.string_at(base + ptr, length)


def _fault(caller: Any, message: str) -> int:
    """Record why a host function refused the guest, and trap."""
    with contextlib.suppress(BaseException):  # the trap below still carries the message
        _state_of(_G.caller_context(caller)).host_fault = message
    return _trap(message)


def _trap(message: str) -> int:
    raw = message.encode()
    return ctypes.cast(C._wasmtime_trap_new(raw, len(raw)), ctypes.c_void_p).value or 0


@C.wasmtime_func_unchecked_callback_t
def _host_log(env: Any, caller: Any, args: Any, nargs: int) -> int:
    try:
        state, base, size = _state_and_memory(caller)
        level = args[0].i32
        text = _read(base, size, args[1].i32, min(args[2].i32 & _U32, _MAX_LOG_LINE))
        state.log(level, text.decode("utf-8", "replace"))
        return 0
    except BaseException as e:
        return _fault(caller, f"podplug.log: {e}")


def _as_string(base: int, size: int, ptr: int) -> str:
    """AssemblyScript string: UTF-16LE, byte length in the u32 before it."""
    ptr &= _U32
    if ptr < 4 or ptr > size:
        return ""
    length = int.from_bytes(_read(base, size, ptr - 4, 4), "little")
    return _read(base, size, ptr, min(length, _MAX_LOG_LINE * 2)).decode("utf-16-le", "replace")


@C.wasmtime_func_unchecked_callback_t
def _host_abort(env: Any, caller: Any, args: Any, nargs: int) -> int:
    try:
        state, base, size = _state_and_memory(caller)
        msg = _as_string(base, size, args[0].i32)
        where = _as_string(base, size, args[1].i32)
        text = f"abort: {msg or 'no message'}"
        if where:
            text += f" at {where}:{args[2].i32}:{args[3].i32}"
        state.last_words = text
        return _trap(text)
    except BaseException as e:
        return _fault(caller, f"abort (unreadable message: {e})")


_HOST_FUNCS = {("podplug", "log"): _host_log, ("env", "abort"): _host_abort}


# --- engine ---------------------------------------------------------------------


class Engine:
    """One per process: the wasmtime Engine (fuel + epochs on), the epoch ticker,
    the linker with podplug's host functions, and the compiled-module caches."""

    def __init__(
        self,
        *,
        cache_dir: Path | str | None = None,
        disk_cache: bool = True,
        epoch_tick_s: float = 0.005,
        pooling: bool = True,
        max_memory_bytes: int = 256 << 20,
        max_modules: int = 256,
        max_disk_bytes: int = 512 << 20,
    ) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.pooling = pooling and _enable_pooling(config, max_memory_bytes)
        self.max_memory_bytes = max_memory_bytes
        self._wasm = wasmtime.Engine(config)
        # Anything that changes the machine code must change the cache key.
        self.fingerprint = hashlib.sha256(
            f"wasmtime={WASMTIME_VERSION};fuel=1;epoch=1;pooling={self.pooling}".encode()
        ).hexdigest()[:16]
        self._disk = (
            ModuleCache(cache_dir or default_dir(), self.fingerprint, max_disk_bytes)
            if disk_cache else None
        )
        self._linker = wasmtime.Linker(self._wasm)
        for (module, name), cb in _HOST_FUNCS.items():
            ty = wasmtime.FuncType(
                [wasmtime.ValType.i32()] * len(abi.ALLOWED_IMPORTS[(module, name)][0]), []
            )
            err = C._wasmtime_linker_define_func_unchecked(
                self._linker.ptr(), module.encode(), len(module), name.encode(), len(name),
                ty.ptr(), cb, None, _NO_FINALIZER,
            )
            if err:
                raise wasmtime.WasmtimeError._from_ptr(err)
        # Compiled modules by digest, least recently used evicted first: with
        # namespace modules allowed, tenants choose how many digests there are.
        self._modules: LRUCache[str, CompiledModule] = LRUCache(max_modules)
        self._lock = threading.Lock()
        self.epoch_tick_s = epoch_tick_s
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = 0  # hook calls in flight
        self.stats = {"compiled": 0, "disk_hits": 0, "memory_hits": 0}

    # -- lifecycle

    def close(self) -> None:
        """Refuse new calls, let the ones in flight finish (their deadlines still
        tick), then stop the epoch ticker. Idempotent."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enter_call(self) -> None:
        """Count a call in; start the ticker with the first. A call on a closed
        engine is refused: nothing would enforce its deadline."""
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("the podplug Engine is closed")
            self._active += 1
            if self._ticker is None:
                t = threading.Thread(target=self._tick, name="podplug-epoch", daemon=True)
                t.start()
                self._ticker = t

    def _exit_call(self) -> None:
        with self._lock:
            self._active -= 1

    def _tick(self) -> None:
        # Keep ticking after close() until the last call in flight has ended.
        while not (self._stop.wait(self.epoch_tick_s) and self._active == 0):
            self._wasm.increment_epoch()

    def session(self) -> Session:
        """One Store for a run of calls (a chain run); each call still gets a
        fresh Instance. Use it as a context manager, from one thread."""
        return Session(self)

    # -- loading

    def load(self, source: bytes | bytearray | str | Path, name: str) -> CompiledModule:
        """Compile (or fetch from cache) and check a module. ``name`` is used in
        errors raised while loading."""
        wasm = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
        digest = hashlib.sha256(wasm).hexdigest()
        with self._lock:
            cached = self._modules.get(digest)
        if cached is not None:
            self.stats["memory_hits"] += 1
            return cached
        module = self._compile(wasm, digest, name)
        compiled = CompiledModule(self, module, digest, wasm, name)
        with self._lock:
            return self._modules.setdefault(digest, compiled)

    @property
    def cached_modules(self) -> int:
        """Compiled modules kept in memory (at most ``max_modules``)."""
        return len(self._modules)

    def _compile(self, wasm: bytes, digest: str, name: str) -> wasmtime.Module:
        if self._disk is not None:
            artefact = self._disk.load(digest)
            if artefact is not None:
                try:
                    module = wasmtime.Module.deserialize(self._wasm, artefact)
                    self.stats["disk_hits"] += 1
                    return module
                except wasmtime.WasmtimeError:
                    self._disk.discard(digest)  # stale (other engine build): recompile
        try:
            module = wasmtime.Module(self._wasm, wasm)
        except wasmtime.WasmtimeError as e:
            reason = _first_line(str(e))
            if "minimum byte size" in reason:  # the pool refuses it before any call
                raise MemoryLimit(name, "", f"the module's initial memory exceeds the engine's "
                                  f"{self.max_memory_bytes >> 20} MiB cap") from e
            raise LoadError(name, "", reason) from e
        self.stats["compiled"] += 1
        if self._disk is not None:
            self._disk.store(digest, module.serialize())
        return module

    @property
    def cache_dir(self) -> Path | None:
        return self._disk.dir if self._disk is not None and self._disk.usable else None


#: instance slots in the pool: far more than the threads that call plugins at once
_POOL_INSTANCES = 64
#: linear memory kept mapped between uses of a slot (reset by memset instead of
#: decommitted). None: on Linux >= 6.7 wasmtime resets only the pages a call
#: dirtied either way, and decommitting them measured cheaper, in the reset and
#: in the next instantiation, than keeping 1 MiB resident (docs/runtime.md)
_POOL_KEEP_RESIDENT = 0


def _enable_pooling(config: wasmtime.Config, max_memory_bytes: int) -> bool:
    """Instances from a pre-reserved pool: cheaper to create and to first touch.
    wasmtime-py exposes this only through its private ctypes layer (pinned
    version); if that layer changes, fall back to the default allocator."""
    try:
        pool = C.wasmtime_pooling_allocation_config_new()
        try:
            C.wasmtime_pooling_allocation_config_total_core_instances_set(pool, _POOL_INSTANCES)
            C.wasmtime_pooling_allocation_config_total_memories_set(pool, _POOL_INSTANCES)
            C.wasmtime_pooling_allocation_config_total_tables_set(pool, _POOL_INSTANCES)
            C.wasmtime_pooling_allocation_config_max_memory_size_set(pool, max_memory_bytes)
            C.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
                pool, _POOL_KEEP_RESIDENT)
            C.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
        finally:
            C.wasmtime_pooling_allocation_config_delete(pool)
        return True
    except (AttributeError, TypeError, ctypes.ArgumentError):
        return False


def wat_to_wasm(text: str) -> bytes:
    """Assemble WebAssembly text (tests, benchmarks and hand-written fixtures)."""
    try:
        return wasmtime.wat2wasm(text)
    except wasmtime.WasmtimeError as e:
        raise ValueError(_first_line(str(e))) from e


def _first_line(text: str) -> str:
    # wasmtime puts the cause after a backtrace: "...\nCaused by:\n    <cause>"
    text = text.rpartition("Caused by:")[2] or text
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else "unknown error"


def _valtypes(types: Any) -> tuple[str, ...]:
    return tuple(str(t) for t in types)


@dataclass(frozen=True)
class ModuleInfo:
    """What a module declares, for ``podplug inspect`` and the operator."""

    digest: str
    size: int
    abi_version: int
    hooks: tuple[str, ...]
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    metadata: Mapping[str, Any] | None


class CompiledModule:
    """A checked, pre-linked module: compiled once per digest, instantiated per call."""

    def __init__(
        self, engine: Engine, module: wasmtime.Module, digest: str, wasm: bytes, name: str
    ) -> None:
        self.engine = engine
        self.digest = digest
        self.size = size = len(wasm)
        self._module = module
        imports = self._check_imports(name)
        self._hooks = self._check_exports(name)
        self._pre = engine._linker.instantiate_pre(module)
        self._pre_ptr = self._pre.ptr()
        self._names = {h: export.encode() for h, export in abi.HOOK_EXPORTS.items()}
        version = self._abi_version(name)
        if version not in abi.SUPPORTED_VERSIONS:
            raise AbiMismatch(name, "", f"module speaks {version}, host speaks "
                              f"{' and '.join(map(str, abi.SUPPORTED_VERSIONS))}")
        self.info = ModuleInfo(
            digest=digest,
            size=size,
            abi_version=version,
            hooks=tuple(h for h in abi.HOOK_EXPORTS if h in self._hooks),
            imports=imports,
            exports=tuple(e.name for e in module.exports),
            metadata=_metadata(wasm),
        )

    @property
    def hooks(self) -> frozenset[str]:
        return self._hooks

    def _check_imports(self, name: str) -> tuple[str, ...]:
        seen = []
        for imp in self._module.imports:
            key = (imp.module, imp.name or "")
            label = f"{imp.module}.{imp.name}"
            expected = abi.ALLOWED_IMPORTS.get(key)
            if expected is None:
                raise ForbiddenImport(name, "", f"{label} (plugins may import only "
                                      f"{', '.join(m + '.' + n for m, n in abi.ALLOWED_IMPORTS)})")
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType) or (
                _valtypes(ty.params), _valtypes(ty.results)
            ) != expected:
                raise ForbiddenImport(name, "", f"{label} with the wrong type {ty}")
            seen.append(label)
        return tuple(seen)

    def _check_exports(self, name: str) -> frozenset[str]:
        exports = {e.name: e.type for e in self._module.exports}
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            raise MissingExport(name, "", "memory")
        hooks = set()
        for export, sig in abi.REQUIRED_EXPORTS.items():
            ty = exports.get(export)
            if ty is None:
                raise MissingExport(name, "", export)
            self._check_sig(name, export, ty, sig)
        for hook, export in abi.HOOK_EXPORTS.items():
            ty = exports.get(export)
            if ty is not None:
                self._check_sig(name, export, ty, abi.HOOK_SIGNATURE)
                hooks.add(hook)
        return frozenset(hooks)

    @staticmethod
    def _check_sig(name: str, export: str, ty: Any, sig: tuple[tuple[str, ...], ...]) -> None:
        if not isinstance(ty, wasmtime.FuncType) or (
            _valtypes(ty.params), _valtypes(ty.results)
        ) != sig:
            raise AbiMismatch(name, "", f"export {export} has type {ty}, expected "
                              f"({', '.join(sig[0])}) -> ({', '.join(sig[1])})")

    def _abi_version(self, name: str) -> int:
        with Session(self.engine) as session:
            call = session.begin(self, name, "load", Limits(fuel=1_000_000, timeout_s=1.0), 0)
            return call.call_func(call.export_func(abi.ABI_VERSION_EXPORT), ()) or 0

    def call_raw(self, hook: str, request: bytes, limits: Limits | None = None,
                 plugin: str = "") -> bytes:
        """The raw response bytes of one hook call (SDK conformance tests)."""
        return self.invoke(hook, request, limits or Limits(), plugin or self.digest[:12]).output

    def invoke(self, hook: str, request: bytes, limits: Limits, plugin: str) -> RawCall:
        """Run one hook in a fresh instance in a Store of its own. Raises a
        :class:`PluginError`."""
        with Session(self.engine) as session:
            return session.invoke(self, hook, request, limits, plugin)


def _metadata(wasm: bytes) -> Mapping[str, Any] | None:
    try:
        section = abi.custom_section(wasm, abi.METADATA_SECTION)
        if section is None:
            return None
        value = msgpack.unpackb(section, raw=False)
    except Exception as e:
        return {"error": f"unreadable {abi.METADATA_SECTION} section: {e}"}
    return value if isinstance(value, dict) else {"error": "metadata is not a map"}


#: args-and-results buffer: every export podplug calls has at most 2 params, 1 result
_Vals2 = C.wasmtime_val_raw_t * 2
#: instances a session's Store holds before it makes a new one: each keeps its
#: pool slot (and linear memory) until the Store is deleted, and the pool has
#: _POOL_INSTANCES slots for every thread together
_INSTANCES_PER_STORE = 8


class Session:
    """A run of hook calls (one chain run) sharing one Store.

    Every call still gets a fresh Instance from the module's InstancePre: its own
    linear memory, globals and table, its own fuel, epoch deadline and memory cap
    (set on the Store before it is instantiated), and a fresh CallState for its
    host functions. What the calls share is the Store's bookkeeping, whose
    creation and first instantiation cost more than the instance itself
    (docs/runtime.md, "One Store per chain run"). A Store is deleted when the
    session closes, or after ``_INSTANCES_PER_STORE`` instances.
    """

    __slots__ = ("_ctx", "_data", "_entered", "_instances", "_store", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._data = _StoreData()
        self._store: Any = None
        self._ctx: Any = None
        self._instances = 0
        self._entered = False

    def __enter__(self) -> Session:
        self.engine._enter_call()
        self._entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the Store (and with it every instance of the session). Idempotent."""
        self._drop_store()
        if self._entered:
            self._entered = False
            self.engine._exit_call()

    def _drop_store(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            C._wasmtime_store_delete(store)

    def _context(self) -> Any:
        if self._store is None or self._instances >= _INSTANCES_PER_STORE:
            self._drop_store()
            self._store = _G.store_new(self.engine._wasm.ptr(), ctypes.c_void_p(id(self._data)),
                                       _NO_FINALIZER)
            self._ctx = _G.store_context(self._store)
            self._instances = 0
        return self._ctx

    def begin(self, mod: CompiledModule, plugin: str, hook: str, limits: Limits,
              request_len: int) -> _Call:
        """A fresh instance of ``mod`` under ``limits``, ready to be called."""
        if not self._entered:
            raise RuntimeError("a Session is used inside a with block")
        ctx = self._context()
        call = _Call(self, ctx, mod, plugin, hook, limits, request_len)
        self._data.state = call.state
        self._instances += 1
        call.instantiate()
        return call

    def invoke(self, mod: CompiledModule, hook: str, request: bytes, limits: Limits,
               plugin: str) -> RawCall:
        """Run one hook in a fresh instance. Raises a :class:`PluginError`."""
        if mod.engine is not self.engine:  # a Store serves one engine's modules only
            return mod.invoke(hook, request, limits, plugin)
        if len(request) > limits.max_input_bytes:
            raise InvalidInput(plugin, hook, f"request of {len(request)} bytes exceeds the "
                               f"{limits.max_input_bytes}-byte cap")
        if hook not in mod._hooks:
            raise KeyError(hook)
        start = time.perf_counter()
        call = self.begin(mod, plugin, hook, limits, len(request))
        alloc = call.export_func(abi.ALLOC_EXPORT)
        ptr = call.call_func(alloc, (len(request),)) & _U32
        if ptr == 0 and request:
            raise InvalidOutput(plugin, hook, f"podplug_alloc({len(request)}) returned 0")
        call.write(ptr, request)
        packed = call.call_func(call.export_func(mod._names[hook]), (ptr, len(request)))
        out_ptr, out_len = (packed >> 32) & _U32, packed & _U32
        if out_len > limits.max_output_bytes:
            raise InvalidOutput(plugin, hook, f"response of {out_len} bytes exceeds the "
                                f"{limits.max_output_bytes}-byte cap")
        output = call.read(out_ptr, out_len)
        return RawCall(output, call.fuel_used(), time.perf_counter() - start,
                       tuple(call.state.logs))


class _Call:
    """One Instance in a session's Store, alive for one hook call."""

    __slots__ = (
        "_ctx",
        "_instance",
        "_mem",
        "fuel",
        "hook",
        "limits",
        "mod",
        "plugin",
        "session",
        "state",
    )

    def __init__(self, session: Session, ctx: Any, mod: CompiledModule, plugin: str, hook: str,
                 limits: Limits, request_len: int) -> None:
        self.session, self._ctx = session, ctx
        self.mod, self.plugin, self.hook, self.limits = mod, plugin, hook, limits
        self.state = CallState()
        self.fuel = limits.fuel_for(request_len)

    def instantiate(self) -> None:
        ctx, store = self._ctx, self.session._store
        # Fuel, deadline and memory cap are the Store's: set for this call, before
        # this call's instance exists (its start function runs under them too).
        self._check(_G.set_fuel(ctx, self.fuel), None)
        _G.set_epoch_deadline(ctx, math.ceil(self.limits.timeout_s / self.mod.engine.epoch_tick_s)
                              + 1)
        _G.store_limiter(store, self.limits.memory_bytes, -1, -1, -1, -1)
        self._instance = C.wasmtime_instance_t()
        trap = ctypes.POINTER(C.wasm_trap_t)()
        err = C._wasmtime_instance_pre_instantiate(
            self.mod._pre_ptr, ctx, ctypes.byref(self._instance), ctypes.byref(trap)
        )
        self._check(err, trap)
        ext = C.wasmtime_extern_t()
        _G.instance_export_get(ctx, ctypes.byref(self._instance), b"memory", 6, ctypes.byref(ext))
        self._mem = ext.of.memory

    def export_func(self, name: bytes | str) -> Any:
        raw = name.encode() if isinstance(name, str) else name
        ext = C.wasmtime_extern_t()
        _G.instance_export_get(self._ctx, ctypes.byref(self._instance), raw, len(raw),
                                        ctypes.byref(ext))
        return ext.of.func

    def call_func(self, func: Any, params: tuple[int, ...]) -> int:
        """Call a function whose signature was checked at load; one result."""
        vals = _Vals2()
        for i, p in enumerate(params):
            vals[i].i32 = p
        trap = ctypes.POINTER(C.wasm_trap_t)()
        err = C._wasmtime_func_call_unchecked(self._ctx, ctypes.byref(func), vals, 2,
                                              ctypes.byref(trap))
        self._check(err, trap)
        return vals[0].i64  # i32 results occupy the low bits; callers mask

    def _memory(self) -> tuple[int, int]:
        mem = ctypes.byref(self._mem)
        return _memory_data(self._ctx, mem) or 0, _G.memory_data_size(self._ctx, mem)

    def write(self, ptr: int, data: bytes) -> None:
        base, size = self._memory()
        if ptr + len(data) > size:
            raise InvalidOutput(self.plugin, self.hook, f"podplug_alloc returned {ptr}, but "
                                f"{len(data)} bytes there overrun memory ({size} bytes)")
        ctypes.memmove(base + ptr, data, len(data))

    def read(self, ptr: int, length: int) -> bytes:
        base, size = self._memory()
        if ptr + length > size:
            raise InvalidOutput(self.plugin, self.hook, f"response at {ptr}+{length} lies "
                                f"outside memory ({size} bytes)")
        return ctypes.string_at(base + ptr, length)

    def fuel_used(self) -> int:
        left = ctypes.c_uint64()
        _G.get_fuel(self._ctx, ctypes.byref(left))
        return self.fuel - left.value

    def _check(self, err: Any, trap: Any) -> None:
        """Translate a wasmtime error or trap into a podplug error."""
        if trap:
            t = wasmtime.Trap._from_ptr(trap)
            raise self._classify(t.message, t.trap_code) from t
        if err:
            e = wasmtime.WasmtimeError._from_ptr(err)
            raise self._classify(str(e), None) from e

    def _classify(self, message: str, code: wasmtime.TrapCode | None) -> PluginError:
        p, h, lim = self.plugin, self.hook, self.limits
        words = self.state.last_words
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            extra = "" if self.fuel == lim.fuel else (
                f" ({lim.fuel:,} + {lim.fuel_per_request_byte} per request byte)")
            return OutOfFuel(p, h, f"used all {self.fuel:,} units{extra}")
        if code == wasmtime.TrapCode.INTERRUPT:
            return DeadlineExceeded(p, h, f"still running after {lim.timeout_s:g}s")
        # A refused memory.grow is not a trap: the guest's allocator fails later
        # (Rust: unreachable; AssemblyScript: abort). wasmtime does not say a grow
        # was refused, so judge by how close to the cap the memory got: allocators
        # grow by up to the current size, so past half the cap a grow may fail.
        mem_size = self._memory()[1] if hasattr(self, "_mem") else 0
        near_cap = mem_size * 2 >= lim.memory_bytes and code in (
            wasmtime.TrapCode.UNREACHABLE, None)
        if near_cap or ("memory" in message and ("limit" in message or "minimum" in message)):
            detail = f" ({words})" if words else ""
            return MemoryLimit(p, h, f"linear memory reached the {lim.memory_bytes >> 20} MiB "
                               f"cap{detail}")
        name = code.name if code is not None else None
        if self.state.host_fault:
            return Trap(p, h, self.state.host_fault, name)
        if words:
            return Trap(p, h, words if words.startswith("abort") else f"panic: {words}", name)
        reason = {
            "UNREACHABLE": "unreachable executed (the guest panicked or aborted)",
            "STACK_OVERFLOW": "stack overflow (too deep recursion)",
            "MEMORY_OUT_OF_BOUNDS": "out-of-bounds memory access",
            "INTEGER_DIVISION_BY_ZERO": "integer division by zero",
        }.get(name or "", _first_line(message))
        return Trap(p, h, reason, name)

