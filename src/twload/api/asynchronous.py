"""`twload.arun()`: twload.run() for async code. The run goes on in a thread while the event loop stays
free. Cancelling the awaiting task stops the run as Ctrl-C stops `twload run`, and the task ends
cancelled with RunCancelled, a CancelledError that carries the partial summary. (Under asyncio.run(),
Ctrl-C cancels the main task: the run stops, its folder holds the partial summary, and asyncio.run()
raises its KeyboardInterrupt.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

from twload.api.runs import RunInterrupted, run
from twload.merge.summary import Summary

P = ParamSpec("P")
WAKE_S = 0.2  # how long a signal taken by another thread may wait for its handler (in_a_thread)


class RunCancelled(asyncio.CancelledError):
    """The task awaiting twload.arun() was cancelled: the run stopped early. `summary` is the partial run's
    (its summary.json is in `folder` too)."""

    def __init__(self, summary: Summary, folder: Path) -> None:
        super().__init__(f"the run was cancelled; partial results in {folder}: {summary!r}")
        self.summary = summary
        self.folder = folder

    def __reduce__(self) -> tuple[type[RunCancelled], tuple[Summary, Path]]:
        return RunCancelled, (self.summary, self.folder)


def awaitable(call: Callable[P, Summary]) -> Callable[P, Coroutine[Any, Any, Summary]]:
    """`call` (twload.run, with its parameters) as a coroutine function that runs it in a thread."""

    async def in_a_thread(*args: P.args, **kwargs: P.kwargs) -> Summary:
        given = kwargs.get("stop")
        stop = given if isinstance(given, threading.Event) else threading.Event()
        settings: dict[str, Any] = {**kwargs, "stop": stop}
        future = asyncio.get_running_loop().run_in_executor(None, lambda: call(*args, **settings))
        try:
            while not future.done():
                # Awake now and then: Python runs a signal's handler in the main thread alone, and the kernel
                # may hand the process's SIGINT to the run's thread (any thread that does not block it:
                # kernel/signal.c, complete_signal, Linux 6.x). An event loop asleep on this future would
                # then run asyncio.run()'s handler, which cancels us, only once the run had ended.
                await asyncio.wait({future}, timeout=WAKE_S)
            return future.result()
        except asyncio.CancelledError:
            # a thread cannot be cancelled: ask the run to stop, wait for it, hand over what it measured
            stop.set()
            try:
                await future
            except RunInterrupted as exc:
                raise RunCancelled(exc.summary, exc.folder) from None
            raise  # it had just finished: cancelled all the same

    in_a_thread.__doc__ = f"twload.run() as a coroutine (await it); see twload.api.asynchronous.\n\n{call.__doc__}"
    return in_a_thread


arun = awaitable(run)
