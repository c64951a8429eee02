"""The "Académico" section in real headless Chromium, against a coordinator on the real broker
and the academic service as its own `sd-academic` process: what a school's staff would do."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from browser.test_dashboard import PHONE, scroll_width, unnamed_controls
from support.broker import delete_queue_and_exchange_sync
from support.cluster import Cluster, console_script

if TYPE_CHECKING:
    from browser.conftest import Dashboard

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def school(cluster: Cluster) -> Iterator[Cluster]:
    """A coordinator whose academic commands go over RabbitMQ to a separate sd-academic."""
    tag = uuid.uuid4().hex[:10]
    queue, exchange = f"sdtest-academico-{tag}.rpc", f"sdtest-academico-{tag}.events"
    cluster.env.update(
        ACADEMIC_QUEUE=queue, ACADEMIC_EXCHANGE=exchange, ACADEMIC_IN_PROCESS="false"
    )
    cluster._spawn("academic", [console_script("sd-academic")], cluster.root / "academic")
    cluster.start_coordinator()
    try:
        yield cluster
    finally:
        cluster.stop()
        delete_queue_and_exchange_sync(queue, exchange)


def open_academic(dashboard: Dashboard, url: str, locale: str) -> Page:
    page = dashboard.open(f"{url}/#academico", locale=locale)
    expect(page.get_by_test_id("academic")).to_be_visible()
    return page


def fill_profesor(page: Page, nombre: str, apellidos: str, email: str, dept: str = "") -> None:
    form = page.get_by_test_id("profesor-form")
    form.get_by_test_id("input-nombre").fill(nombre)
    form.get_by_test_id("input-apellidos").fill(apellidos)
    form.get_by_test_id("input-email").fill(email)
    form.get_by_test_id("input-departamento").fill(dept)


def test_staff_create_validate_edit_and_delete_in_spanish(
    school: Cluster, dashboard: Dashboard
) -> None:
    page = open_academic(dashboard, school.url, "es-MX")
    expect(page.get_by_test_id("tab-academic")).to_have_text("Académico")
    expect(page.get_by_role("tab", name="Académico")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("heading", name=re.compile("^Profesores"))).to_be_visible()

    # A bad email: the service's reason appears at the field, nothing is stored.
    page.get_by_test_id("new-profesor").click()
    fill_profesor(page, "Ana", "García López", "ana-sin-arroba", "Sistemas")
    page.get_by_test_id("profesor-form-save").click()
    expect(page.get_by_test_id("error-email")).to_have_text("No es un correo (nombre@dominio.mx)")
    expect(page.get_by_test_id("input-email")).to_have_attribute("aria-invalid", "true")
    page.get_by_test_id("input-email").fill("ana.garcia@escuela.edu.mx")
    page.get_by_test_id("profesor-form-save").click()
    expect(page.get_by_test_id("profesor-form")).to_be_hidden()
    row = page.get_by_test_id("profesor-ana.garcia@escuela.edu.mx")
    expect(row).to_contain_text("García López")

    # The same email again: 409, shown at the email field.
    page.get_by_test_id("new-profesor").click()
    fill_profesor(page, "Otra", "Persona", "ANA.GARCIA@escuela.edu.mx")
    page.get_by_test_id("profesor-form-save").click()
    expect(page.get_by_test_id("error-email")).to_have_text(
        "«ana.garcia@escuela.edu.mx» ya está en uso"
    )
    page.get_by_role("button", name="Cancelar").click()

    # A grupo taught by her: a capacity of 0 is refused at the field, then fixed.
    page.get_by_test_id("new-grupo").click()
    form = page.get_by_test_id("grupo-form")
    form.get_by_test_id("input-clave").fill("isc-3a")
    form.get_by_test_id("input-materia").fill("Bases de datos")
    form.get_by_test_id("input-periodo").fill("2025-1")
    form.get_by_test_id("input-cupo").fill("0")
    form.get_by_test_id("input-profesor").select_option(label="García López, Ana")
    page.get_by_test_id("grupo-form-save").click()
    expect(page.get_by_test_id("error-cupo")).to_have_text("Debe ser al menos 1")
    form.get_by_test_id("input-cupo").fill("35")
    page.get_by_test_id("grupo-form-save").click()
    grupo = page.get_by_test_id("grupo-ISC-3A")
    expect(grupo.get_by_test_id("grupo-profesor")).to_have_text("Ana García López")
    # Another grupo: the profesor found by typing, then left unassigned.
    page.get_by_test_id("new-grupo").click()
    form.get_by_test_id("find-profesor").fill("garcia")
    expect(form.get_by_test_id("input-profesor").locator("option")).to_have_count(2)
    form.get_by_test_id("find-profesor").fill("nadie")
    expect(form.get_by_test_id("input-profesor").locator("option")).to_have_count(1)
    form.get_by_test_id("input-clave").fill("ISC-5B")
    form.get_by_test_id("input-materia").fill("Redes")
    form.get_by_test_id("input-periodo").fill("2025-1")
    page.get_by_test_id("grupo-form-save").click()
    expect(page.get_by_test_id("grupo-ISC-5B")).to_be_visible()

    # Her grupos: only the one she teaches.
    row.get_by_test_id("show-grupos").click()
    expect(page.get_by_test_id("grupos-title")).to_contain_text("Grupos de Ana García López")
    expect(page.get_by_test_id("grupos-table").locator("tbody tr")).to_have_count(1)
    page.get_by_test_id("clear-profesor").click()
    expect(page.get_by_test_id("grupos-table").locator("tbody tr")).to_have_count(2)

    # Edit.
    row.get_by_test_id("edit").click()
    page.get_by_test_id("input-departamento").fill("Ingeniería")
    page.get_by_test_id("profesor-form-save").click()
    expect(row).to_contain_text("Ingeniería")

    # Delete, confirmed: she still teaches, so the page offers to unassign.
    row.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete-button").click()
    expect(page.get_by_test_id("teaches-message")).to_contain_text("aún imparte 1 grupo")
    page.get_by_test_id("confirm-unassign").click()
    expect(row).to_be_hidden()
    expect(grupo.get_by_test_id("grupo-profesor")).to_have_text("— sin asignar —")
    with school.client() as client:
        assert client.get("/profesores").json()["total"] == 0
        assert client.get("/grupos/1").json()["profesor_id"] is None


def test_changes_from_another_browser_appear_live_and_a_stale_edit_is_refused(
    school: Cluster, dashboard: Dashboard
) -> None:
    mine = open_academic(dashboard, school.url, "en-US")
    theirs = open_academic(dashboard, school.url, "es-ES")
    expect(mine.get_by_role("tab", name="Academic")).to_be_visible()

    theirs.get_by_test_id("new-profesor").click()
    fill_profesor(theirs, "Luis", "Pérez", "luis@escuela.mx", "Física")
    theirs.get_by_test_id("profesor-form-save").click()
    row_here = mine.get_by_test_id("profesor-luis@escuela.mx")
    expect(row_here).to_contain_text("Física")  # no reload on this page

    # Both open the edit form on version 1; they save first, then I do.
    row_here.get_by_test_id("edit").click()
    theirs.get_by_test_id("profesor-luis@escuela.mx").get_by_test_id("edit").click()
    theirs.get_by_test_id("input-departamento").fill("Química")
    theirs.get_by_test_id("profesor-form-save").click()
    expect(row_here).to_contain_text("Química")
    mine.get_by_test_id("input-departamento").fill("Biología")
    mine.get_by_test_id("profesor-form-save").click()
    expect(mine.get_by_test_id("stale-message")).to_contain_text("Someone else changed")
    mine.get_by_test_id("stale-reload").click()
    expect(mine.get_by_test_id("input-departamento")).to_have_value("Química")
    mine.get_by_test_id("input-departamento").fill("Biología")
    mine.get_by_test_id("profesor-form-save").click()
    expect(theirs.get_by_test_id("profesor-luis@escuela.mx")).to_contain_text("Biología")

    # A delete on their side disappears here.
    theirs.get_by_test_id("profesor-luis@escuela.mx").get_by_test_id("delete").click()
    theirs.get_by_test_id("confirm-delete-button").click()
    expect(row_here).to_be_hidden()


def test_csv_import_reports_rows_then_paging_search_and_export_work(
    school: Cluster, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = open_academic(dashboard, school.url, "en-US")
    lines = ["nombre,apellidos,email,departamento,activo"]
    lines += [f"Prof{n:02d},Apellido{n:02d},prof{n:02d}@escuela.mx,Sistemas,yes" for n in range(14)]
    lines += ["Bad,Row,not-an-email,,"]
    page.get_by_test_id("profesores-import-input").set_input_files(
        {
            "name": "profesores.csv",
            "mimeType": "text/csv",
            "buffer": "\n".join(lines).encode(),
        }
    )
    report = page.get_by_test_id("profesores-import-report")
    expect(report).to_contain_text("14 created, 0 updated, 0 unchanged, 1 refused")
    expect(report).to_contain_text("Row 16")
    expect(report).to_contain_text("email: not an email address")

    pager = page.get_by_test_id("profesores-pager-text")
    expect(pager).to_have_text("Page 1 of 2 · 14 in total")
    table = page.get_by_test_id("profesores-table").locator("tbody tr")
    expect(table).to_have_count(10)
    page.get_by_test_id("profesores-pager").get_by_role("button", name="Next").click()
    expect(table).to_have_count(4)
    expect(pager).to_have_text("Page 2 of 2 · 14 in total")
    page.get_by_test_id("search-profesores").fill("prof07@")
    expect(table).to_have_count(1)
    expect(table.first).to_contain_text("Apellido07")

    with page.expect_download() as download:
        page.get_by_test_id("profesores-export").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    exported = saved.read_text(encoding="utf-8").splitlines()
    assert exported[0] == "nombre,apellidos,email,departamento,activo"
    assert len(exported) == 15 and "Prof07,Apellido07,prof07@escuela.mx,Sistemas,sí" in exported


def test_the_section_fits_a_phone_and_every_control_has_a_name(
    school: Cluster, dashboard: Dashboard
) -> None:
    with school.client() as client:
        p = client.post(
            "/profesores",
            json={"nombre": "Ana", "apellidos": "García López", "email": "ana@escuela.mx"},
        ).json()
        grupo = {"clave": "ISC-3A", "materia": "Bases de datos", "periodo": "2025-1", "cupo": 30}
        client.post("/grupos", json={**grupo, "profesor_id": p["id"]})
    page = dashboard.open(f"{school.url}/#academico", locale="es-MX", viewport=PHONE)
    expect(page.get_by_test_id("grupo-ISC-3A")).to_be_visible()
    assert scroll_width(page) <= PHONE["width"]
    assert unnamed_controls(page) == []
    page.get_by_test_id("new-grupo").click()
    expect(page.get_by_test_id("grupo-form")).to_be_visible()
    assert unnamed_controls(page) == []
