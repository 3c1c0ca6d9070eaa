"""The frames the grading processes send each other over a socket: one byte of kind, four
of length, then the data. Nothing here is pickled: a frame is bytes, and JSON or
`torch.save` bytes inside it are read with `json.loads` or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import socket
import struct

HEADER = struct.Struct("!cI")


class ChannelClosed(Exception):
    """The other end closed the channel, or sent a frame larger than allowed."""


def send(sock: socket.socket, kind: bytes, data: bytes = b"") -> None:
    sock.sendall(HEADER.pack(kind, len(data)) + data)


def receive(sock: socket.socket, limit: int) -> tuple[bytes, bytes]:
    """(kind, data) of the next frame; ChannelClosed at the end or past `limit` bytes."""
    kind, size = HEADER.unpack(_exactly(sock, HEADER.size))
    if size > limit:
        raise ChannelClosed(f"a frame of {size} bytes (at most {limit})")
    return kind, _exactly(sock, size)


def _exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed("the channel closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
