"""A TCP proxy that delays every byte by a fixed time each way: link latency without netem.

    python -m support.delay_proxy --delay-ms 20 10.16.1.1:15672=127.0.0.1:5672 ...

Each LISTEN=TARGET pair forwards connections to LISTEN on to TARGET; data read at time t is
written at t + delay, in order, in both directions (so a round trip gains twice the delay).
Throughput is not limited (tc tbf on the link does that). Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import time


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy reader → writer, each chunk written `delay_s` after it was read."""
    queue: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    done = False

    async def read() -> None:
        nonlocal done
        try:
            while chunk := await reader.read(1 << 16):
                queue.append((time.monotonic() + delay_s, chunk))
                arrived.set()
        except OSError:
            pass
        done = True
        arrived.set()

    reading = asyncio.create_task(read())
    try:
        while True:
            if not queue:
                if done:
                    break
                arrived.clear()
                await arrived.wait()
                continue
            due, chunk = queue[0]
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            queue.popleft()
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
    finally:
        reading.cancel()
        with contextlib.suppress(BaseException):
            await reading


async def serve(listen: str, target: str, delay_s: float) -> asyncio.Server:
    host, port = listen.rsplit(":", 1)
    to_host, to_port = target.rsplit(":", 1)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(to_host, int(to_port))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(pump(reader, up_writer, delay_s), pump(up_reader, writer, delay_s))
        finally:
            for w in (writer, up_writer):
                w.close()

    return await asyncio.start_server(connected, host, int(port))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("maps", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    servers = [await serve(*m.split("=", 1), args.delay_ms / 1000) for m in args.maps]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
