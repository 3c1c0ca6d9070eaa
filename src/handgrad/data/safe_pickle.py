"""A restricted unpickler for the CIFAR-10 batch files: numpy arrays and plain containers only.

The official files are Python 2 pickles whose only globals are numpy's array reconstruction
(`numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`); files re-written by
Python 3 may also use `_codecs.encode` and `numpy._core.numeric._frombuffer`, both pure
constructors. Anything else a file
asks for is refused before it can run: `pickle.load` would execute it.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # Python 3 writes bytes this way in protocol 2; a pure function
}


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"refused to load {module}.{name}")
        if module.startswith("numpy.core"):  # numpy 2 renamed it; import the new name quietly
            module = "numpy._core" + module[len("numpy.core"):]
            try:
                return getattr(importlib.import_module(module), name)
            except ImportError:  # numpy 1.x
                module = "numpy.core" + module[len("numpy._core"):]
        return getattr(importlib.import_module(module), name)


def load_pickle(path: Path) -> Any:
    """Unpickle `path` with the allow-list; ValueError naming the file on anything amiss.

    Python 2 strings come back as bytes (encoding="bytes"): numpy then builds each array on
    the bytes it was stored in, without a copy, and dict keys are bytes (see `text_keys`).
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as e:
        raise ValueError(f"{path}: {e}: not a CIFAR-10 batch file (nothing was executed)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:
        raise ValueError(f"{path}: truncated or corrupt file ({type(e).__name__}: {e})") from None


def text(value: Any) -> Any:
    """A Python 2 string (bytes here) as text; anything else unchanged."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def text_keys(obj: Any) -> Any:
    """A dict with its bytes keys decoded; anything else unchanged."""
    return {text(k): v for k, v in obj.items()} if isinstance(obj, dict) else obj
