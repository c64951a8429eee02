"""The coordinator's FastAPI application."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from sd_common.settings import Settings, get_settings
from sd_common.version import VERSION
from sd_coordinator import docs
from sd_coordinator.api import academic, events, internal, jobs, metrics, problems, results, workers
from sd_coordinator.guard import RequestGuard, machine_addresses
from sd_coordinator.lifespan import build_services, lifespan
from sd_coordinator.limits import BodyLimit

STATIC_DIR = Path(__file__).parent / "static"
JSON_BODY_LIMIT = 1024 * 1024
RESULT_BODY_LIMIT = 512 * 1024 * 1024
DOCS_ASSETS_URL = "/docs-assets"

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Sistema Distribuido</title>
<h1>Sistema Distribuido</h1><p>The dashboard is not built. Run <code>scripts/start.sh</code>
(or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>). The API works:
<a href="/docs">/docs</a>.</p>"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (default: environment and .env)."""
    settings = settings or get_settings()
    # /docs and /redoc with Swagger UI's and ReDoc's files served from this package (FastAPI's
    # own pages load them from a CDN, blank on a network without internet).
    app: FastAPI = FastAPIOffline(
        title="Sistema Distribuido",
        summary="Coordinator of a distributed image-processing cluster over RabbitMQ.",
        version=VERSION,
        static_url=DOCS_ASSETS_URL,
        redoc_url=None,  # docs.install serves it, with its own page policy
        lifespan=lifespan,
        # A path is a resource or a 404: `/result/x.png/` must not redirect to a stored file.
        redirect_slashes=False,
    )
    app.state.services = build_services(settings)

    problems.install(app)
    docs.install(app, DOCS_ASSETS_URL)

    # Workers' endpoints first: they take most requests, and routes are matched in order.
    for module in (internal, jobs, workers, results, events, metrics, academic):
        app.include_router(module.router)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # The academic records' edits (PUT/PATCH/DELETE) send If-Match and read the ETag.
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key"],
            expose_headers=["ETag"],
        )
    app.add_middleware(
        BodyLimit,
        limits={
            "/upload": settings.max_upload_bytes,
            "/results": RESULT_BODY_LIMIT,
        },
        default=JSON_BODY_LIMIT,
        patterns=[(re.compile(r"/jobs/[^/]+/files"), settings.max_upload_bytes)],
    )
    # Outermost: foreign Host names and cross-site writes never reach anything else.
    app.add_middleware(
        RequestGuard,
        allowed_hosts=[*settings.allowed_hosts, settings.coordinator_ip, settings.bind_host],
        cors_origins=settings.cors_origins,
        own_addresses=machine_addresses,
    )

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    else:

        @app.get("/", include_in_schema=False)
        async def dashboard_missing() -> HTMLResponse:
            return HTMLResponse(NOT_BUILT)

    return app
