"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sd_coordinator.lifespan import Services
from sd_coordinator.security import check_cluster, check_user


def get_services(request: Request) -> Services:
    """The app's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_user(request: Request, services: ServicesDep) -> None:
    """Gate for the user API and the dashboard's data."""
    s = services.settings
    check_user(request, s.api_token, s.cluster_token)


def require_worker(request: Request, services: ServicesDep) -> None:
    """Gate for worker endpoints."""
    check_cluster(request, services.settings.cluster_token)
