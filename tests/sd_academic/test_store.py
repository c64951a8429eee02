"""The academic service's data: migrations applied at start, writes that two services sharing
the file cannot make conflict, replies and events kept with their change."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sd_academic.errors import Conflict, Invalid, Stale
from sd_academic.kinds import PROFESOR
from sd_academic.migrations import MIGRATIONS, schema_version
from sd_academic.service import AcademicService
from sd_academic.store import AcademicStore


class Recorder:
    """An EventPublisher that keeps what it was given (or fails while `down`)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    async def publish(self, routing_key: str, body: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.events.append((routing_key, body))


def profesor(n: int = 1) -> dict[str, Any]:
    return {"nombre": f"P{n}", "apellidos": "Q", "email": f"p{n}@x.mx"}


def test_a_new_database_gets_every_migration_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    store = AcademicStore(tmp_path / "a.sqlite3")
    assert store.open() == len(MIGRATIONS)
    store.close()
    again = AcademicStore(tmp_path / "a.sqlite3")
    assert again.open() == len(MIGRATIONS)
    tables = {r[0] for r in again.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"profesores", "grupos", "replies", "outbox"} <= tables
    again.close()


def open_version(path: str, start: Any) -> int:
    """In another process: open the store once every opener is ready; its schema version."""
    start.wait(timeout=30)
    store = AcademicStore(Path(path))
    try:
        return store.open()
    finally:
        store.close()


def test_services_started_together_on_a_new_file_all_open_it(tmp_path: Path) -> None:
    # Two services started at once (as the RPC tests do) once failed one in three times: SQLite
    # answered the second one's switch to WAL with "database is locked" without waiting.
    openers = 3
    with multiprocessing.Manager() as manager, multiprocessing.Pool(openers) as pool:
        for round_ in range(10):
            start = manager.Barrier(openers)
            path = str(tmp_path / f"new-{round_}.sqlite3")
            versions = pool.starmap(open_version, [(path, start)] * openers)
            assert versions == [len(MIGRATIONS)] * openers, round_


def test_a_database_of_an_older_version_is_brought_up_to_date_keeping_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO profesores (nombre, apellidos, email, created_at, updated_at) "
        "VALUES ('A', 'B', 'a@b.mx', 'x', 'x')"
    )
    conn.commit()
    conn.close()
    store = AcademicStore(path)
    assert store.open() == len(MIGRATIONS)
    assert schema_version(store.conn) == len(MIGRATIONS)
    assert store.list_page(PROFESOR)["total"] == 1
    store.close()


async def test_two_services_on_one_file_never_both_win_a_conflicting_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite3"
    a, b = (
        AcademicService(AcademicStore(path), Recorder()),
        AcademicService(AcademicStore(path), Recorder()),
    )
    await a.start()
    await b.start()
    try:
        results = await asyncio.gather(
            *(s.execute("profesor.create", {"data": profesor(1)}) for s in (a, b, a, b)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, dict) for r in results) == 1
        assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
        record = next(r for r in results if isinstance(r, dict))
        edits = await asyncio.gather(
            *(
                s.execute(
                    "profesor.patch",
                    {"id": record["id"], "data": {"nombre": f"N{i}"}, "if_version": 1},
                )
                for i, s in enumerate((a, b, a, b))
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(r, dict) for r in edits) == 1
        assert all(isinstance(r, Stale) for r in edits if not isinstance(r, dict))
        final = await b.execute("profesor.get", {"id": record["id"]})
        assert final["version"] == 2
    finally:
        await a.stop()
        await b.stop()


async def test_a_repeated_request_id_answers_as_before_and_applies_once(tmp_path: Path) -> None:
    events = Recorder()
    service = AcademicService(AcademicStore(tmp_path / "a.sqlite3"), events)
    await service.start()
    try:
        first = await service.execute(
            "grupo.create",
            {"data": {"clave": "g-1", "materia": "M", "periodo": "2025-1", "cupo": 5}},
            "req-1",
        )
        again = await service.execute(
            "grupo.create",
            {"data": {"clave": "g-1", "materia": "M", "periodo": "2025-1", "cupo": 5}},
            "req-1",
        )
        assert first == again and first["clave"] == "G-1"
        await service.flush()
        assert [k for k, _ in events.events] == ["grupo.created"]
        assert (await service.execute("grupo.list", {}))["total"] == 1
    finally:
        await service.stop()


async def test_events_not_published_stay_in_the_outbox_until_they_are(tmp_path: Path) -> None:
    events = Recorder()
    events.down = True
    store = AcademicStore(tmp_path / "a.sqlite3")
    service = AcademicService(store, events)
    await service.start()
    try:
        await service.execute("profesor.create", {"data": profesor(1)})
        await service.flush()
        assert events.events == []
        assert len(store.outbox(older_than_s=-1)) == 1
        events.down = False
        await service._publish(None)  # the sweep's step, without waiting for the sweep
        # Orphans are only those older than ORPHAN_AGE_S: this one is too young to take over.
        assert events.events == []
        pending = [seq for seq, _, _ in store.outbox(older_than_s=-1)]
        await service._publish(pending)
        assert [k for k, _ in events.events] == ["profesor.created"]
        assert store.outbox(older_than_s=-1) == []
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("command", "args", "status"),
    [
        ("profesor.drop", {}, 400),
        ("alumno.list", {}, 400),
        ("profesor.get", {"id": "x"}, 422),
        ("profesor.get", [], 422),
        ("profesor.create", {"data": "x"}, 422),
        ("profesor.list", {"per_page": 1000}, 422),
        (
            "grupo.create",
            {"data": {"clave": "a b", "materia": "M", "periodo": "1", "cupo": 1}},
            422,
        ),
        (
            "grupo.create",
            {"data": {"clave": "A", "materia": "M", "periodo": "1", "cupo": 501}},
            422,
        ),
    ],
)
async def test_the_service_refuses_bad_commands_itself(
    tmp_path: Path, command: str, args: Any, status: int
) -> None:
    service = AcademicService(AcademicStore(tmp_path / "a.sqlite3"), Recorder())
    await service.start()
    try:
        with pytest.raises(Exception) as caught:
            await service.execute(command, args)
        assert getattr(caught.value, "status_code", None) == status, caught.value
        if status == 422:
            assert isinstance(caught.value, Invalid) and caught.value.errors
    finally:
        await service.stop()


async def test_a_request_id_reused_for_another_request_is_another_request(tmp_path: Path) -> None:
    service = AcademicService(AcademicStore(tmp_path / "a.sqlite3"), Recorder())
    await service.start()
    try:
        first = await service.execute("profesor.create", {"data": profesor(1)}, "same-key")
        other = await service.execute("profesor.create", {"data": profesor(2)}, "same-key")
        assert other["id"] != first["id"] and other["email"] == "p2@x.mx"
    finally:
        await service.stop()
