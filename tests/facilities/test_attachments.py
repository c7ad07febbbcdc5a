"""Attachments: checked by content and size, stored under our own names, served to who may see."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from facilities.attachments.storage import LocalDirectoryStorage, UnknownKey, sniff
from fleet.context import Context
from tests.estate.factories import Api
from tests.facilities.builders import ATTACHMENT_LIMIT, report


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, decodable PNG: grey pixels, one IDAT chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _upload(api: Api, fault_id: int, name: str, data: bytes, **kw: Any) -> httpx.Response:
    return api.post(
        f"/api/v1/faults/{fault_id}/attachments",
        files={"file": (name, data, "image/png")},
        **kw,
    )


def test_a_real_png_is_stored_under_a_uuid_and_served_back(
    api: Api, fault_context: Context
) -> None:
    fid = report(api).json()["id"]
    image = png_bytes()
    response = _upload(api, fid, "bell.png", image, role="facilities")
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["content_type"] == "image/png"
    assert stored["size"] == len(image)
    assert stored["filename"] == "bell.png"
    root = fault_context.settings.effective_attachments_dir
    files = [p for p in root.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [stored["id"]]
    assert files[0].read_bytes() == image
    served = api.get(stored["url"], role="viewer")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == image
    detail = api.get(f"/api/v1/faults/{fid}").json()
    assert [a["id"] for a in detail["attachments"]] == [stored["id"]]


def test_content_decides_the_type_not_the_name(api: Api) -> None:
    fid = report(api).json()["id"]
    refused = _upload(api, fid, "photo.png", b"just some text, honestly a photo")
    assert refused.status_code == 415
    assert "content" in refused.json()["detail"]
    pdf = _upload(api, fid, "report.txt", b"%PDF-1.7\n% minimal\n")
    assert pdf.status_code == 201
    assert pdf.json()["content_type"] == "application/pdf"
    assert len(api.get(f"/api/v1/faults/{fid}").json()["attachments"]) == 1


def test_oversize_is_refused_and_nothing_is_kept(api: Api, fault_context: Context) -> None:
    fid = report(api).json()["id"]
    big = png_bytes() + b"\x00" * ATTACHMENT_LIMIT
    response = _upload(api, fid, "big.png", big)
    assert response.status_code == 413
    assert "smaller" in response.json()["detail"]
    assert api.get(f"/api/v1/faults/{fid}").json()["attachments"] == []
    assert not fault_context.settings.effective_attachments_dir.exists()


def test_a_traversal_filename_is_only_a_label(api: Api, fault_context: Context) -> None:
    fid = report(api).json()["id"]
    response = _upload(api, fid, "../../../../tmp/evil.png", png_bytes())
    assert response.status_code == 201
    assert response.json()["filename"] == "evil.png"
    root = fault_context.settings.effective_attachments_dir
    assert [p.name for p in root.rglob("*") if p.is_file()] == [response.json()["id"]]
    assert not Path("/tmp/evil.png").exists()
    probe = api.get(f"/api/v1/faults/{fid}/attachments/..%2F..%2Fetc%2Fpasswd")
    assert probe.status_code == 404


def test_attachments_follow_the_fault_caseload(api: Api) -> None:
    fid = report(api, location="LEI-1-1-001").json()["id"]
    url = _upload(api, fid, "a.png", png_bytes()).json()["url"]
    assert api.get(url, role="facilities", prisons=("MDI",)).status_code == 404
    assert api.get(url, role="facilities", prisons=("LEI",)).status_code == 200
    denied = _upload(api, fid, "b.png", png_bytes(), role="facilities", prisons=("MDI",))
    assert denied.status_code == 404
    assert _upload(api, fid, "c.png", png_bytes(), role="viewer").status_code == 403


def test_storage_refuses_keys_it_did_not_make(tmp_path: Path) -> None:
    storage = LocalDirectoryStorage(tmp_path / "store")
    key = storage.put(b"%PDF-1.4")
    assert b"".join(storage.stream(key)) == b"%PDF-1.4"
    for bad in ("../" * 5 + "etc/passwd", "/etc/passwd", key.upper(), key + "x", ""):
        with pytest.raises(UnknownKey):
            storage.stream(bad)
    assert sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff(b"\x00\x00\x00\x18ftypheic\x00\x00") == "image/heic"
    assert sniff(b"GIF89a") is None
