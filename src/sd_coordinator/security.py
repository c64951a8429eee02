"""Bearer-token checks: CLUSTER_TOKEN for worker endpoints, optional API_TOKEN for users."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from sd_common.settings import LOOPBACK_HOSTS
from sd_coordinator.errors import Forbidden, Unauthorized


def listens_beyond_loopback(host: str) -> bool:
    """True unless `host` is a loopback address."""
    if host in LOOPBACK_HOSTS:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def presented_token(request: Request, *, in_query: bool = False) -> str | None:
    """The token from `Authorization: Bearer …`, or with `in_query` from `?token=`: only where
    a browser cannot send a header (EventSource, <img>, a download link), since a URL ends up
    in histories, logs and Referer headers."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("token") if in_query else None


def token_matches(presented: str | None, *expected: str | None) -> bool:
    """Constant-time comparison against any configured token."""
    if presented is None:
        return False
    given = presented.encode()
    return any(e is not None and hmac.compare_digest(given, e.encode()) for e in expected)


def check_cluster(request: Request, cluster_token: str | None, *, exposed: bool) -> None:
    """Worker endpoints: the cluster token when one is set. Without one they are open only on a
    coordinator that listens on loopback; `exposed` (listening beyond it) closes them."""
    if cluster_token is None:
        if exposed:
            # sd-coordinator refuses to start like this with RabbitMQ; in embedded mode no remote
            # worker can exist, so an open endpoint would only let the network forge results.
            raise Forbidden(
                "worker endpoints are closed: this coordinator listens beyond loopback without "
                "CLUSTER_TOKEN; set CLUSTER_TOKEN on the coordinator and every worker"
            )
        return
    if not token_matches(presented_token(request), cluster_token):
        raise Unauthorized("worker endpoint: send Authorization: Bearer <CLUSTER_TOKEN>")


def check_user(
    request: Request, api_token: str | None, cluster_token: str | None, *, in_query: bool = False
) -> None:
    """User API: API_TOKEN when one is set (workers may read with the cluster token);
    `in_query` also takes it from `?token=` (see `presented_token`)."""
    if api_token is not None and not token_matches(
        presented_token(request, in_query=in_query), api_token, cluster_token
    ):
        raise Unauthorized("this API needs a token: send Authorization: Bearer <API_TOKEN>")
