"""Who may talk to this coordinator from a browser (pure ASGI middleware).

- Host: only names that are this coordinator's (localhost, its addresses, COORDINATOR_IP, its
  host name, ALLOWED_HOSTS) are answered, so a DNS-rebinding page that points its own name at
  127.0.0.1 reads nothing.
- State-changing requests (anything but GET/HEAD/OPTIONS) that a browser marks as sent by
  another site (Sec-Fetch-Site, or an Origin that is not this coordinator's) are refused,
  unless the origin is in CORS_ORIGINS. Clients that are not browsers (curl, sd-worker) send
  neither header and are not affected. This holds without API_TOKEN too.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import orjson
import psutil
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("sd.coordinator.guard")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNSPECIFIED = frozenset({"0.0.0.0", "::"})
# A name that is not ours re-reads the machine's addresses (an interface that came up since,
# such as a VPN or a new veth), at most once a second however many requests miss.
ADDRESSES_TTL_S = 1.0


def host_name(host: str) -> str:
    """The name in a Host header or URL netloc, without port or brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def machine_addresses() -> list[str]:
    """Every address of this machine's interfaces."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs]


def _canonical(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        return name


class RequestGuard:
    """Refuse foreign Host names (400) and cross-site state-changing requests (403)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Iterable[str],
        cors_origins: Iterable[str],
        own_addresses: Callable[[], Iterable[str]],
    ) -> None:
        self.app = app
        # An unspecified address (0.0.0.0) is a listening wildcard, never a name to answer:
        # browsers send requests for http://0.0.0.0 to this machine.
        hosts = {_canonical(host_name(h)) for h in allowed_hosts if h.strip()} - UNSPECIFIED
        self.any_host = "*" in hosts
        self.fixed_hosts = (hosts - {"*"}) | LOCAL_NAMES | {socket.gethostname().lower()}
        self.cors_origins = {o.rstrip("/").lower() for o in cors_origins}
        self.own_addresses = own_addresses
        self._addresses: frozenset[str] = frozenset()
        self._addresses_at = float("-inf")

    def _host_allowed(self, name: str) -> bool:
        if self.any_host or not name:  # no Host at all: not a browser, not rebinding
            return True
        name = _canonical(name)
        if name in self.fixed_hosts or name in self._addresses:
            return True
        # The machine's addresses change (a VPN comes up): look again, at most every few s.
        now = time.monotonic()
        if now - self._addresses_at > ADDRESSES_TTL_S:
            self._addresses_at = now
            self._addresses = frozenset(_canonical(a) for a in self.own_addresses()) - UNSPECIFIED
        return name in self._addresses

    def _cross_site(self, headers: Headers, host: str) -> str | None:
        """Why this state-changing request is refused, or None to let it through."""
        origin = headers.get("origin")
        allowed = origin is not None and origin.rstrip("/").lower() in self.cors_origins
        site = headers.get("sec-fetch-site")
        if site is not None:
            if site in ("same-origin", "none") or allowed:
                return None
            return f"a {site} request from {origin or 'another site'}"
        if origin is None or allowed:
            return None
        if origin != "null" and urlsplit(origin).netloc.lower() == host.lower():
            return None
        return f"a request from the origin {origin}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self._host_allowed(host_name(host)):
            await _refuse(
                send,
                400,
                (
                    f"this coordinator does not answer to the host name {host_name(host)!r}; if "
                    "that is how you reach it, add it to ALLOWED_HOSTS"
                ),
            )
            return
        if scope["method"] not in SAFE_METHODS:
            why = self._cross_site(headers, host)
            if why is not None:
                log.warning("refused %s %s: %s", scope["method"], scope["path"], why)
                await _refuse(
                    send,
                    403,
                    (
                        f"cross-site request refused ({why}); a page of another site may not "
                        "change this coordinator. To allow a site you trust, add its origin to "
                        "CORS_ORIGINS"
                    ),
                )
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
