"""Dependencies shared by the routers, and the token gates that run before a body is read."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from sd_coordinator.lifespan import Services
from sd_coordinator.security import check_cluster, check_user, listens_beyond_loopback


def services_of(request: Request) -> Services:
    """The app's services."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The app's services, as a dependency. A coroutine on purpose: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hop on every request."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def require_user(request: Request) -> None:
    """Gate for the user API and the dashboard's data."""
    s = services_of(request).settings
    check_user(request, s.api_token, s.cluster_token)


def require_user_or_query(request: Request) -> None:
    """Gate for what a browser loads without headers: the event stream, images, zip files."""
    s = services_of(request).settings
    check_user(request, s.api_token, s.cluster_token, in_query=True)


def require_worker(request: Request) -> None:
    """Gate for worker endpoints."""
    s = services_of(request).settings
    check_cluster(request, s.cluster_token, exposed=listens_beyond_loopback(s.bind_host))


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _gated(gate: Callable[[Request], None]) -> type[APIRoute]:
    # FastAPI reads and parses a body before it solves dependencies, so a gate written as a
    # dependency would let anyone without the token make us parse (or spool) a whole upload.
    class GatedRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def gate_then_handle(request: Request) -> Response:
                gate(request)
                return await handler(request)

            return gate_then_handle

    return GatedRoute


UserRoute = _gated(require_user)
"""Route class of the user API: API_TOKEN (when set) is checked before anything else."""

WorkerRoute = _gated(require_worker)
"""Route class of worker endpoints: CLUSTER_TOKEN (when set) is checked before anything else."""

BrowserLoadRoute = _gated(require_user_or_query)
"""Route class of user API resources a browser loads without headers (EventSource, <img>, a
download link): API_TOKEN from the header or from `?token=`."""
