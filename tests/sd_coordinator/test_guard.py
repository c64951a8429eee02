"""Other websites cannot drive a coordinator on localhost: cross-site writes are refused (even
without API_TOKEN) unless CORS_ORIGINS allows them, and only this coordinator's host names are
answered (no DNS rebinding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import asgi_client, detail_of, make_settings, png_bytes, running_app, stored

EVIL = "http://evil.example"


async def upload(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/upload", files={"file": ("a.png", png_bytes())}, headers=headers)


CROSS_SITE: dict[str, dict[str, str]] = {
    "foreign origin": {"origin": EVIL},
    "foreign origin, cross-site": {"origin": EVIL, "sec-fetch-site": "cross-site"},
    "another port of this host": {
        "origin": "http://localhost:9999",
        "sec-fetch-site": "same-site",
    },
    "null origin (sandboxed frame, file:)": {"origin": "null"},
    "cross-site without origin": {"sec-fetch-site": "cross-site"},
    "a look-alike host name": {"origin": "http://localhost.evil.example"},
}


@pytest.mark.parametrize("headers", CROSS_SITE, ids=str)
async def test_a_cross_site_upload_is_refused_and_stores_nothing(
    tmp_path: Path, headers: str
) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        before = await stored(client, tmp_path)
        response = await upload(client, **CROSS_SITE[headers])
        assert response.status_code == 403, response.text
        assert "CORS_ORIGINS" in detail_of(response)
        assert await stored(client, tmp_path) == before


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/task", {"json": {"type": "sleep", "payload": {"seconds": 0}}}),
        ("POST", "/register", {"json": {"name": "w1"}}),
    ],
)
async def test_every_state_changing_request_is_guarded(
    tmp_path: Path, method: str, path: str, body: dict[str, Any]
) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        response = await client.request(method, path, headers={"origin": EVIL}, **body)
        assert response.status_code == 403, response.text


SAME_SITE: dict[str, dict[str, str]] = {
    "not a browser (curl, sd-worker)": {},
    "the dashboard itself": {"origin": "http://localhost", "sec-fetch-site": "same-origin"},
    "same origin, older browser": {"origin": "http://localhost"},
    "typed by the user": {"sec-fetch-site": "none"},
}


@pytest.mark.parametrize("headers", SAME_SITE, ids=str)
async def test_same_origin_and_non_browser_uploads_are_accepted(
    tmp_path: Path, headers: str
) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        assert (await upload(client, **SAME_SITE[headers])).status_code == 202


async def test_an_origin_in_cors_origins_may_upload(tmp_path: Path) -> None:
    trusted = "http://lab.example:3000"
    settings = make_settings(tmp_path, cors_origins=[trusted])
    async with running_app(settings) as app, asgi_client(app) as client:
        response = await upload(client, origin=trusted, **{"sec-fetch-site": "cross-site"})
        assert response.status_code == 202, response.text
        assert response.headers["access-control-allow-origin"] == trusted
        assert (await upload(client, origin=EVIL)).status_code == 403


async def test_reading_is_not_refused_for_a_foreign_origin(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        response = await client.get("/jobs", headers={"origin": EVIL})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers  # the page cannot read it


# -- Host names ----------------------------------------------------------------------------------


async def answer_for_host(tmp_path: Path, host: str, **settings: Any) -> httpx.Response:
    async with running_app(make_settings(tmp_path, **settings)) as app, asgi_client(app) as client:
        return await client.get("/jobs", headers={"host": host})


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "0.0.0.0:8000",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
    ],
)
async def test_a_foreign_host_name_is_refused_as_dns_rebinding_would_send_it(
    tmp_path: Path, host: str
) -> None:
    response = await answer_for_host(tmp_path, host)
    assert response.status_code == 400
    assert "ALLOWED_HOSTS" in detail_of(response)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST."]
)
async def test_localhost_and_its_addresses_are_answered(tmp_path: Path, host: str) -> None:
    assert (await answer_for_host(tmp_path, host)).status_code == 200


async def test_coordinator_ip_and_allowed_hosts_are_answered(tmp_path: Path) -> None:
    settings = {"coordinator_ip": "100.64.0.7", "allowed_hosts": ["sd.lab.example"]}
    for host in ("100.64.0.7:8000", "sd.lab.example", "sd.lab.example:8000"):
        assert (await answer_for_host(tmp_path / host, host, **settings)).status_code == 200


async def test_an_address_of_this_machine_is_answered(tmp_path: Path) -> None:
    from sd_coordinator.guard import machine_addresses

    address = next(a for a in machine_addresses() if "." in a and not a.startswith("127."))
    assert (await answer_for_host(tmp_path, f"{address}:8000")).status_code == 200


async def test_allowed_hosts_star_answers_any_name(tmp_path: Path) -> None:
    response = await answer_for_host(tmp_path, "anything.example", allowed_hosts=["*"])
    assert response.status_code == 200
