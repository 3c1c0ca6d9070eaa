"""weights.safetensors: the network's tensors and what they were trained for, in bytes that
depend only on the weights (safetensors itself writes its metadata in a random order)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from handgrad.engine.model import MLP
from handgrad.engine.sequential import Sequential
from handgrad.run.config import TrainConfig
from handgrad.run.files import atomic_write_bytes


def weights_metadata(config: TrainConfig, model: MLP | Sequential,
                     class_names: Sequence[str]) -> dict[str, str]:
    """What the weights were trained for; "model" only for a network other than the MLP
    (so that an MLP's file is what it always was)."""
    meta = {"sizes": ",".join(map(str, model.sizes)), "activation": model.activation,
            "dataset": config.dataset, "classes": ",".join(class_names)}
    if config.model != "mlp":
        meta["model"] = config.model
    return meta


def weights_bytes(state: dict[str, torch.Tensor], meta: dict[str, str]) -> bytes:
    """A safetensors file: the header's keys sorted (safetensors writes the metadata in a
    random order), so that the same weights give the same bytes."""
    tensors = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
               for k, v in state.items()}  # contiguous and unshared, as safetensors needs
    raw = save_safetensors(tensors, metadata=meta)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":"))
    header += " " * (-len(header) % 8)  # keep the data 8-byte aligned, as safetensors does
    return len(header).to_bytes(8, "little") + header.encode() + raw[8 + n:]


def save_weights(path: Path, state: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """Write the weights atomically; returns the file's sha256."""
    data = weights_bytes(state, meta)
    atomic_write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def read_weights(path: Path, max_bytes: int | None = None
                 ) -> tuple[bytes, dict[str, torch.Tensor], dict[str, str]]:
    """(the file's bytes, its tensors, its metadata); safetensors cannot execute code.
    max_bytes: refuse a larger file before reading it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no weights file")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, more than the network's "
                         f"weights can take ({max_bytes})")
    data = path.read_bytes()
    try:
        state = load_safetensors(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a valid safetensors file ({e})") from None
    return data, state, meta if isinstance(meta, dict) else {}


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return read_weights(path)[1]


def check_sha(path: Path, data: bytes, recorded: str | None, where: str) -> None:
    """ValueError unless `data` (the bytes of `path`) has the sha256 `recorded` in `where`."""
    if recorded is None:
        raise ValueError(f"{path.parent / where}: records no weights_sha256 (written by an "
                         "older handgrad?): the weights cannot be verified; train again")
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise ValueError(f"{path}: sha256 {actual[:12]}… differs from the {recorded[:12]}… "
                         f"recorded in {where}: the file was changed or corrupted")
