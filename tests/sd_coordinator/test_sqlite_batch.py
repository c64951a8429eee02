"""The SQLite thread: no cursor escapes it, so no statement is reset from the event loop."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sd_coordinator.sqlite_batch import BatchedSqlite

SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);"
BUMP = "UPDATE t SET v = v + 1 WHERE id = ?"
ROWS = 5000


async def test_a_cursor_an_operation_returns_stays_on_the_database_thread(tmp_path: Path) -> None:
    db = BatchedSqlite(tmp_path / "t.sqlite3", SCHEMA)
    await db.start()
    try:
        assert await db.write(lambda c: c.execute("INSERT INTO t (id, v) VALUES (1, 0)")) is None
        assert await db.call(lambda: db.db.execute("SELECT v FROM t")) is None
        assert await db.call(lambda: db.db.execute("SELECT v FROM t").fetchone()[0]) == 0
    finally:
        await db.stop()


async def test_writes_of_one_statement_never_break_while_others_finish(tmp_path: Path) -> None:
    """Coroutines resume at any moment while the next batch runs the same cached statement.
    When cursors came back to the event loop, one dropped there could reset that statement in
    the middle of an executemany on the database thread, and the write failed with "bad
    parameter or other API misuse" (seen as a 500 on POST /task under two submitters)."""
    db = BatchedSqlite(tmp_path / "t.sqlite3", SCHEMA)
    await db.start()
    rng = random.Random(5)
    try:
        await db.write(
            lambda c: c.executemany(
                "INSERT INTO t (id, v) VALUES (?, 0)", [(i,) for i in range(ROWS)]
            )
        )
        everything = [(i,) for i in range(ROWS)]
        one = [(7,)]

        async def writer(times: int, rows: list[tuple[int]]) -> None:
            for _ in range(times):
                answer = await db.write(lambda c: c.executemany(BUMP, rows))
                await asyncio.sleep(rng.random() * 0.003)  # resumes while the next batch runs
                del answer

        big = [writer(20, everything) for _ in range(3)]
        small = [writer(100, one) for _ in range(30)]
        await asyncio.gather(*big, *small)

        total = await db.call(lambda: db.db.execute("SELECT SUM(v) FROM t").fetchone()[0])
        assert total == 3 * 20 * ROWS + 30 * 100
    finally:
        await db.stop()
