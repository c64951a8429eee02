"""Late acks, coalesced: the acks of one loop turn go out as few frames as possible.

A worker acks a message only once the coordinator stored its outcome, and outcomes are stored
in batches, so acks come in bursts. RabbitMQ numbers the deliveries of a channel 1, 2, 3…; when
every delivery up to some tag is settled, one `basic.ack(multiple=True)` with that tag settles
them all. A settled delivery above an unsettled one is acked on its own at once, so a slow task
never holds back the acks (and so the prefetch slots) of the tasks delivered after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol


class Settleable(Protocol):
    """A delivery that can be settled: a `transport.Delivery`, or aio-pika's `IncomingMessage`."""

    @property
    def channel(self) -> object: ...
    @property
    def delivery_tag(self) -> int | None: ...
    async def ack(self, multiple: bool = False) -> None: ...
    async def nack(self, multiple: bool = False, requeue: bool = True) -> None: ...
    async def reject(self, requeue: bool = False) -> None: ...


Waiter = tuple[Settleable, "asyncio.Future[None]"]


@dataclass
class _Channel:
    floor: int = 0  # every delivery tag up to here is settled
    settled: set[int] = field(default_factory=set)  # settled tags above the floor
    ready: dict[int, Waiter] = field(default_factory=dict)  # acks waiting for the next flush


class AckCoalescer:
    """`await ack(message)` instead of `message.ack()`; `await settle_alone(...)` to nack or
    reject (those always travel alone). Keyed by the delivering channel, so a channel reopened
    after a broker restart (tags start again at 1) starts afresh."""

    def __init__(self) -> None:
        self._channels: dict[object, _Channel] = {}
        self._flush_planned = False
        self._flushes: set[asyncio.Future[None]] = set()
        self.frames = 0  # basic.ack frames sent

    async def ack(self, message: Settleable) -> None:
        """Ack `message` with the others acked in the same loop turn; raises what the channel
        raised (closed: RabbitMQ redelivers the message)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._state(message).ready[_tag(message)] = (message, future)
        if not self._flush_planned:
            self._flush_planned = True
            loop.call_soon(self._flush_all)
        await future

    async def settle_alone(
        self, message: Settleable, *, requeue: bool, reject: bool = False
    ) -> None:
        """Nack (or reject) `message` now, in a frame of its own."""
        if reject:
            await message.reject(requeue=requeue)
        else:
            await message.nack(requeue=requeue)
        self._settled(self._state(message), [_tag(message)])

    # -- internals ------------------------------------------------------------------------

    def _state(self, message: Settleable) -> _Channel:
        return self._channels.setdefault(message.channel, _Channel())

    @staticmethod
    def _settled(state: _Channel, tags: list[int]) -> None:
        state.settled.update(tags)
        while state.floor + 1 in state.settled:
            state.floor += 1
            state.settled.discard(state.floor)

    def _flush_all(self) -> None:
        self._flush_planned = False
        for state in self._channels.values():
            if state.ready:
                ready, state.ready = state.ready, {}
                flush = asyncio.ensure_future(self._flush(state, ready))
                self._flushes.add(flush)
                flush.add_done_callback(self._flushes.discard)

    async def _flush(self, state: _Channel, ready: dict[int, Waiter]) -> None:
        # The run: tags from just above the floor upwards, each either acked now or settled.
        top = state.floor
        while top + 1 in ready or top + 1 in state.settled:
            top += 1
        run = [t for t in ready if t <= top]
        sends = [(max(run), len(run) > 1, run)] if run else []
        sends += [(t, False, [t]) for t in sorted(ready) if t > top]
        for tag, multiple, covered in sends:
            error: BaseException | None = None
            try:
                await ready[tag][0].ack(multiple=multiple)
                self.frames += 1
            except Exception as exc:  # the channel closed: RabbitMQ redelivers its messages
                error = exc
                self._channels.pop(ready[tag][0].channel, None)
            self._settled(state, covered)
            for t in covered:
                future = ready[t][1]
                if not future.done():
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)


def _tag(message: Settleable) -> int:
    tag = message.delivery_tag
    if tag is None:
        raise ValueError("a message without a delivery tag cannot be settled")
    return tag
