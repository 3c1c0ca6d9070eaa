"""A restricted unpickler for the CIFAR-10 batch files: numeric numpy arrays and plain
containers only, every size bounded by the file's length.

The official files are Python 2 pickles whose only globals are numpy's array reconstruction
(`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`); files re-written by
Python 3 may also use `_codecs.encode`, `numpy._core.multiarray.scalar` and
`numpy._core.numeric._frombuffer`. Anything else a file asks for is refused before it can
run: `pickle.load` would execute it. The numpy globals are not numpy's own functions but
builders that accept only plain numeric dtypes and check that an array's bytes match its
shape: numpy's own would build object arrays from a short list (and crash the interpreter)
or trust a forged header.

Before unpickling, the opcodes are walked once (nothing is built) to check that no opcode
announces more bytes than the file has left: a 15-byte file announcing a 1 TiB bytes
object is refused instead of allocated.
"""

from __future__ import annotations

import math
import mmap
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

SIMPLE_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"}
_CODES = {op.code.encode("latin1"): op for op in pickletools.opcodes}
_LENGTH = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4:
           (4, True), pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
           pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the allow-list, or for a non-numeric array."""


class _Dtype:
    """numpy.dtype(spec, align, copy) as pickled, then BUILD with its state."""

    def __init__(self, spec: Any, *args: Any) -> None:
        spec = spec.decode("latin1") if isinstance(spec, bytes) else spec  # Python 2 str
        if not isinstance(spec, str) or spec.lstrip("<>|=") not in SIMPLE_DTYPES:
            raise UnsafePickleError(f"refused dtype {spec!r} (numeric dtypes only)")
        self.dtype = np.dtype(spec.lstrip("<>|="))

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 5 or state[3] is not None \
                or state[4] is not None:
            raise UnsafePickleError("refused a structured dtype")
        order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


class _Array:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`, then BUILD with
    (version, shape, dtype, fortran order, raw bytes)."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("refused an array state that is not numpy's")
        _, shape, dtype, fortran, raw = state
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran else "C")


def _ndarray_placeholder() -> None:
    """Stands for numpy.ndarray, which a pickle may only pass to `_reconstruct`."""


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _ndarray_placeholder:
        raise UnsafePickleError("refused _reconstruct of anything but numpy.ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _from_bytes(buf, dtype, shape, order if order in ("C", "F") else "C")


def _scalar(dtype: Any, raw: Any) -> Any:
    return _from_bytes(raw, dtype, (), "C")[()]


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """_codecs.encode(str, 'latin1'): how Python 3 writes bytes in protocol 2."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"refused _codecs.encode with {encoding!r}")
    return text.encode(encoding)


def _from_bytes(raw: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, _Dtype):
        raise UnsafePickleError("refused an array without a numeric numpy dtype")
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise UnsafePickleError(f"refused array shape {shape!r}")
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError(f"refused array data of type {type(raw).__name__}")
    needed = math.prod(shape) * dtype.dtype.itemsize
    if len(raw) != needed:
        raise ValueError(f"array data has {len(raw)} bytes, its shape {shape} needs {needed}")
    return np.frombuffer(raw, dtype.dtype).reshape(shape, order=order)


_BUILDERS = {"_reconstruct": _reconstruct, "ndarray": _ndarray_placeholder, "dtype": _Dtype,
             "scalar": _scalar, "_frombuffer": _frombuffer}
_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray", "numpy", "numpy.core.numeric",
            "numpy._core.numeric"}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"refused to load {module}.{name}")
        return _encode if module == "_codecs" else _BUILDERS[name]


def _opcode_table() -> dict[int, tuple]:
    """opcode byte -> (name, kind, size): kind "fixed" (an argument of `size` bytes), "lines"
    (`size` lines), "counted" (a `size`-byte length, then that many bytes)."""
    table = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None or arg.n >= 0:
            entry = (op.name, "fixed", 0 if arg is None else arg.n)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            entry = (op.name, "lines", 2 if op.name in ("GLOBAL", "INST") else 1)
        else:
            entry = (op.name, "counted", _LENGTH[arg.n])
        table[ord(op.code)] = entry
    return table


_TABLE = _opcode_table()


def check_lengths(buf: bytes | mmap.mmap) -> None:
    """Walk the opcodes of the pickle in `buf` up to STOP without building anything;
    ValueError if one announces more bytes than are left."""
    size, i = len(buf), 0
    while True:
        if i >= size:
            raise ValueError("pickle data was truncated")
        entry = _TABLE.get(buf[i])
        if entry is None:
            raise ValueError(f"unknown opcode {bytes([buf[i]])!r} at byte {i}")
        name, kind, n = entry
        i += 1
        if kind == "fixed":
            if name == "FRAME":
                _check_room(name, int.from_bytes(buf[i:i + 8], "little"), size - i - 8)
            i += n
        elif kind == "lines":
            for _ in range(n):
                end = buf.find(b"\n", i)
                if end < 0:
                    raise ValueError("pickle data was truncated")
                i = end + 1
        else:
            width, signed = n
            length = int.from_bytes(buf[i:i + width], "little", signed=signed)
            i += width
            _check_room(name, length, size - i)
            i += length
        if name == "STOP":
            return


def _check_room(name: str, n: int, left: int) -> None:
    if not 0 <= n <= left:
        raise ValueError(f"{name} announces {n} bytes, the file has {max(left, 0)} left")


def load_pickle(path: Path) -> Any:
    """Unpickle `path` with the allow-list; ValueError naming the file on anything amiss.

    Python 2 strings come back as bytes (encoding="bytes"): each array is built on the
    bytes it was stored in, without a copy, and dict keys are bytes (see `text_keys`).
    """
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) == 0:
                raise ValueError("empty file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                check_lengths(view)
            f.seek(0)
            return _finish(_RestrictedUnpickler(f, encoding="bytes").load())
    except UnsafePickleError as e:
        raise ValueError(f"{path}: {e}: not a CIFAR-10 batch file (nothing was executed)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError, RecursionError) as e:
        raise ValueError(f"{path}: truncated or corrupt file ({type(e).__name__}: {e})") from None


def _finish(obj: Any, depth: int = 0) -> Any:
    """The unpickled value with each builder replaced by what it built."""
    if depth > 20:
        raise ValueError("nested too deeply for a CIFAR-10 batch file")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise ValueError("an array without its data")
        return obj.array
    if isinstance(obj, _Dtype):
        return obj.dtype
    if isinstance(obj, dict):
        return {_finish(k, depth + 1): _finish(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (_Array, _Dtype, dict, list,
                                                            tuple)) for v in obj):
        return type(obj)(_finish(v, depth + 1) for v in obj)
    return obj


def text(value: Any) -> Any:
    """A Python 2 string (bytes here) as text; anything else unchanged."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def text_keys(obj: Any) -> Any:
    """A dict with its bytes keys decoded; anything else unchanged."""
    return {text(k): v for k, v in obj.items()} if isinstance(obj, dict) else obj
