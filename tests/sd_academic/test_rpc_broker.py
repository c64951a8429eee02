"""The REST layer and the academic service as separate processes over the real RabbitMQ:
request/reply, 503/504 when the service is away or stuck, a restart in the middle of requests,
two services at once, and every change on the topic exchange. Unique queue and exchange names
per test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from support.api import asgi_client, make_settings, running_app
from support.broker import AMQP_URL, delete_queue_and_exchange_sync
from support.cluster import console_script

pytestmark = pytest.mark.e2e

TIMEOUT_S = 3.0


@dataclass
class Names:
    queue: str
    exchange: str


@pytest.fixture
def names(rabbitmq: None) -> Iterator[Names]:
    """A request queue and an events exchange no other test uses, deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    n = Names(f"sdtest-academico-{tag}.rpc", f"sdtest-academico-{tag}.events")
    yield n
    delete_queue_and_exchange_sync(n.queue, n.exchange)


@dataclass
class Services:
    """`sd-academic` processes sharing one DATA_DIR."""

    root: Path
    names: Names
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.root / f"academic-{len(self.procs)}.log").open("ab")
        env = {
            **os.environ,
            "RABBIT_HOST": "127.0.0.1",
            "DATA_DIR": str(self.root / "data"),
            "ACADEMIC_QUEUE": self.names.queue,
            "ACADEMIC_EXCHANGE": self.names.exchange,
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [console_script("sd-academic")],
            env=env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.root.glob("academic-*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def services(tmp_path: Path, names: Names) -> Iterator[Services]:
    s = Services(tmp_path, names)
    try:
        yield s
    finally:
        s.stop()


async def consumers(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        return int(declared.declaration_result.consumer_count or 0)


async def wait_consumers(queue: str, count: int, services: Services, timeout_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await consumers(queue) != count:
        if loop.time() > deadline:
            raise AssertionError(f"{queue} never had {count} consumer(s)\n{services.logs()}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def coordinator(
    tmp_path: Path, queue_name: str, names: Names, **over: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process coordinator on the broker whose academic commands go to `names.queue`."""
    settings = make_settings(
        tmp_path / "coordinator",
        rabbit_host="127.0.0.1",
        queue_name=queue_name,
        cluster_token="tok",
        academic_queue=names.queue,
        academic_exchange=names.exchange,
        **{"academic_in_process": False, "academic_timeout_s": TIMEOUT_S, **over},
    )
    async with running_app(settings) as app, asgi_client(app) as client:
        yield client


def profesor(n: int) -> dict[str, Any]:
    return {"nombre": f"P{n}", "apellidos": "Prueba", "email": f"p{n}@escuela.mx"}


async def test_rest_commands_reach_a_separate_service_and_its_events_the_exchange(
    tmp_path: Path, queue_name: str, names: Names, services: Services
) -> None:
    services.start()
    await wait_consumers(names.queue, 1, services)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, coordinator(tmp_path, queue_name, names) as client:
        # Any component may bind to the exchange: here, a queue of the test's own.
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        mine = await channel.declare_queue(exclusive=True)
        await mine.bind(exchange, "profesor.*")
        created = await client.post("/profesores", json=profesor(1))
        assert created.status_code == 201, created.text
        p = created.json()
        assert (await client.get(f"/profesores/{p['id']}")).json() == p
        dup = await client.post("/profesores", json=profesor(1))
        assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "email"
        bad = await client.post(
            "/grupos",
            json={"clave": "A", "materia": "M", "periodo": "1", "cupo": 1, "profesor_id": 999},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "profesor_id"
        message = await mine.get(timeout=5, fail=True)
        assert message is not None and message.routing_key == "profesor.created"
        assert orjson.loads(message.body)["data"]["email"] == "p1@escuela.mx"
    data = tmp_path / "data" / "academico.sqlite3"
    assert data.is_file(), "the service, not the coordinator, owns the data"
    assert not (tmp_path / "coordinator" / "academico.sqlite3").exists()


async def test_with_no_service_running_a_command_answers_503_saying_what_to_start(
    tmp_path: Path, queue_name: str, names: Names
) -> None:
    async with coordinator(tmp_path, queue_name, names) as client:
        response = await client.post("/profesores", json=profesor(1))
    assert response.status_code == 503
    assert "sd-academic" in response.json()["detail"]


async def test_a_stuck_service_gives_504_and_never_applies_the_command_late(
    tmp_path: Path, queue_name: str, names: Names, services: Services
) -> None:
    proc = services.start()
    await wait_consumers(names.queue, 1, services)
    async with coordinator(tmp_path, queue_name, names) as client:
        proc.send_signal(signal.SIGSTOP)
        try:
            response = await client.post("/profesores", json=profesor(1))
        finally:
            proc.send_signal(signal.SIGCONT)
        assert response.status_code == 504, response.text
        assert "Idempotency-Key" in response.json()["detail"]
        await asyncio.sleep(1.5)  # the woken service sees the command, past its deadline
        listed = await client.get("/profesores")
        assert listed.status_code == 200 and listed.json()["total"] == 0, services.logs()
    assert "dropped a command its caller stopped waiting" in services.logs()


@pytest.mark.parametrize("down_s", [0.5, TIMEOUT_S + 1], ids=["quick restart", "slow restart"])
async def test_a_service_restarted_mid_requests_loses_nothing_and_applies_each_once(
    tmp_path: Path, queue_name: str, names: Names, services: Services, down_s: float
) -> None:
    first = services.start()
    await wait_consumers(names.queue, 1, services)
    loop = asyncio.get_running_loop()
    killed_at: list[float] = []
    spans: list[tuple[float, float]] = []
    in_flight = 0
    sending = asyncio.Event()  # set while some request is in flight
    async with coordinator(tmp_path, queue_name, names) as client:

        async def create(n: int) -> httpx.Response:
            nonlocal in_flight
            sent = loop.time()
            in_flight += 1
            sending.set()
            try:
                answer = await client.post(
                    "/profesores", json=profesor(n), headers={"Idempotency-Key": f"alta-{n}"}
                )
            finally:
                in_flight -= 1
                if not in_flight:
                    sending.clear()
            spans.append((sent, loop.time()))
            return answer

        async def load() -> list[httpx.Response]:
            # Waves of 6 until well after the restart, so that some are in flight at the kill.
            answers: list[httpx.Response] = []
            while not killed_at or loop.time() < killed_at[0] + down_s + 1 or len(answers) < 30:
                wave = range(len(answers), len(answers) + 6)
                answers += await asyncio.gather(*(create(n) for n in wave))
            return answers

        async def restart() -> None:
            await asyncio.sleep(0.5)
            while not in_flight:  # not in the moment between two waves
                await sending.wait()
            first.send_signal(signal.SIGKILL)
            killed_at.append(loop.time())
            await asyncio.to_thread(first.wait)
            await asyncio.sleep(down_s)
            services.start()

        answers, _ = await asyncio.gather(load(), restart())
        total = len(answers)
        assert any(sent < killed_at[0] < done for sent, done in spans), "none in flight"
        codes = [a.status_code for a in answers]
        if down_s > TIMEOUT_S:
            assert 503 in codes, codes  # nobody consumed the queue for longer than the timeout
        assert set(codes) <= {201, 503, 504}, [a.text for a in answers if a.status_code >= 400]
        for a in answers:
            if a.status_code != 201:
                assert a.json()["detail"], a.text
        await wait_consumers(names.queue, 1, services)
        # Whoever got no answer sends the same request again: applied once, never twice.
        for n, a in enumerate(answers):
            if a.status_code != 201:
                again = await create(n)
                assert again.status_code == 201, again.text
        items: list[dict[str, Any]] = []
        for page in range(1, total // 100 + 2):
            listed = await client.get("/profesores", params={"per_page": 100, "page": page})
            items += listed.json()["items"]
        assert listed.json()["total"] == total
        assert sorted(p["email"] for p in items) == sorted(f"p{n}@escuela.mx" for n in range(total))
        assert all(p["version"] == 1 for p in items)


async def test_two_services_at_once_never_both_apply_conflicting_writes(
    tmp_path: Path, queue_name: str, names: Names, services: Services
) -> None:
    services.start()
    services.start()
    await wait_consumers(names.queue, 2, services)
    async with coordinator(tmp_path, queue_name, names) as client:
        p = (await client.post("/profesores", json=profesor(1))).json()
        dup = await asyncio.gather(
            *(client.post("/profesores", json=profesor(2)) for _ in range(10))
        )
        assert sorted(r.status_code for r in dup) == [201] + [409] * 9
        edits = await asyncio.gather(
            *(
                client.patch(
                    f"/profesores/{p['id']}",
                    json={"departamento": f"D{i}"},
                    headers={"If-Match": '"1"'},
                )
                for i in range(10)
            )
        )
        assert sorted(r.status_code for r in edits) == [200] + [412] * 9
        winner = next(r.json() for r in edits if r.status_code == 200)
        now = (await client.get(f"/profesores/{p['id']}")).json()
        assert now["departamento"] == winner["departamento"] and now["version"] == 2


async def test_by_default_the_coordinator_runs_the_service_itself_over_rabbitmq(
    tmp_path: Path, queue_name: str, names: Names
) -> None:
    async with coordinator(tmp_path, queue_name, names, academic_in_process=True) as client:
        assert await consumers(names.queue) == 1
        created = await client.post(
            "/grupos", json={"clave": "ISC-3A", "materia": "Redes", "periodo": "2025-1", "cupo": 30}
        )
        assert created.status_code == 201, created.text
        assert (await client.get("/grupos", params={"q": "isc"})).json()["total"] == 1
    assert (tmp_path / "coordinator" / "academico.sqlite3").is_file()


async def test_an_import_of_thousands_of_rows_publishes_an_event_for_each(
    tmp_path: Path, queue_name: str, names: Names, services: Services
) -> None:
    services.start()
    await wait_consumers(names.queue, 1, services)
    rows = 2000
    text = "nombre,apellidos,email\n" + "".join(f"N{n},A,n{n}@x.mx\n" for n in range(rows))
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, coordinator(tmp_path, queue_name, names, academic_timeout_s=60) as c:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        mine = await channel.declare_queue(exclusive=True)
        await mine.bind(exchange, "#")
        started = asyncio.get_running_loop().time()
        response = await c.post("/profesores/import", content=text.encode())
        elapsed = asyncio.get_running_loop().time() - started
        assert response.status_code == 200, response.text
        assert response.json()["created"] == rows
        print(f"import of {rows} rows answered in {elapsed:.2f} s")
        received = 0
        deadline = asyncio.get_running_loop().time() + 30
        while received < rows and asyncio.get_running_loop().time() < deadline:
            message = await mine.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
            else:
                received += 1
        assert received == rows


async def test_the_service_answers_malformed_commands_with_an_error_and_keeps_serving(
    tmp_path: Path, names: Names, services: Services
) -> None:
    services.start()
    await wait_consumers(names.queue, 1, services)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)

        async def ask(body: bytes, reply: bool = True) -> dict[str, Any] | None:
            correlation_id = uuid.uuid4().hex
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body, correlation_id=correlation_id, reply_to=replies.name if reply else None
                ),
                routing_key=names.queue,
            )
            if not reply:
                return None
            for _ in range(100):  # basic.get does not wait: poll for up to 10 s
                message = await replies.get(no_ack=True, fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.1)
            assert message is not None and message.correlation_id == correlation_id
            return dict(orjson.loads(message.body))

        assert await ask(b"not json") == {
            "ok": False,
            "error": {"status": 400, "detail": "command is not JSON"},
        }
        await ask(b'{"command": "profesor.create"}', reply=False)  # no reply_to: dropped
        unknown = await ask(b'{"command": "profesor.drop", "args": {}}')
        assert unknown is not None and unknown["error"]["status"] == 400
        bad = await ask(orjson.dumps({"command": "profesor.create", "args": {"data": {}}}))
        assert bad is not None and bad["error"]["status"] == 422
        assert {e["field"] for e in bad["error"]["errors"]} == {"nombre", "apellidos", "email"}
        good = await ask(orjson.dumps({"command": "profesor.list", "args": {}}))
        assert good == {"ok": True, "result": {"items": [], "total": 0, "page": 1, "per_page": 20}}
