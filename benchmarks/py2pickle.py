"""Write pickles the way Python 2's cPickle wrote the official CIFAR-10 files: protocol 2,
byte strings as BINSTRING (a Python 3 pickler would wrap them in `_codecs.encode`)."""

from __future__ import annotations

import io
import pickle
import struct


class Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def dumps(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()
