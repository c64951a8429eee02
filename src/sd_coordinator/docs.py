"""The API's pages: /redoc with its files from this package, and the OpenAPI document as
/docs needs it to upload files with "Try it out". (/docs itself comes from fastapi_offline.)"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse

OCTET_STREAM = "application/octet-stream"
# ReDoc's sidebar shows a logo from its makers' CDN: images from elsewhere are not even asked
# for (the page notes it in the console and hides the logo).
REDOC_POLICY = "img-src 'self' data:"


def mark_file_uploads(node: Any) -> None:
    """Give every file field (`UploadFile`: a string of `contentMediaType` octet-stream in
    OpenAPI 3.1) `format: binary` too, in place. Swagger UI shows a file picker for such a
    string alone, but inside an array (`file: list[UploadFile]`, POST /upload) only with the
    format: without it, a text box that sends the text as the file."""
    if isinstance(node, dict):
        if node.get("contentMediaType") == OCTET_STREAM and node.get("type") == "string":
            node.setdefault("format", "binary")
        for value in node.values():
            mark_file_uploads(value)
    elif isinstance(node, list):
        for value in node:
            mark_file_uploads(value)


def install(app: FastAPI, assets_url: str) -> None:
    """Serve /redoc with the files at `assets_url` (fastapi_offline's), and the app's OpenAPI
    document with its file fields marked (see mark_file_uploads)."""

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets_url}/redoc.standalone.js",
            redoc_favicon_url=f"{assets_url}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            mark_file_uploads(build())
        assert app.openapi_schema is not None  # build() stored it
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
