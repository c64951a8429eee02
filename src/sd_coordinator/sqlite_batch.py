"""A SQLite connection on its own thread, with writes batched into few transactions.

All database work runs on one dedicated thread, so the event loop never blocks on SQLite and
statements never race. Writes that a caller must see durable (a stored result before the worker
acks) are queued and committed together: while one transaction runs, the next batch gathers.
Each write runs in its own savepoint, so one failing write does not sink its batch.

No cursor leaves that thread: one that an operation returns is closed there and `None` goes
back instead. Whichever thread drops a cursor resets its statement, and a reset from the event
loop while the database thread ran the same cached statement once failed a batch with "bad
parameter or other API misuse".
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Write = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


class BatchedSqlite:
    """`start()` before use; `stop()` flushes and is idempotent."""

    def __init__(self, path: Path, schema: str, name: str = "sqlite") -> None:
        self.path = path
        self.schema = schema
        self.name = name
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pending: list[Write] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the database, create the schema, start the batching writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._db = await self.call(self._open)
        self._writer = asyncio.create_task(self._write_batches(), name=f"{self.name}-writer")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a killed process; only power loss can drop the tail.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(self.schema)
        return db

    async def stop(self) -> None:
        """Flush pending writes and close."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
            if self._pending:
                await self._flush(self._take_pending())
        if self._db is not None:
            db, self._db = self._db, None
            await self.call(db.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for use on the database thread only."""
        if self._db is None:
            raise RuntimeError(f"{self.name} used before start()")
        return self._db

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the database thread (reads, and the batch transactions)."""
        if self._thread is None:
            raise RuntimeError(f"{self.name} used before start()")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: _kept_here(fn(*args))
        )

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op(db)` in the next batch; return its result once the batch committed."""
        if self._writer is None:
            raise RuntimeError(f"{self.name} used before start()")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        return await future

    def _take_pending(self) -> list[Write]:
        batch, self._pending = self._pending, []
        self._wakeup.clear()
        return batch

    async def _write_batches(self) -> None:
        while True:
            await self._wakeup.wait()
            await self._flush(self._take_pending())

    async def _flush(self, batch: list[Write]) -> None:
        def run() -> list[tuple[bool, Any]]:
            results: list[tuple[bool, Any]] = []
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                for op, _ in batch:
                    db.execute("SAVEPOINT op")
                    try:
                        results.append((True, _kept_here(op(db))))
                        db.execute("RELEASE op")
                    except Exception as exc:  # one bad op must not sink the batch
                        if not db.in_transaction:  # SQLite ended it (a full disk): it sank
                            raise
                        db.execute("ROLLBACK TO op")
                        db.execute("RELEASE op")
                        results.append((False, exc))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a failed COMMIT (disk full) has rolled back already
                    db.execute("ROLLBACK")
                raise
            return results

        try:
            results = await self.call(run)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (ok, value) in zip(batch, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _kept_here(value: T) -> T:
    """`value`, unless it is a cursor: that is closed on this (the database) thread, and None
    goes back instead."""
    if isinstance(value, sqlite3.Cursor):
        value.close()
        return None  # type: ignore[return-value]
    return value
