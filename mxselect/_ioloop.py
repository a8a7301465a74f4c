"""One process-wide I/O thread running an asyncio event loop, for synchronous callers.

:meth:`mxselect.stub.StubResolver.resolve_batch` hands its batch over to it when other threads
are in the synchronous batch path at the same time: many threads each waiting on their own
``poll()`` pay a context switch for every system call (each one releases the GIL while the
others are runnable), where one event loop serves every thread's sockets from one ``epoll``
wait. Alone, a caller keeps to its own thread (:func:`crowded` says which).

The hand-off is lean on purpose: a caller appends its :class:`Call` to a deque and wakes the
loop only if no wake-up is pending already (one ``call_soon_threadsafe`` drains every call
submitted meanwhile); it then blocks on a ``threading.Lock`` of its own, which the loop releases
when the call's coroutine is done. The loop runs nothing but the coroutines handed to it (the
resolver's own).

* Fork: a child process never uses its parent's loop thread (it does not exist there): the
  child starts a fresh one when it needs one (``os.register_at_fork``, and the pid checked).
* An exception or KeyboardInterrupt in the waiting caller cancels its coroutine on the loop
  (its ``finally`` blocks close its sockets) and waits briefly for that before re-raising.
* Interpreter exit: the thread is a daemon; ``atexit`` stops the loop, cancelling what is
  left so that every socket is closed.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import itertools
import os
import selectors
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["Call", "IoLoop", "crowded", "enter", "io_loop", "leave"]

_T = TypeVar("_T")

#: The thread's name (``threading.enumerate()`` shows it while it runs).
THREAD_NAME = "mxselect-io"
#: Seconds a caller interrupted while waiting gives its cancelled call to finish (close its
#: sockets) before it re-raises.
CANCEL_WAIT = 1.0

#: Callers inside the synchronous batch path now, one token each (set operations are atomic
#: under the GIL: no lock taken on the path).
_inside: set[int] = set()
_tokens = itertools.count()
#: Calls handed over to the loop since the process started (tests read it).
handed_over = 0
_count_lock = threading.Lock()


def enter() -> int:
    """A caller enters the synchronous batch path: its token for :func:`leave`."""
    token = next(_tokens)
    _inside.add(token)
    return token


def leave(token: int) -> None:
    """The caller of :func:`enter` leaves the path."""
    _inside.discard(token)


def crowded() -> bool:
    """Whether another caller is in the synchronous batch path too."""
    return len(_inside) > 1


class Call(Generic[_T]):
    """One coroutine handed over to the loop and the thread waiting for its outcome."""

    __slots__ = ("cancelled", "coro", "done", "error", "finished", "result", "task")

    def __init__(self, coro: Coroutine[Any, Any, _T]) -> None:
        self.coro = coro
        #: held until the outcome is there (released by the loop)
        self.done = threading.Lock()
        self.done.acquire()
        self.result: _T | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        #: the caller gave up (set by the caller's thread)
        self.cancelled = False
        #: the outcome is in and ``done`` released (set on the loop)
        self.finished = False

    def finish(self) -> None:
        """(On the loop.) The outcome is in: wake the caller, once."""
        if not self.finished:
            self.finished = True
            self.done.release()


class IoLoop:
    """The I/O thread and its event loop; :func:`io_loop` gives the process's one."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        #: the calls whose outcome is in, their callers woken when the loop next waits
        self.finished: list[Call[Any]] = []
        self.loop = asyncio.SelectorEventLoop(_Selector(self.finished))
        self.inbox: collections.deque[Call[Any]] = collections.deque()
        #: a drain is scheduled and has not started yet: a new call needs no wake-up
        self.woken = False
        #: the calls started on the loop and not finished
        self.running: set[Call[Any]] = set()
        self.thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self.thread.start()
        self.ident = self.thread.ident

    # -- the caller's side ---------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coro`` on the loop and wait for its outcome: its result, or its exception
        raised here. An exception in the wait (KeyboardInterrupt) cancels it first.

        ``timeout`` (seconds): a guard for a coroutine that should have ended by itself (the
        stub's batches have one absolute end): past it, the call is cancelled like an
        interrupted one and :class:`TimeoutError` is raised."""
        global handed_over
        call: Call[_T] = Call(coro)
        with _count_lock:  # (exact: ``+=`` alone can lose a count when threads switch)
            handed_over += 1
        self.inbox.append(call)
        if not self.woken:
            self.woken = True
            self.loop.call_soon_threadsafe(self._drain)
        try:
            if not call.done.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
                raise TimeoutError(f"the I/O loop's call did not end within {timeout:g} s")
        except BaseException:
            call.cancelled = True
            with contextlib.suppress(RuntimeError):  # (the loop is closed: nothing runs)
                self.loop.call_soon_threadsafe(self._cancel, call)
            with contextlib.suppress(BaseException):  # (interrupted again: give up waiting)
                call.done.acquire(timeout=CANCEL_WAIT)
            raise
        if call.error is not None:
            error, call.error = call.error, None
            raise error
        return call.result  # type: ignore[return-value]

    # -- the loop's side -----------------------------------------------------------------

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:  # cancel what is left (interpreter exit): their sockets are closed
                for call in self.inbox:
                    call.cancelled = True
                self._drain()
                tasks = [call.task for call in self.running if call.task is not None]
                for call in list(self.running):
                    self._cancel(call)
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_WAIT))
            finally:
                for call in self.finished:
                    call.finish()
                self.finished.clear()
                asyncio.set_event_loop(None)
                loop.close()

    def _drain(self) -> None:
        """Start every call submitted since the last drain."""
        self.woken = False  # (before reading the inbox: a call appended later wakes again)
        inbox = self.inbox
        create = self.loop.create_task
        while inbox:
            call = inbox.popleft()
            if call.cancelled:
                call.coro.close()
                call.finish()
                continue
            self.running.add(call)
            call.task = create(self._run(call))

    async def _run(self, call: Call[Any]) -> None:
        try:
            call.result = await call.coro
        except BaseException as exc:  # (CancelledError too: the caller gave up)
            call.error = exc
        finally:
            self.running.discard(call)
            self.finished.append(call)  # (woken by _Selector.select, soon)

    def _cancel(self, call: Call[Any]) -> None:
        """(On the loop.) Cancel ``call``: its coroutine's ``finally`` blocks run (its sockets
        are closed), then the caller is woken. Not started yet by the drain: the drain sees
        ``cancelled`` and wakes it."""
        task = call.task
        if task is None or call.finished:
            return
        task.cancel()
        task.add_done_callback(lambda _task: self._cancelled(call))

    def _cancelled(self, call: Call[Any]) -> None:
        # (a task cancelled before its first step never ran ``_run``: nothing else wakes it)
        if not call.finished:
            self.running.discard(call)
            call.coro.close()
            call.finish()

    def stop(self) -> None:
        """Stop the loop (what is left is cancelled) and wait briefly for the thread."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not threading.current_thread():
            self.thread.join(CANCEL_WAIT * 2)


class _Selector(selectors.DefaultSelector):
    """The loop's selector, which first wakes the callers whose calls finished in this
    iteration of the loop: they run while the loop waits, instead of taking the GIL from it
    while it still has callbacks to run (each a switch between threads)."""

    def __init__(self, finished: list[Call[Any]]) -> None:
        super().__init__()
        self._finished = finished

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        finished = self._finished
        if finished:
            for call in finished:
                call.finish()
            finished.clear()
        return super().select(timeout)


_io: IoLoop | None = None
_io_lock = threading.Lock()


def io_loop() -> IoLoop:
    """The process's I/O loop, started on first use (and afresh in a child after fork)."""
    global _io
    io = _io
    if io is not None and io.pid == os.getpid():
        return io
    with _io_lock:
        io = _io
        if io is None or io.pid != os.getpid():
            io = _io = IoLoop()
        return io


def _after_fork_in_child() -> None:
    """The parent's loop thread does not exist in the child, nor do its callers."""
    global _io, _io_lock, _count_lock
    _io = None
    _io_lock = threading.Lock()
    _count_lock = threading.Lock()
    _inside.clear()


def _stop_at_exit() -> None:
    io = _io
    if io is not None and io.pid == os.getpid():
        io.stop()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_at_exit)
