"""Stop signals (Ctrl-C, SIGTERM, a service's stop) handed to the event loop on every platform.

`loop.add_signal_handler` exists only on POSIX loops (asyncio's selector loop, uvloop); the
Proactor loop of Windows has none. There `signal.signal` runs the handler in the main thread,
woken by the loop's own wakeup fd, and `call_soon_threadsafe` passes it on to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
if sys.platform == "win32":  # Ctrl-Break, and what a console's service manager may send
    STOP_SIGNALS += (signal.SIGBREAK,)


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[], None], *, use_loop: bool) -> Iterator[str]:
    """Call `on_signal()` on the running loop for each stop signal while inside; yields how
    ("loop" or "signal.signal"). `use_loop=False` (PORTABLE_RUNTIME, or no loop support) takes
    the path Windows takes."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    if use_loop:
        try:
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):
            use_loop = False
    if use_loop:
        try:
            yield "loop"
        finally:
            for sig, old in previous.items():
                loop.remove_signal_handler(sig)  # which would leave the default behind
                if old is not None:  # None: a handler set outside Python, which we cannot put back
                    signal.signal(sig, old)
        return

    def handler(_signum: int, _frame: Any) -> None:
        loop.call_soon_threadsafe(on_signal)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield "signal.signal"
    finally:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)
