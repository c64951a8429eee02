"""Stop signals reach the event loop both ways: the loop's own handlers (POSIX) and
signal.signal, the way Windows's Proactor loop (and PORTABLE_RUNTIME) takes."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sd_worker.stop_signals import stop_signals


@pytest.mark.parametrize("use_loop", [True, False], ids=["loop", "signal.signal"])
async def test_each_stop_signal_calls_back_on_the_loop_and_the_old_handlers_return(
    use_loop: bool,
) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    loop = asyncio.get_running_loop()
    got: list[bool] = []
    arrived = asyncio.Event()

    def on_signal() -> None:
        got.append(asyncio.get_running_loop() is loop)
        arrived.set()

    with stop_signals(on_signal, use_loop=use_loop) as how:
        assert how == ("loop" if use_loop else "signal.signal")
        for sig in (signal.SIGTERM, signal.SIGINT):
            arrived.clear()
            os.kill(os.getpid(), sig)
            await asyncio.wait_for(arrived.wait(), 5)
    assert got == [True, True]
    assert {sig: signal.getsignal(sig) for sig in before} == before
