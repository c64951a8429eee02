"""The academic service: owns the SQLite data, runs commands (`profesor.create`, `grupo.list`,
…) and publishes each change once it is committed. The RPC server and the in-process client
call `execute`; nothing else touches the data."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from sd_academic import csvio, importer, records
from sd_academic.errors import AcademicError, Invalid
from sd_academic.kinds import GRUPO, KINDS, PROFESOR, Kind
from sd_academic.models import FULL, PARTIAL, parse
from sd_academic.store import AcademicStore

log = logging.getLogger("sd.academic")

T = TypeVar("T")
SWEEP_INTERVAL_S = 5.0
# Events a crashed service committed but never published; younger ones are still in flight.
ORPHAN_AGE_S = 10.0
PUBLISH_BATCH = 256


class EventPublisher(Protocol):
    """Where committed changes go: the topic exchange, or the in-process hub."""

    async def publish(self, routing_key: str, body: dict[str, Any]) -> None: ...


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListArgs(_Args):
    q: str = Field("", max_length=100)
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(20, ge=1, le=100)
    profesor_id: int | None = Field(None, ge=1, le=2**62)
    periodo: str | None = Field(None, max_length=20)
    activo: bool | None = None


class IdArgs(_Args):
    id: int = Field(ge=1, le=2**62)


class WriteArgs(_Args):
    id: int | None = Field(None, ge=1, le=2**62)
    data: dict[str, Any] = Field(default_factory=dict)
    if_version: int | None = Field(None, ge=0)
    unassign: bool = False


class ImportArgs(_Args):
    csv: str = Field(max_length=8 * 1024 * 1024)


class AcademicService:
    """Commands on profesores and grupos over one SQLite file (see the module docstring)."""

    def __init__(self, store: AcademicStore, publisher: EventPublisher) -> None:
        self.store = store
        self.publisher = publisher
        self._db: ThreadPoolExecutor | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._publishing = asyncio.Lock()
        self._publishes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the database (applying migrations) and publish what a crash left unpublished."""
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sd-academic-db")
        version = await self._run(self.store.open)
        log.info("academic records in %s (schema version %d)", self.store.path, version)
        self._sweeper = asyncio.create_task(self._sweep(), name="academic-outbox-sweep")

    async def stop(self) -> None:
        """Stop sweeping, let events in flight go out, close the database (idempotent)."""
        await self.flush()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._db is not None:
            await self._run(self.store.close)
            self._db.shutdown(wait=True)
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._db is None:
            raise RuntimeError("AcademicService used before start()")
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # -- commands --------------------------------------------------------------------------

    async def execute(self, command: str, args: Any, request_id: str | None = None) -> Any:
        """Run one command; AcademicError says why it was refused. A write with a request id
        seen before answers as it did then and changes nothing."""
        kind_name, _, verb = str(command).partition(".")
        kind = KINDS.get(kind_name)
        handler = getattr(self, f"_{verb}", None) if verb.isidentifier() else None
        if kind is None or handler is None or verb not in VERBS:
            raise AcademicError(f"unknown command {command!r}", status=400)
        if not isinstance(args, dict):
            raise Invalid.field("args", "must be an object")
        if request_id is not None:
            # A key names one request: reused with another command or other arguments, it is
            # another request (never the stored answer of a different one).
            request_id = f"{request_id[:200]}:{_fingerprint(command, args)}"
        result: Any = await handler(kind, args, request_id)
        return result

    async def _list(self, kind: Kind, args: dict[str, Any], _: str | None) -> Any:
        a = parse(ListArgs, args)
        filters: dict[str, Any] = (
            {"profesor_id": a.profesor_id, "periodo": a.periodo}
            if kind is GRUPO
            else {"activo": None if a.activo is None else int(a.activo)}
        )
        return await self._run(
            lambda: self.store.list_page(
                kind, q=a.q.strip(), page=a.page, per_page=a.per_page, filters=filters
            )
        )

    async def _get(self, kind: Kind, args: dict[str, Any], _: str | None) -> Any:
        return await self._run(self.store.get, kind, parse(IdArgs, args).id)

    async def _grupos(self, kind: Kind, args: dict[str, Any], _: str | None) -> Any:
        if kind is not PROFESOR:
            raise AcademicError("unknown command 'grupo.grupos'", status=400)
        a = parse(ListArgs, args)
        if a.profesor_id is None:
            raise Invalid.field("profesor_id", "Field required")
        await self._run(self.store.get, PROFESOR, a.profesor_id)
        return await self._run(
            lambda: self.store.list_page(
                GRUPO,
                q=a.q,
                page=a.page,
                per_page=a.per_page,
                filters={"profesor_id": a.profesor_id, "periodo": a.periodo},
            )
        )

    async def _create(self, kind: Kind, args: dict[str, Any], request_id: str | None) -> Any:
        data = parse(FULL[kind.name], parse(WriteArgs, args).data).model_dump()
        return await self._write(request_id, lambda c, e: records.create(c, e, kind, data))

    async def _replace(self, kind: Kind, args: dict[str, Any], request_id: str | None) -> Any:
        a = parse(WriteArgs, args)
        record_id = _need_id(a)
        data = parse(FULL[kind.name], a.data).model_dump()
        return await self._write(
            request_id, lambda c, e: records.update(c, e, kind, record_id, data, a.if_version)
        )

    async def _patch(self, kind: Kind, args: dict[str, Any], request_id: str | None) -> Any:
        a = parse(WriteArgs, args)
        record_id = _need_id(a)
        data = parse(PARTIAL[kind.name], a.data).model_dump(exclude_unset=True)
        for field, value in data.items():
            if value is None and field != "profesor_id":
                raise Invalid.field(field, "may not be null")
        return await self._write(
            request_id, lambda c, e: records.update(c, e, kind, record_id, data, a.if_version)
        )

    async def _delete(self, kind: Kind, args: dict[str, Any], request_id: str | None) -> Any:
        a = parse(WriteArgs, args)
        record_id = _need_id(a)
        return await self._write(
            request_id, lambda c, e: records.delete(c, e, kind, record_id, a.if_version, a.unassign)
        )

    async def _export(self, kind: Kind, args: dict[str, Any], _: str | None) -> Any:
        def export() -> str:
            emails = {p["id"]: p["email"] for p in self.store.all(PROFESOR)}
            return csvio.write_rows(kind.name, self.store.all(kind), emails)

        return await self._run(export)

    async def _import(self, kind: Kind, args: dict[str, Any], request_id: str | None) -> Any:
        rows = csvio.read_rows(kind.name, parse(ImportArgs, args).csv)
        return await self._write(request_id, lambda c, e: importer.import_rows(c, e, kind, rows))

    # -- writes and their events -----------------------------------------------------------

    async def _write(self, request_id: str | None, change: Callable[..., Any]) -> Any:
        result, seqs, replayed = await self._run(self.store.write, request_id, change)
        if replayed:
            log.info("request %s was applied before: answering as then", request_id)
        if seqs:
            # Answer now; the events are in the outbox and go out in commit order.
            task = asyncio.create_task(self._publish(seqs), name="academic-publish")
            self._publishes.add(task)
            task.add_done_callback(self._publishes.discard)
        return result

    async def flush(self) -> None:
        """Wait until the events of every answered command went out (or failed to)."""
        while self._publishes:
            await asyncio.gather(*self._publishes, return_exceptions=True)

    async def _publish(self, seqs: list[int] | None = None) -> None:
        """Publish outbox events (those of `seqs`, or orphans) and forget the confirmed ones."""
        async with self._publishing:
            pending = await self._run(lambda: self.store.outbox(seqs, older_than_s=ORPHAN_AGE_S))
            done: list[int] = []
            try:
                # A batch's publishes wait for their confirms together (an import of thousands
                # of rows must still answer within the caller's timeout), batches in order.
                for start in range(0, len(pending), PUBLISH_BATCH):
                    batch = pending[start : start + PUBLISH_BATCH]
                    results = await asyncio.gather(
                        *(self.publisher.publish(key, body) for _, key, body in batch),
                        return_exceptions=True,
                    )
                    done += [
                        seq
                        for (seq, _, _), r in zip(batch, results, strict=True)
                        if not isinstance(r, BaseException)
                    ]
                    failed = [r for r in results if isinstance(r, BaseException)]
                    if failed:
                        log.warning(
                            "%d academic event(s) not published yet (%s); retrying in %.0f s",
                            len(failed),
                            failed[0] or type(failed[0]).__name__,
                            SWEEP_INTERVAL_S,
                        )
                        break
            finally:
                await self._run(self.store.published, done)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self._publish(None)
            except Exception:
                log.exception("academic outbox sweep failed")


VERBS = frozenset(
    {"list", "get", "grupos", "create", "replace", "patch", "delete", "import", "export"}
)


def _fingerprint(command: str, args: dict[str, Any]) -> str:
    try:
        canonical = orjson.dumps([command, args], option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = repr((command, args)).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


def _need_id(args: WriteArgs) -> int:
    if args.id is None:
        raise Invalid.field("id", "Field required")
    return args.id
