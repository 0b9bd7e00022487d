"""In-process networks' adapters in a child process of their own.

Reading a camera is CPU work in Python (SOAP parsing with zeep and lxml, ~17-20 ms per camera).
On the API's event loop a discovery of thousands of cameras saturates it; on a thread of its own
(adapters/threaded.py) it still holds the interpreter's GIL, and the loop waits for it just the
same. In a child process the reads have an interpreter of their own: the API's loop only
unpickles what crosses over (a camera's record, a picture), and the child runs at a lower CPU
priority (`os.nice`), so that on a shared core the API's loop, woken by a request, preempts it.

`AdapterProcess` is one child process (multiprocessing's *spawn* context: a fresh interpreter,
never a fork of a process with a running loop and threads) that runs an asyncio loop with one
`CameraNetworkAdapter` per network, built there from its picklable `AdapterSpec` (the resolved
credentials travel inside the spec, over the socket below; never logged: the spec's and the
credentials' reprs redact them). `ProcessAdapter` is a `NetworkAdapter` per network whose calls
run in the child; the gateway cannot tell it from the adapter it wraps.

Transport: a socketpair, read with asyncio on both sides; frames of a 4-byte big-endian length
and a pickle (protocol 5: both ends are our own processes), each at most `max_frame` bytes (the
largest picture a network accepts plus room for a probe's targets). Messages, as tuples:

    parent -> child   ("call", id, network, method, args)    probe, snapshot, close
                      ("discover", id, network, (job, actor))
                      ("cancel", id)                         the caller was cancelled / the
                                                             discover iterator closed
                      ("ack", id, n)                         n discovery events taken
    child -> parent   ("result", id, value)
                      ("error", id, pickled exception)
                      ("event", id, DiscoveryEvent)          at most _WINDOW unacknowledged
                      ("done", id)                           the discovery stream ended

Flow control: the child sends at most `_WINDOW` events of a discovery the parent has not
acknowledged; the parent acknowledges them as its consumer takes them, so a busy gateway slows
the child's reads, as ThreadedAdapter's bounded queue does.

Exceptions keep their type and attributes (`reduce_exception`): an `AdapterError` subclass, a
`SnapshotFailed` with its steps, an `ImageTooLarge` reach the gateway as the adapter raised them,
so its error mapping is unchanged. One that cannot be pickled becomes `AdapterError("<Type>:
<message>")`.

Failures: when the child dies (killed, crashed) every pending call fails with
`AdapterUnavailable` naming its exit code, which is logged; the next call starts a new child, at
once the first time and after a growing delay (up to `_BACKOFF_MAX_S`) while children keep dying
young, so that a crash loop does not spin. The child ends when its socket closes: the gateway
stopped it or died (EOF), so it never outlives the gateway. `stop()` is bounded: EOF, then
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from . import tasks
from .base import (
    AdapterError,
    AdapterUnavailable,
    DiscoveryEvent,
    HealthResult,
    NetworkAdapter,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from .config import SnapshotConfig
from .files import raise_nofile_limit
from .gil import favour_the_loop, off_the_loop

log = logging.getLogger(__name__)


class Spec(Protocol):
    """What the child builds a network's adapter from: `adapters.network.AdapterSpec` (with
    its resolved credentials), picklable."""

    @property
    def network(self) -> str: ...

    @property
    def snapshots(self) -> SnapshotConfig: ...


AdapterFactory = Callable[[Any], NetworkAdapter]  # a spec -> its adapter, in the child

_HEADER = struct.Struct(">I")
_PROTOCOL = 5
_FRAME_SLACK = 64 << 20  # beyond the largest picture: a probe's targets or results (100k cameras)
_STREAM_LIMIT = 1 << 20  # asyncio's read buffer on each side
_WINDOW = 64  # discovery events sent and not yet acknowledged
_ACK_EVERY = 16  # the parent acknowledges events in batches of this many
_LOOP_PICKLE_ITEMS = 1_000  # a call or answer this long is pickled in a worker thread
_LOOP_PICKLE_BYTES = 256 << 10  # a bigger frame is unpickled in a worker thread
_METHODS = frozenset({"probe", "snapshot", "close"})
_EXIT_WAIT_S = 2.0  # after the socket broke: time for the child to be seen gone
_REAP_S = 1.0  # after the sentinel: the exit under way
_STOP_S = 5.0  # stop(): the child's own shutdown after EOF, then after SIGTERM
_CHILD_CLOSE_S = 5.0  # in the child: closing the adapters at EOF
_YOUNG_S = 30.0  # a child that dies younger than this counts towards the backoff
_BACKOFF_S = 1.0  # the second restart in a row waits this long, then twice as long, ...
_BACKOFF_MAX_S = 30.0
DEFAULT_NICENESS = 5


class FrameError(Exception):
    """A frame over the size limit, or one that is not a message: the link is unusable."""


# -- exceptions across the socket ---------------------------------------------------------------


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """The exception as it was raised, without calling its __init__ (whose signature may not be
    its `args`: SnapshotFailed(steps), ImageTooLarge(width, height, limit))."""
    try:
        exc = cls.__new__(cls, *args)
        exc.args = args
        exc.__dict__.update(state)
    except Exception:  # a class that cannot be rebuilt this way: its name and message
        return AdapterError(f"{cls.__name__}: {', '.join(map(str, args))}")
    return exc


class _ExceptionPickler(pickle.Pickler):
    """Pickles every exception it meets (the one raised, the steps of a SnapshotFailed) by
    type, args and attributes; no traceback, cause or context."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException):
            return _rebuild_exception, (type(obj), obj.args, dict(getattr(obj, "__dict__", {})))
        return NotImplemented


def dump_exception(exc: BaseException) -> bytes:
    """`exc` pickled to load back with its type and attributes; one that cannot be (a local
    class, an unpicklable attribute) as AdapterError("<Type>: <message>")."""
    out = io.BytesIO()
    try:
        _ExceptionPickler(out, protocol=_PROTOCOL).dump(exc)
        data = out.getvalue()
        pickle.loads(data)  # our own bytes: what the other side will do
        return data
    except Exception:
        return pickle.dumps(AdapterError(f"{type(exc).__name__}: {exc}"), protocol=_PROTOCOL)


def load_exception(data: bytes) -> BaseException:
    try:
        exc = pickle.loads(data)  # from our own child process
    except Exception as err:
        return AdapterError(f"an error the adapter process sent could not be read ({err})")
    if not isinstance(exc, BaseException):
        return AdapterError(f"the adapter process sent {type(exc).__name__} as an error")
    return exc


# -- frames ---------------------------------------------------------------------------------------


def _long(value: object) -> bool:
    """A sequence too long to pickle on an event loop (a health round's targets or answers)."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and len(value) > _LOOP_PICKLE_ITEMS
    )


def _frame(message: tuple[Any, ...], max_frame: int) -> bytes:
    payload = pickle.dumps(message, protocol=_PROTOCOL)
    if len(payload) > max_frame:
        raise FrameError(f"a message of {len(payload):,} bytes, over the limit of {max_frame:,}")
    return _HEADER.pack(len(payload)) + payload


async def _receive(reader: asyncio.StreamReader, max_frame: int) -> tuple[Any, ...]:
    """The next message; IncompleteReadError at EOF, FrameError on a frame that is not one."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > max_frame:
        raise FrameError(f"a frame of {size:,} bytes announced, over the limit of {max_frame:,}")
    payload = await reader.readexactly(size)
    try:
        # (both ends are our own processes) A health round's answers, 100,000 at a district,
        # are read off the event loop.
        big = size > _LOOP_PICKLE_BYTES
        message = await off_the_loop(big, pickle.loads, payload)
    except Exception as exc:
        raise FrameError(f"a frame that does not unpickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(message, tuple) or len(message) < 2:
        raise FrameError(f"a frame that is no message ({type(message).__name__})")
    return message


def max_frame_for(specs: Sequence[Spec]) -> int:
    """The largest picture any network accepts, plus room for everything else."""
    return max((s.snapshots.max_bytes for s in specs), default=0) * 2 + _FRAME_SLACK


# -- the parent's side ----------------------------------------------------------------------------


_END = object()


@dataclass(eq=False)
class _Link:
    """One child process and the socket to it; its own pending calls and streams."""

    process: multiprocessing.process.BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    started: float
    max_frame: int
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    streams: dict[int, asyncio.Queue[object]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    lost: str | None = None  # why the link is gone (None: alive)
    stopping: bool = False
    ended: asyncio.Future[None] | None = None  # the process's sentinel was readable

    def watch(self) -> None:
        """One reader on the process's sentinel (a second add_reader would replace it)."""
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        sentinel = self.process.sentinel

        def readable() -> None:
            loop.remove_reader(sentinel)
            if self.ended is not None and not self.ended.done():
                self.ended.set_result(None)

        loop.add_reader(sentinel, readable)

    async def exit_code(self, wait_s: float) -> int | None:
        """The exit code once the process has ended, waiting at most `wait_s`; None if it
        still runs."""
        code = self.process.exitcode
        if code is not None or wait_s <= 0 or self.ended is None:
            return code
        try:
            async with asyncio.timeout(wait_s):
                await asyncio.shield(self.ended)
        except TimeoutError:
            return self.process.exitcode
        # The sentinel is readable once the child's descriptors are closed, a moment before
        # it can be reaped: this waits for that moment (it is exiting), not for the process.
        self.process.join(_REAP_S)
        return self.process.exitcode

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def send(self, message: tuple[Any, ...]) -> None:
        self.send_frame(_frame(message, self.max_frame))

    def send_frame(self, frame: bytes) -> None:
        if self.lost is not None:
            raise AdapterUnavailable(self.lost)
        self.writer.write(frame)


class AdapterProcess:
    """One child process running the adapters of `specs` (see the module's docstring).

    `initializer`, a picklable callable, runs first in the child (the gateway passes one that
    sets up its structured logging); `niceness` is added to the child's CPU priority; `factory`
    (picklable: a class or a module's function) builds each network's adapter there from its
    spec."""

    def __init__(
        self,
        specs: Sequence[Spec],
        *,
        initializer: Callable[[], object] | None = None,
        niceness: int = DEFAULT_NICENESS,
        name: str = "camgw-adapters",
        factory: AdapterFactory | None = None,
    ) -> None:
        self.specs = {s.network: s for s in specs}
        self.factory = factory
        self.initializer = initializer
        self.niceness = niceness
        self.name = name
        self.max_frame = max_frame_for(specs)
        self.starts = 0  # children started, for metrics and tests
        self._ids = itertools.count(1)
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._young_deaths = 0  # children in a row that died within _YOUNG_S
        self._died_at = 0.0
        self._stopped = False

    def __repr__(self) -> str:  # the specs hold credentials: networks only
        return f"AdapterProcess({', '.join(self.specs)}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The running child's, or None."""
        link = self._link
        return link.pid if link is not None and link.lost is None else None

    def adapter(self, network: str) -> ProcessAdapter:
        if network not in self.specs:
            raise KeyError(network)
        return ProcessAdapter(network, self)

    async def start(self) -> None:
        """Start the child now rather than at the first call (which would wait for it)."""
        await self._connection()

    async def _connection(self) -> _Link:
        link = self._link
        if link is not None and link.lost is None:
            return link
        async with self._lock:
            link = self._link
            if link is not None and link.lost is None:
                return link
            if self._stopped:
                raise AdapterUnavailable("the adapter process is stopped (the gateway is stopping)")
            wait = self._backoff_left()
            if wait > 0:
                raise AdapterUnavailable(
                    f"the adapter process died {self._young_deaths} times in a row; "
                    f"the next one starts in {wait:.1f} s"
                )
            self._link = link = await self._spawn()
            return link

    def _backoff_left(self) -> float:
        if self._young_deaths < 2:
            return 0.0
        delay = min(_BACKOFF_S * 2.0 ** (self._young_deaths - 2), _BACKOFF_MAX_S)
        return self._died_at + delay - time.monotonic()

    async def _spawn(self) -> _Link:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = socket.socketpair()
        try:
            process = ctx.Process(
                target=_child_main,
                args=(
                    theirs,
                    tuple(self.specs.values()),
                    self.factory,
                    self.initializer,
                    self.niceness,
                ),
                name=self.name,
                daemon=True,  # multiprocessing ends it at the interpreter's exit, too
            )
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy: our EOF is the child's signal
        reader, writer = await asyncio.open_connection(sock=ours, limit=_STREAM_LIMIT)
        link = _Link(process, reader, writer, time.monotonic(), self.max_frame)
        link.watch()
        link.task = asyncio.create_task(self._read(link), name=f"{self.name}-reader")
        self.starts += 1
        log.info(
            "adapter process started",
            extra={"pid": link.pid, "networks": list(self.specs), "niceness": self.niceness},
        )
        return link

    async def _read(self, link: _Link) -> None:
        reason = "the adapter process closed its socket"
        try:
            while True:
                message = await _receive(link.reader, link.max_frame)
                self._dispatch(link, message)
        except asyncio.CancelledError:
            reason = "the adapter process is stopped"
            raise
        except asyncio.IncompleteReadError:
            pass
        except (FrameError, ConnectionError, OSError) as exc:
            reason = f"the link to the adapter process broke ({exc})"
        except Exception as exc:  # a message that is not one of ours: the link is unusable
            reason = f"the adapter process sent what it should not ({type(exc).__name__}: {exc})"
        finally:
            await self._lost(link, reason)

    def _dispatch(self, link: _Link, message: tuple[Any, ...]) -> None:
        kind, ident = message[0], message[1]
        future = link.pending.pop(ident, None) if kind in ("result", "error") else None
        if future is not None:
            if future.done():
                return  # its caller was cancelled meanwhile
            if kind == "result":
                future.set_result(message[2])
            else:
                future.set_exception(load_exception(message[2]))
            return
        queue = link.streams.get(ident)
        if queue is None:
            return  # a call or a stream given up meanwhile: what was already on its way
        if kind == "event":
            queue.put_nowait(message[2])
        elif kind == "error":
            queue.put_nowait(load_exception(message[2]))
        elif kind == "done":
            queue.put_nowait(_END)

    async def _lost(self, link: _Link, reason: str) -> None:
        """The child is gone or must go: its exit code, then every caller told."""
        if link.lost is not None:
            return
        link.lost = reason
        with contextlib.suppress(Exception):
            link.writer.close()
        code = await link.exit_code(_EXIT_WAIT_S)
        if code is None:  # the socket broke and the child runs on: it cannot be used
            link.process.kill()
            code = await link.exit_code(_EXIT_WAIT_S)
        ended = _describe_exit(code)
        if link.stopping:
            message = f"the adapter process (pid {link.pid}) was stopped"
            log.info("adapter process stopped", extra={"pid": link.pid, "exit": ended})
        else:
            message = f"the adapter process (pid {link.pid}) {ended}; {reason}"
            lived = time.monotonic() - link.started
            self._young_deaths = self._young_deaths + 1 if lived < _YOUNG_S else 1
            self._died_at = time.monotonic()
            log.error(
                "adapter process %s; %d call(s) and %d discovery stream(s) failed; the next "
                "call starts a new one",
                ended,
                len(link.pending),
                len(link.streams),
                extra={
                    "pid": link.pid,
                    "exit_code": code,
                    "reason": reason,
                    "lived_s": round(lived, 1),
                },
            )
        link.lost = message
        for future in link.pending.values():
            if not future.done():
                future.set_exception(AdapterUnavailable(message))
        for queue in link.streams.values():
            queue.put_nowait(AdapterUnavailable(message))
        link.pending.clear()

    async def call(self, network: str, method: str, *args: Any) -> Any:
        """`method(*args)` of `network`'s adapter in the child; cancelling the caller cancels
        it there."""
        link = await self._connection()
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        link.pending[ident] = future
        try:
            message = ("call", ident, network, method, args)
            if any(_long(a) for a in args):
                # A health round's targets (100,000 at a district) are pickled off the loop.
                link.send_frame(await asyncio.to_thread(_frame, message, link.max_frame))
            else:
                link.send(message)
            return await future
        except asyncio.CancelledError:
            if link.pending.pop(ident, None) is not None and link.lost is None:
                with contextlib.suppress(Exception):
                    link.send(("cancel", ident))
            raise
        except FrameError as exc:
            raise AdapterError(f"{method}: {exc}") from None
        finally:
            link.pending.pop(ident, None)

    async def discover(self, network: str, job: str, actor: str) -> AsyncIterator[DiscoveryEvent]:
        """The child's discovery events as it produces them; closing this iterator (or
        cancelling its reader) cancels the stream in the child."""
        link = await self._connection()
        ident = next(self._ids)
        queue: asyncio.Queue[object] = asyncio.Queue()
        link.streams[ident] = queue
        ended = False
        try:
            link.send(("discover", ident, network, (job, actor)))
            taken = 0
            while True:
                item = await queue.get()
                if item is _END:
                    ended = True
                    return
                if isinstance(item, BaseException):
                    ended = True
                    raise item
                yield cast(DiscoveryEvent, item)
                taken += 1
                if taken >= _ACK_EVERY:
                    link.send(("ack", ident, taken))
                    taken = 0
        finally:
            link.streams.pop(ident, None)
            if not ended and link.lost is None:
                with contextlib.suppress(Exception):
                    link.send(("cancel", ident))

    async def stop(self, timeout_s: float = _STOP_S) -> None:
        """Stop the child and start no other: EOF (it closes its adapters and exits), then
        SIGTERM, then SIGKILL, each after `timeout_s`."""
        self._stopped = True
        async with self._lock:
            link, self._link = self._link, None
        if link is None:
            return
        process = link.process
        if link.lost is None:
            link.stopping = True
            with contextlib.suppress(Exception):
                link.writer.write_eof()
            code = await link.exit_code(timeout_s)
            if code is None:
                log.warning(
                    "adapter process still runs after EOF: SIGTERM", extra={"pid": link.pid}
                )
                process.terminate()
                code = await link.exit_code(timeout_s)
            if code is None:
                log.error(
                    "adapter process still runs after SIGTERM: SIGKILL", extra={"pid": link.pid}
                )
                process.kill()
                await link.exit_code(timeout_s)
        if link.task is not None:  # it has seen EOF, or sees it now: its callers are told
            await asyncio.wait({link.task}, timeout=timeout_s)
            await tasks.stop(link.task)
        process.join(_REAP_S)  # reaped
        with contextlib.suppress(Exception):
            process.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


class ProcessAdapter:
    """One network's adapter in `process` (see the module's docstring)."""

    def __init__(self, network: str, process: AdapterProcess) -> None:
        self.network = network
        self.process = process

    def __repr__(self) -> str:
        return f"ProcessAdapter({self.network})"

    def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        return self.process.discover(self.network, job, actor)

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        return cast(list[HealthResult], await self.process.call(self.network, "probe", targets))

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        return cast(SnapshotResult, await self.process.call(self.network, "snapshot", request))

    async def close(self) -> None:
        """Closes the adapter in the child, if one runs (none is started for this)."""
        if self.process.pid is None:
            return
        with contextlib.suppress(AdapterUnavailable):
            await self.process.call(self.network, "close")


# -- the child's side -----------------------------------------------------------------------------


def _child_main(
    sock: socket.socket,
    specs: tuple[Spec, ...],
    factory: AdapterFactory | None,
    initializer: Callable[[], object] | None,
    niceness: int,
) -> None:
    """The child process: its loop serves the socket until EOF."""
    # Ctrl-C in a terminal reaches the whole process group: the gateway handles it, and the
    # child ends when the gateway closes the socket (or exits).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    if niceness:
        try:
            os.nice(niceness)
        except OSError as exc:
            log.warning("adapter process: niceness not changed", extra={"error": str(exc)})
    raise_nofile_limit()  # each network's discovery may hold concurrency x 4 connections
    favour_the_loop()  # (the health probes' epoll thread computes beside discovery's loop)
    asyncio.run(_Child(sock, specs, factory).serve())
    # Everything is closed: the interpreter's own teardown (a second of finalising zeep, lxml
    # and OpenCV's modules) would only delay the gateway's stop.
    logging.shutdown()
    os._exit(0)


def _camera_network_adapter() -> AdapterFactory:
    """The adapter the specs are for; imported in the child only (the parent needs none of
    what it imports: zeep, lxml, OpenCV)."""
    from .network import CameraNetworkAdapter  # noqa: PLC0415

    return CameraNetworkAdapter


class _Child:
    def __init__(
        self, sock: socket.socket, specs: tuple[Spec, ...], factory: AdapterFactory | None
    ) -> None:
        build = factory or _camera_network_adapter()
        self.sock = sock
        self.adapters = {s.network: build(s) for s in specs}
        self.max_frame = max_frame_for(specs)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.credits: dict[int, asyncio.Semaphore] = {}
        self.writer: asyncio.StreamWriter | None = None

    async def serve(self) -> None:
        reader, self.writer = await asyncio.open_connection(sock=self.sock, limit=_STREAM_LIMIT)
        log.debug("adapter process serving", extra={"pid": os.getpid()})
        try:
            while True:
                try:
                    message = await _receive(reader, self.max_frame)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break  # the gateway stopped us, or is gone
                self._handle(message)
        finally:
            running = list(self.tasks.values())
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=_CHILD_CLOSE_S)
            closing = [asyncio.create_task(a.close()) for a in self.adapters.values()]
            await asyncio.wait(closing, timeout=_CHILD_CLOSE_S)
            self.writer.close()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, ident = message[0], message[1]
        if kind == "call":
            _, _, network, method, args = message
            self._start(ident, self._call(ident, network, method, args))
        elif kind == "discover":
            _, _, network, (job, actor) = message
            self.credits[ident] = asyncio.Semaphore(_WINDOW)
            self._start(ident, self._discover(ident, network, job, actor))
        elif kind == "cancel":
            task = self.tasks.get(ident)
            if task is not None:
                task.cancel()
        elif kind == "ack":
            credit = self.credits.get(ident)
            if credit is not None:
                for _ in range(message[2]):
                    credit.release()

    def _start(self, ident: int, coro: Any) -> None:
        task = asyncio.create_task(coro, name=f"adapter-call-{ident}")
        self.tasks[ident] = task
        task.add_done_callback(lambda _t: self.tasks.pop(ident, None))

    async def _send(self, message: tuple[Any, ...]) -> None:
        assert self.writer is not None
        try:
            if _long(message[-1]):  # a district's health answers: pickled off the loop
                frame = await asyncio.to_thread(_frame, message, self.max_frame)
            else:
                frame = _frame(message, self.max_frame)
        except FrameError as exc:
            frame = _frame(("error", message[1], dump_exception(AdapterError(str(exc)))), 1 << 20)
        except Exception as exc:  # a result that does not pickle
            error = AdapterError(f"the adapter's answer could not be sent ({exc})")
            frame = _frame(("error", message[1], dump_exception(error)), 1 << 20)
        if self.writer.is_closing():
            return  # the gateway is gone: nobody waits for this
        self.writer.write(frame)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def _call(self, ident: int, network: str, method: str, args: tuple[Any, ...]) -> None:
        try:
            adapter = self.adapters.get(network)
            if adapter is None:
                raise AdapterError(f"no adapter for network {network!r} in the adapter process")
            if method not in _METHODS:
                raise AdapterError(f"the adapter process does not do {method!r}")
            value = await getattr(adapter, method)(*args)
        except Exception as exc:
            await self._send(("error", ident, dump_exception(exc)))
        else:
            await self._send(("result", ident, value))

    async def _discover(self, ident: int, network: str, job: str, actor: str) -> None:
        credit = self.credits[ident]
        try:
            adapter = self.adapters.get(network)
            if adapter is None:
                raise AdapterError(f"no adapter for network {network!r} in the adapter process")
            stream = adapter.discover(job, actor)
            try:
                async for event in stream:
                    await credit.acquire()  # the parent's consumer has taken enough of them
                    await self._send(("event", ident, event))
            finally:
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
        except Exception as exc:  # the reader raises it (a cancellation just ends this)
            await self._send(("error", ident, dump_exception(exc)))
        else:
            await self._send(("done", ident))
        finally:
            self.credits.pop(ident, None)
