"""Framing between Ansible's worker processes and the job's gateway on a local Unix socket.

Each message is a 4-byte big-endian length followed by one JSON object. Standard library only:
every forked Ansible worker imports it, and json is already loaded there (orjson is not).
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

SOCKET_ENV = "ESTATE_GATEWAY_SOCKET"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class WireError(ConnectionError):
    """The other side closed the socket or sent something that is not a message."""


def send_message(sock: socket.socket, doc: dict[str, Any]) -> None:
    body = json.dumps(doc, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1024 * 1024))
        if not chunk:
            raise WireError("the gateway connection closed mid-message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """The next message, or None when the other side closed the connection cleanly."""
    first = sock.recv(_HEADER.size)
    if not first:
        return None
    header = first + _read_exactly(sock, _HEADER.size - len(first))
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    doc = json.loads(_read_exactly(sock, size))
    if not isinstance(doc, dict):
        raise WireError("a message must be a JSON object")
    return doc


def call(path: str, doc: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
    """Send one request to the gateway at `path` and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(path)
        send_message(sock, doc)
        answer = recv_message(sock)
    if answer is None:
        raise WireError("the gateway closed the connection without answering")
    return answer
