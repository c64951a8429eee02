"""`sd-worker --check`: every hop a worker needs, tested from this machine, one line each.

Hops in order, each skipped when one it depends on failed: names resolve, the Tailscale
address is ours to use, TCP to RabbitMQ, RabbitMQ login and permissions, the work queue, TCP
to the coordinator, the coordinator answers as one, the cluster token, the clock, the
coordinator's view of this node (its address, and whether NODE_NAME is taken).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import time
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import psutil

from sd_common import topology
from sd_common.settings import Settings
from sd_worker.resources import ip_towards
from sd_worker.transport import ChannelAccessRefused

TCP_TIMEOUT_S = 5.0
DISK_LOW_BYTES = 1 << 30  # below this, DATA_DIR's disk is worth a look
DISK_FULL_BYTES = 64 << 20  # below this, the input cache soon cannot take a photo
CLOCK_SKEW_MAX_S = 2.0
TAILNET = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Hop:
    """One checked hop: `ok`, `warn` (works, but look), `FAIL` (with its fix) or `skip`."""

    status: str
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The hop as one line of output."""
        fix = f" -> fix: {self.fix}" if self.fix else ""
        return f"{self.status:<4} {self.name:<18} {self.detail}{fix}"


class Checker:
    """Runs the hops in order; `hops` holds what each found."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.hops: list[Hop] = []

    def _add(self, status: str, name: str, detail: str, fix: str = "") -> bool:
        self.hops.append(Hop(status, name, detail, fix))
        return status in ("ok", "warn")

    def _skip(self, *names: str) -> None:
        for name in names:
            self._add("skip", name, "not tried: an earlier hop failed")

    async def run(self) -> list[Hop]:
        """Check every hop; the list of results in order."""
        s = self.s
        if s.rabbit_host is None:
            self._add(
                "FAIL",
                "settings",
                "RABBIT_HOST is not set",
                "set RABBIT_HOST to the broker's address (its Tailscale IP, 100.x.y.z)",
            )
            return self.hops
        self._disk()
        broker_ok = self._resolve("dns broker", s.rabbit_host, "RABBIT_HOST")
        coordinator_ok = self._resolve("dns coordinator", s.coordinator_ip, "COORDINATOR_IP")
        self._tailnet()
        if not broker_ok:
            self._skip("tcp broker", "broker login", "work queue")
        elif await self._tcp("tcp broker", s.rabbit_host, s.rabbit_port, broker=True):
            await self._amqp()
        else:
            self._skip("broker login", "work queue")
        after = ("coordinator", "cluster token", "clock", "seen as")
        if not coordinator_ok:
            self._skip("tcp coordinator", *after)
        elif await self._tcp("tcp coordinator", s.coordinator_ip, s.coordinator_port, broker=False):
            await self._coordinator()
        else:
            self._skip(*after)
        return self.hops

    # -- the hops ---------------------------------------------------------------------------

    def _disk(self) -> None:
        """Room on the disk of DATA_DIR (the input cache; a full one pauses the worker)."""
        folder = self.s.data_dir.absolute()
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # the worker creates DATA_DIR at its start
        try:
            free = shutil.disk_usage(probe).free
        except OSError as exc:
            self._add(
                "FAIL", "disk", f"DATA_DIR {folder}: {exc}", "set DATA_DIR to a folder of yours"
            )
            return
        room = f"{free / (1 << 30):.1f} GB free for DATA_DIR {folder}"
        fix = "free space there, or set DATA_DIR to a folder on a disk with room"
        if free < DISK_FULL_BYTES:
            self._add("FAIL", "disk", room, fix)
        elif free < DISK_LOW_BYTES:
            self._add("warn", "disk", room + " (a full disk pauses the worker)", fix)
        else:
            self._add("ok", "disk", room)

    def _resolve(self, hop: str, host: str, setting: str) -> bool:
        try:
            addresses = sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None)})
        except OSError as exc:
            return self._add(
                "FAIL",
                hop,
                f"{setting}={host!r} does not resolve ({exc})",
                f"use the machine's Tailscale IP (`tailscale ip -4` there) or its "
                f"MagicDNS name in {setting}",
            )
        loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
        if loopback:
            return self._add(
                "warn",
                hop,
                f"{setting}={host} is this machine",
                f"fine on the coordinator's machine; from any other, set {setting} "
                "to the coordinator's Tailscale IP",
            )
        return self._add("ok", hop, f"{host} -> {', '.join(addresses)}")

    def _tailnet(self) -> None:
        targets = [h for h in (self.s.rabbit_host or "", self.s.coordinator_ip) if _on_tailnet(h)]
        if not targets:
            return
        ours = [a for a in _own_addresses() if _on_tailnet(a)]
        if ours:
            self._add("ok", "tailscale", f"this machine is on the tailnet as {', '.join(ours)}")
        else:
            self._add(
                "FAIL",
                "tailscale",
                f"{targets[0]} is a Tailscale address, but this machine has none",
                "install Tailscale here and run `sudo tailscale up` with the same account",
            )

    async def _tcp(self, hop: str, host: str, port: int, *, broker: bool) -> bool:
        what = "RabbitMQ" if broker else "sd-coordinator"
        try:
            async with asyncio.timeout(TCP_TIMEOUT_S):
                _, writer = await asyncio.open_connection(host, port)
            writer.close()
        except ConnectionRefusedError:
            listen = (
                "RabbitMQ is not running there, or listens on localhost only "
                "(rabbitmq.conf: `listeners.tcp.default = 5672`; `ss -ltn` shows where)"
                if broker
                else "sd-coordinator is not running there, or listens on 127.0.0.1 only (it "
                "listens on 0.0.0.0 once RABBIT_HOST is set on it; or COORDINATOR_BIND=0.0.0.0)"
            )
            return self._add("FAIL", hop, f"{host}:{port} refused the connection", listen)
        except (TimeoutError, OSError) as exc:
            setting = "RABBIT_HOST/RABBIT_PORT" if broker else "COORDINATOR_IP/COORDINATOR_PORT"
            return self._add(
                "FAIL",
                hop,
                f"{host}:{port} unreachable ({str(exc) or 'no answer in 5 s'})",
                f"a firewall drops port {port} "
                f"(open it on {what}'s machine, or check Tailscale ACLs), or "
                f"{setting} is not its Tailscale IP",
            )
        return self._add("ok", hop, f"{host}:{port} accepts connections")

    async def _amqp(self) -> None:
        s = self.s
        try:
            connection = await aio_pika.connect(**topology.connection_options(s))
        except aio_pika.exceptions.ProbableAuthenticationError:
            self._add(
                "FAIL",
                "broker login",
                f"RabbitMQ refused user {s.rabbit_user!r}",
                "check RABBIT_USER/RABBIT_PASS; guest only logs in from localhost: on "
                "the broker run `rabbitmqctl add_user sd <password>` and "
                "`rabbitmqctl set_permissions -p / sd '.*' '.*' '.*'`",
            )
            return self._skip("work queue")
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            self._add(
                "FAIL",
                "broker login",
                f"AMQP handshake failed ({reason})",
                "is that port RabbitMQ's AMQP port (5672, or 5671 with RABBIT_TLS=true)?",
            )
            return self._skip("work queue")
        self._add("ok", "broker login", f"logged in as {s.rabbit_user!r} on vhost {s.rabbit_vhost}")
        try:
            async with connection:
                channel = await connection.channel()  # as the worker does, dead letters too
                queue = await topology.declare_work_queue(channel, s.queue_name, s.delivery_limit)
                result = queue.declaration_result
                self._add(
                    "ok",
                    "work queue",
                    f"{s.queue_name!r}: {result.message_count} ready, "
                    f"{result.consumer_count} consumer(s)",
                )
        except ChannelAccessRefused:
            self._add(
                "FAIL",
                "work queue",
                f"user {s.rabbit_user!r} may not use queue {s.queue_name!r}",
                f"`rabbitmqctl set_permissions -p {s.rabbit_vhost} "
                f"{s.rabbit_user} '.*' '.*' '.*'` on the broker",
            )
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            self._add(
                "FAIL",
                "work queue",
                f"queue {s.queue_name!r} exists with other arguments ({exc})",
                "use the coordinator's QUEUE_NAME and DELIVERY_LIMIT on this worker",
            )
        except Exception as exc:
            self._add(
                "FAIL",
                "work queue",
                f"could not declare {s.queue_name!r} ({str(exc) or type(exc).__name__})",
                "see the broker's log for the reason",
            )

    async def _coordinator(self) -> None:
        s = self.s
        headers = {"Authorization": f"Bearer {s.cluster_token}"} if s.cluster_token else {}
        timeout = aiohttp.ClientTimeout(total=10)
        url = f"{s.coordinator_url}/whoami"
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            try:
                sent = time.time()
                async with session.get(url, params={"name": s.node_name}) as response:
                    body: Any = await response.json(content_type=None)
                    status = response.status
                received = time.time()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self._add(
                    "FAIL",
                    "coordinator",
                    f"{s.coordinator_url} did not answer as "
                    f"sd-coordinator ({str(exc) or type(exc).__name__})",
                    "is COORDINATOR_PORT the coordinator's port (8000 by default)?",
                )
                return self._skip("cluster token", "clock", "seen as")
        if status == 401:
            self._add("ok", "coordinator", f"sd-coordinator at {s.coordinator_url}")
            self._add(
                "FAIL",
                "cluster token",
                "the coordinator refused this CLUSTER_TOKEN"
                if s.cluster_token
                else "the coordinator needs a CLUSTER_TOKEN",
                "set CLUSTER_TOKEN to the coordinator's value",
            )
            return self._skip("clock", "seen as")
        if status != 200 or not isinstance(body, dict) or "peer" not in body:
            self._add(
                "FAIL",
                "coordinator",
                f"{s.coordinator_url}/whoami answered {status}",
                "COORDINATOR_IP/COORDINATOR_PORT must point at an sd-coordinator of this version",
            )
            return self._skip("cluster token", "clock", "seen as")
        self._add(
            "ok",
            "coordinator",
            f"sd-coordinator at {s.coordinator_url}, queue {body.get('queue')!r}",
        )
        if body.get("queue") != s.queue_name:
            self._add(
                "FAIL",
                "work queue",
                f"the coordinator uses queue {body.get('queue')!r}, this worker {s.queue_name!r}",
                "set QUEUE_NAME to the coordinator's",
            )
        self._add("ok", "cluster token", "accepted" if s.cluster_token else "none needed")
        self._clock(float(body.get("server_time", 0)), sent, received)
        self._seen_as(str(body["peer"]), bool(body.get("name_in_use")))

    def _clock(self, server_time: float, sent: float, received: float) -> None:
        skew = server_time - (sent + received) / 2
        detail = f"{skew:+.2f} s from the coordinator's (round trip {received - sent:.3f} s)"
        if abs(skew) > CLOCK_SKEW_MAX_S:
            self._add(
                "warn",
                "clock",
                detail,
                "enable time sync on both machines "
                "(`timedatectl set-ntp true`): the dashboard's ages and times use them",
            )
        else:
            self._add("ok", "clock", detail)

    def _seen_as(self, peer: str, name_in_use: bool) -> None:
        ours = ip_towards(self.s.coordinator_ip, self.s.coordinator_port)
        if name_in_use:
            self._add(
                "FAIL",
                "seen as",
                f"a live worker already uses NODE_NAME={self.s.node_name!r}",
                "give this node its own NODE_NAME (or --name)",
            )
            return
        if peer == ours or ipaddress.ip_address(peer).is_loopback:
            self._add("ok", "seen as", f"{peer}, as {self.s.node_name!r}")
            return
        self._add(
            "warn",
            "seen as",
            f"the coordinator sees {peer}, this node reports {ours}",
            "a NAT or proxy sits between; to go over Tailscale, set COORDINATOR_IP to the "
            "coordinator's 100.x.y.z address",
        )


def _on_tailnet(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in TAILNET
    except ValueError:
        return False


def _own_addresses() -> list[str]:
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET
    ]


def run_check(settings: Settings) -> int:
    """Print one line per hop; 0 when every hop works, 1 otherwise."""
    hops = asyncio.run(Checker(settings).run())
    for hop in hops:
        print(hop.line(), flush=True)
    failed = [h for h in hops if h.status == "FAIL"]
    print(
        f"{len(failed)} hop(s) failed" if failed else "every hop works: start `sd-worker --async`"
    )
    return 1 if failed else 0
