"""Shard files and the manifest of one ``out`` directory: atomic writes, the list of completed shards.

A shard is one file ``shard-NNNNNN.<ext>`` holding named CPU tensors; it is written to a temporary name in the
same directory and renamed into place, so a file under its final name is always complete. The format is
safetensors when the package is installed, else torch's own (read back with ``weights_only=True``).

Example:
    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> p = write_shard(d, 3, {"index": torch.arange(2)}, "torch")
    >>> completed(d, "torch"), read_shard(p, "torch")["index"].tolist()
    ([3], [0, 1])
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import require

__all__ = ["default_format", "shard_path", "write_shard", "read_shard", "read_extras", "completed", "write_json",
           "read_json", "remove_temporaries"]

_EXT = {"safetensors": "safetensors", "torch": "pt"}
_TMP_PREFIX = ".tmp-"
_EXTRAS = "__extras__"


def default_format() -> str:
    """``"safetensors"`` when the package is importable, else ``"torch"``."""
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return "torch"
    return "safetensors"


def shard_path(out: str | Path, k: int, fmt: str) -> Path:
    """The final path of shard ``k``."""
    require(fmt in _EXT, f"format must be one of {sorted(_EXT)}, got {fmt!r}")
    return Path(out) / f"shard-{k:06d}.{_EXT[fmt]}"


def _atomic(path: Path, write: Any) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_shard(out: str | Path, k: int, tensors: dict[str, Tensor], fmt: str,
                extras: list[dict[str, Any]] | None = None) -> Path:
    """Write shard ``k`` atomically (temporary file, fsync, rename); returns its path. ``extras`` (one JSON-able
    dict per example, e.g. token lists) go to the file's metadata."""
    path = shard_path(out, k, fmt)
    data = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    meta = None if extras is None else json.dumps(extras)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        return _atomic(path, lambda tmp: save_file(data, tmp, metadata=None if meta is None else {_EXTRAS: meta}))

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(data if meta is None else {**data, _EXTRAS: meta}, f)

    return _atomic(path, save)


def read_shard(path: str | Path, fmt: str, keys: list[str] | None = None) -> dict[str, Tensor]:
    """The tensors of one shard (only ``keys`` when given; safetensors reads just those)."""
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            names = f.keys() if keys is None else [k for k in keys if k in set(f.keys())]
            return {name: f.get_tensor(name) for name in names}
    data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    data.pop(_EXTRAS, None)
    return data if keys is None else {k: data[k] for k in keys if k in data}


def read_extras(path: str | Path, fmt: str) -> list[dict[str, Any]] | None:
    """The per-example extras of one shard, or None when it has none."""
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get(_EXTRAS)
    else:
        meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(_EXTRAS)
    return None if meta is None else list(json.loads(meta))


def completed(out: str | Path, fmt: str) -> list[int]:
    """The ids of the shards present under their final name, sorted."""
    pattern = re.compile(rf"shard-(\d+)\.{_EXT[fmt]}$")
    found = (pattern.match(p.name) for p in Path(out).iterdir()) if Path(out).is_dir() else iter(())
    return sorted(int(m.group(1)) for m in found if m)


def remove_temporaries(out: str | Path) -> int:
    """Delete temporary files left by killed writers; returns how many."""
    stale = list(Path(out).glob(f"{_TMP_PREFIX}*"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically."""
    path = Path(path)
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
