"""What a profesor and a grupo are: the fields a client may send, checked the same way by the
REST layer (for the OpenAPI page) and by the service (which trusts no message it receives)."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sd_academic.errors import Invalid

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CLAVE = re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")
MAX_CUPO = 500


def _printable(value: str) -> str:
    value = value.strip()
    if any(not c.isprintable() for c in value):
        raise ValueError("must not contain control characters (tabs, line breaks)")
    return value


def _email(value: str) -> str:
    value = value.strip().lower()
    if not EMAIL.match(value):
        raise ValueError("not an email address (name@domain.tld)")
    return value


def _clave(value: str) -> str:
    value = value.strip().upper()
    if not CLAVE.match(value):
        raise ValueError("letters, digits, '-', '.' or '_', starting with a letter or digit")
    return value


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
OptionalText = Annotated[str, Field(max_length=200), AfterValidator(_printable)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Clave = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_clave)]
Periodo = Annotated[str, Field(min_length=1, max_length=20), AfterValidator(_printable)]
Materia = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_printable)]
Cupo = Annotated[int, Field(ge=1, le=MAX_CUPO)]
ProfesorId = Annotated[int, Field(ge=1, le=2**62)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProfesorIn(_Strict):
    """A profesor as a client creates or replaces it."""

    nombre: Name = Field(examples=["Ana"])
    apellidos: Name = Field(examples=["García López"])
    email: Email = Field(examples=["ana.garcia@escuela.edu.mx"])
    departamento: OptionalText = ""
    activo: bool = True


class ProfesorPatch(_Strict):
    """Only the fields to change."""

    nombre: Name | None = None
    apellidos: Name | None = None
    email: Email | None = None
    departamento: OptionalText | None = None
    activo: bool | None = None


class GrupoIn(_Strict):
    """A grupo as a client creates or replaces it (`profesor_id` null: nobody teaches it yet)."""

    clave: Clave = Field(examples=["ISC-3A"])
    materia: Materia = Field(examples=["Bases de datos"])
    periodo: Periodo = Field(examples=["2025-1"])
    cupo: Cupo = Field(examples=[30])
    horario: OptionalText = Field("", examples=["Lun y Mié 10:00-12:00"])
    profesor_id: ProfesorId | None = None


class GrupoPatch(_Strict):
    """Only the fields to change (`profesor_id: null` unassigns the grupo)."""

    clave: Clave | None = None
    materia: Materia | None = None
    periodo: Periodo | None = None
    cupo: Cupo | None = None
    horario: OptionalText | None = None
    profesor_id: ProfesorId | None = None


class Profesor(ProfesorIn):
    """A stored profesor."""

    model_config = ConfigDict(extra="ignore")

    id: int
    version: int
    grupos: int = Field(0, description="how many grupos this profesor teaches")
    created_at: str
    updated_at: str


class Grupo(GrupoIn):
    """A stored grupo, with the name of its profesor for display."""

    model_config = ConfigDict(extra="ignore")

    id: int
    version: int
    profesor: str | None = Field(None, description="the profesor's full name")
    created_at: str
    updated_at: str


FULL: dict[str, type[BaseModel]] = {"profesor": ProfesorIn, "grupo": GrupoIn}
PARTIAL: dict[str, type[BaseModel]] = {"profesor": ProfesorPatch, "grupo": GrupoPatch}


class Page(BaseModel):
    """One page of a list."""

    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each invalid field and why, as `{"field", "reason"}`."""
    out = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ())) or "body"
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            reason = "unknown field"
        out.append({"field": field, "reason": reason})
    return out


def invalid(errors: list[dict[str, str]]) -> Invalid:
    """One 422 naming every bad field."""
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors) or "invalid input"
    return Invalid(detail, errors=errors)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object) -> M:
    """`data` as `model`, or Invalid naming each bad field."""
    if not isinstance(data, dict):
        raise Invalid.field("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
