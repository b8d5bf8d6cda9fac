"""A small multipart/form-data reader (what the OpenAI SDK sends to ``/v1/images/edits``)."""

from __future__ import annotations

from dataclasses import dataclass

from imagemint.errors import InvalidRequest


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None
    content_type: str | None


def parse_multipart(content_type_header: str, body: bytes) -> list[Part]:
    if "boundary=" not in content_type_header:
        raise InvalidRequest("multipart body without a boundary")
    from email.parser import BytesParser  # only multipart requests pay for the email package
    from email.policy import HTTP

    head = f"Content-Type: {content_type_header}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise InvalidRequest("Malformed multipart body")
    parts: list[Part] = []
    for part in msg.iter_parts():
        disposition = part.get("Content-Disposition", "")
        if "form-data" not in disposition:
            continue
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise InvalidRequest("multipart part without a name")
        payload = part.get_payload(decode=True) or b""
        ctype = part.get_content_type() if part.get("Content-Type") else None
        parts.append(Part(str(name), payload, part.get_filename(), ctype))
    if not parts and body.strip():
        raise InvalidRequest("Malformed multipart body")
    return parts
