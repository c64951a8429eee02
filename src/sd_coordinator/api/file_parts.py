"""The file parts of a multipart/form-data body, read into bytes by python-multipart's parser.

A batch of photos ends up in memory in any case (it is hashed, checked and stored at once), and
the body is capped by MAX_UPLOAD_MB before it is read. Starlette's form parser would spool each
part to a temporary file object (on disk past 1 MB) through several awaits per chunk, to be read
back at once (benchmarks/OPTIMISATIONS.md, session 13).
"""

from __future__ import annotations

import codecs
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from sd_coordinator.errors import BadRequest, Invalid


def multipart_body(field: str, description: str) -> dict[str, Any]:
    """OpenAPI `requestBody` of a route that reads its `field` parts with `read_file_parts`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [field],
                        "properties": {
                            field: {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": description,
                            }
                        },
                    }
                }
            },
        }
    }


class _Parts:
    """python-multipart's callbacks: each part's headers, then its bytes."""

    def __init__(self, field: str, max_parts: int) -> None:
        self.field = field
        self.max_parts = max_parts
        self.charset = "utf-8"
        self.found: list[tuple[str, bytes]] = []  # (filename, data) of `field` parts
        self.parts = 0
        self._name = b""
        self._value = b""
        self._disposition = b""
        self._filename = ""
        self._chunks: list[bytes] | None = None  # None: a part we skip
        self.ended = False  # the closing boundary was read

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise Invalid(f"too many parts: at most {self.max_parts} in one body")
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise BadRequest('each multipart part needs a Content-Disposition with a "name"')
        named = options[b"name"].decode(self.charset, errors="replace")
        self._chunks = [] if named == self.field else None
        filename = options.get(b"filename")
        if self._chunks is not None and filename is None:
            raise Invalid(f"{self.field}: must be a file part (multipart with a filename)")
        self._filename = "" if filename is None else filename.decode(self.charset, "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._chunks is not None:
            self._chunks.append(data[start:end])

    def on_part_end(self) -> None:
        if self._chunks is not None:
            self.found.append((self._filename, b"".join(self._chunks)))
        self._chunks = None

    def on_end(self) -> None:
        self.ended = True


async def read_file_parts(request: Request, field: str, max_parts: int) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every part named `field`, in body order; other parts are skipped.
    Invalid (422) for a body that is not multipart/form-data, BadRequest (400) for one that is
    malformed, as FastAPI's own form parsing answers."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise Invalid(
            f"{field}: Field required (send the files as multipart/form-data, one part named "
            f"'{field}' per file, with its filename)"
        )
    if not params.get(b"boundary"):
        raise BadRequest("malformed multipart body: its Content-Type has no boundary")
    parts = _Parts(field, max_parts)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        parts.charset = codecs.lookup(charset).name
    except LookupError:
        parts.charset = "latin-1"
    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": parts.on_part_begin,
            "on_part_data": parts.on_part_data,
            "on_part_end": parts.on_part_end,
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_end": parts.on_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from exc
    if not parts.ended:
        raise BadRequest("malformed multipart body: it ends before its closing boundary")
    return parts.found
