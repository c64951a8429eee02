"""Worker hosts in network namespaces: each behind a veth link of its own, with added latency
(support.delay_proxy) and optional bandwidth limits (tc tbf), and no shared DATA_DIR.

    root namespace                               host namespace sd16-<run>-<n>
    coordinator :PORT ─┐                        ┌─ sd-worker (COORDINATOR_IP=10.16.r.a)
    RabbitMQ  :5672 ───┤ delay proxy on 10.16.r.a ══ veth (tbf, cut = link down) ══ 10.16.r.a+1
                       └─ (each byte +delay each way)

The broker and the coordinator see the proxy's loopback connections (so RabbitMQ's guest
works as in the rest of the suite); what crosses the veth is what a remote host would send.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.cluster import Cluster, console_script, free_port

PREFIX = "sd16"


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no `ip`, or no permission)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def probe() -> None:
    """Raise NamespacesUnavailable with the reason if a namespace cannot be made."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        raise NamespacesUnavailable("the `ip` and `tc` commands (iproute2) are not installed")
    if os.geteuid() != 0:
        raise NamespacesUnavailable("network namespaces need root (CI runs as root)")
    name = f"{PREFIX}-probe-{secrets.token_hex(3)}"
    made = ip("netns", "add", name, check=False)
    ip("netns", "del", name, check=False)
    if made.returncode != 0:
        raise NamespacesUnavailable(f"`ip netns add` failed: {made.stderr.strip()}")


@dataclass
class Host:
    """One namespace: `outside` is the root end of its veth (the proxy listens there)."""

    name: str
    netns: str
    veth: str  # root-side interface
    outside: str  # root-side address
    inside: str  # the host's address
    broker_port: int
    coordinator_port: int

    def tx_bytes(self) -> int:
        """Bytes sent into the host over its link so far."""
        return int(Path(f"/sys/class/net/{self.veth}/statistics/tx_bytes").read_text())

    def rx_bytes(self) -> int:
        """Bytes the host sent out over its link so far."""
        return int(Path(f"/sys/class/net/{self.veth}/statistics/rx_bytes").read_text())


class HostCluster(Cluster):
    """A coordinator and a broker in the root namespace, workers on hosts behind links."""

    def __init__(self, root: Path, *, queue: str, delay_ms: float = 20, **env: str) -> None:
        super().__init__(root, queue=queue, **env)
        self.delay_ms = delay_ms
        self.run = secrets.token_hex(3)
        self.subnet = 16 + secrets.randbelow(200)  # 10.16.<subnet>.x, a /30 per host
        self.hosts: dict[str, Host] = {}
        self.proxy: subprocess.Popen[str] | None = None

    def add_hosts(self, *names: str) -> None:
        """Make a namespace and link per host name, then start the delaying proxy."""
        for name in names:
            n = len(self.hosts)
            base = 4 * n
            host = Host(
                name=name,
                netns=f"{PREFIX}-{self.run}-{n}",
                veth=f"{PREFIX}{self.run}{n}",
                outside=f"10.16.{self.subnet}.{base + 1}",
                inside=f"10.16.{self.subnet}.{base + 2}",
                broker_port=free_port(),
                coordinator_port=free_port(),
            )
            self.hosts[name] = host  # first, so a failure below still cleans it up
            ip("netns", "add", host.netns)
            ip(
                "link",
                "add",
                host.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.netns,
            )
            ip("addr", "add", f"{host.outside}/30", "dev", host.veth)
            ip("link", "set", host.veth, "up")
            ip("-n", host.netns, "addr", "add", f"{host.inside}/30", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("-n", host.netns, "route", "add", "default", "via", host.outside)
        self._start_proxy()

    def _start_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(10)
        maps = []
        for host in self.hosts.values():
            maps.append(f"{host.outside}:{host.broker_port}=127.0.0.1:5672")
            maps.append(f"{host.outside}:{host.coordinator_port}=127.0.0.1:{self.port}")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "support.delay_proxy",
                "--delay-ms",
                str(self.delay_ms / 2),
                *maps,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proxy.stdout is not None
        line = self.proxy.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"delay proxy did not start: {line}{self.proxy.stdout.read()}")

    def start_host_worker(
        self, name: str, timeout_s: float = 60, *, cpus: str | None = None, **env: str
    ) -> None:
        """Start sd-worker on host `name`, reaching everything through its link only; with
        `cpus` (a `taskset -c` list) it runs on those cores alone, as on a machine that has
        only them (its pool gets one process per core)."""
        host = self.hosts[name]
        args = [
            "ip",
            "netns",
            "exec",
            host.netns,
            *(["taskset", "-c", cpus] if cpus is not None else []),
            console_script("sd-worker"),
            "--async",
            "--name",
            name,
        ]
        self._spawn(
            name,
            args,
            self.root / name,
            COORDINATOR_IP=host.outside,
            COORDINATOR_PORT=str(host.coordinator_port),
            RABBIT_HOST=host.outside,
            RABBIT_PORT=str(host.broker_port),
            SHARED_STORAGE="off",
            NODE_NAME=name,
            **env,
        )
        self.wait_until(
            lambda: self.worker(name).get("alive") is True, timeout_s, f"worker {name} to register"
        )

    def cut(self, name: str) -> None:
        """Cut host `name`'s link: packets vanish both ways, connections stay open."""
        ip("link", "set", self.hosts[name].veth, "down")

    def heal(self, name: str) -> None:
        """Bring host `name`'s link back."""
        ip("link", "set", self.hosts[name].veth, "up")

    def limit(self, name: str, mbit: float) -> None:
        """Limit host `name`'s link to `mbit` Mbit/s each way (tc tbf)."""
        host = self.hosts[name]
        tbf = ["tbf", "rate", f"{mbit}mbit", "burst", "32kb", "latency", "400ms"]
        subprocess.run(["tc", "qdisc", "replace", "dev", host.veth, "root", *tbf], check=True)
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                "tc",
                "qdisc",
                "replace",
                "dev",
                "eth0",
                "root",
                *tbf,
            ],
            check=True,
        )

    def stop(self) -> None:
        """Stop every process, the proxy, and remove every namespace and link made."""
        try:
            super().stop()
        finally:
            if self.proxy is not None and self.proxy.poll() is None:
                self.proxy.send_signal(signal.SIGTERM)
                try:
                    self.proxy.wait(10)
                except subprocess.TimeoutExpired:
                    self.proxy.kill()
            for host in self.hosts.values():
                ip("netns", "del", host.netns, check=False)  # takes its veth pair with it
                ip("link", "del", host.veth, check=False)
