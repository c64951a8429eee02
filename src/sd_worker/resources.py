"""Sampling the node's CPU, RAM and network for the worker's reports."""

from __future__ import annotations

import platform
import socket
import sys
import time

import psutil


def os_name() -> str:
    """This machine's operating system as a person would name it: "Windows 11", "macOS 14.5",
    "Debian GNU/Linux 12 (bookworm)"."""
    if sys.platform == "win32":
        # Windows 11 still reports version 10.0; its build numbers start at 22000.
        release, build = platform.release(), platform.version().rsplit(".", 1)[-1]
        if release == "10" and build.isdigit() and int(build) >= 22000:
            release = "11"
        return f"Windows {release}"
    if sys.platform == "darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    if sys.platform == "linux":
        try:
            return platform.freedesktop_os_release()["PRETTY_NAME"]
        except (OSError, KeyError):
            return f"Linux {platform.release()}"
    return f"{platform.system()} {platform.release()}".strip()


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
