"""Sampling the node's CPU, RAM and network for the worker's reports."""

from __future__ import annotations

import socket
import time

import psutil


class ResourceSampler:
    """CPU % and RAM % of the node, and network MB/s (in + out) since the previous sample."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._net_bytes = self._net_total()
        self._net_at = time.monotonic()

    @staticmethod
    def _net_total() -> int:
        counters = psutil.net_io_counters()
        return int(counters.bytes_sent + counters.bytes_recv) if counters else 0

    def sample(self) -> tuple[float, float, float]:
        """(cpu %, ram %, net MB/s)."""
        now, total = time.monotonic(), self._net_total()
        elapsed = max(now - self._net_at, 1e-3)
        net_mbps = max(0, total - self._net_bytes) / elapsed / 1e6
        self._net_bytes, self._net_at = total, now
        return psutil.cpu_percent(interval=None), psutil.virtual_memory().percent, net_mbps


def ip_towards(host: str, port: int = 80) -> str:
    """The local address used to reach `host` (the Tailscale IP when the coordinator is on it)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))  # UDP: no packet is sent
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
