"""Atomic file writes (a reader or a killed process never sees a half-written file) and tensor digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Mapping

import torch

from vaekit.errors import CheckpointError

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "tensors_sha256", "check_tensors_sha256", "read_checked_tensors"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``tensors`` (in name order).

    Stored in a safetensors file's metadata and checked on load, so damage inside the
    tensor data (which the safetensors header cannot see) is caught.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def check_tensors_sha256(path: Path, expected: str | None, tensors: Mapping[str, torch.Tensor], fix: str) -> None:
    """Refuse ``tensors`` read from ``path`` when they do not match the digest ``expected``.

    A file without a digest (written by another tool or a vaekit from before digests) is
    accepted with a warning: its contents cannot be checked, but safetensors still parses it
    without running any code.
    """
    if expected is None:
        warnings.warn(f"{path} carries no integrity digest, so damage to its tensor data cannot be detected "
                      "(the next save writes one)", stacklevel=3)
    elif expected != tensors_sha256(tensors):
        raise CheckpointError(f"{path} fails its integrity check (its tensors do not match the digest saved with them); "
                              f"it is damaged or tampered with — {fix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.

    Example:
        >>> with atomic_path("weights.safetensors") as tmp:  # doctest: +SKIP
        ...     save_file(tensors, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # the permissions of an ordinary new file, not mkstemp's 0600
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_checked_tensors(path: str | os.PathLike, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, refused with one CheckpointError ending in
    ``fix`` when the file is missing, unreadable, fails its digest or holds non-finite values.

    The one reader of every safetensors file vaekit wrote (models, samplers, code priors):
    safetensors parses without running code, the digest catches damage inside the tensor data.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing — {fix}")
    try:  # tensors and digest from ONE opening: a save replacing the file meanwhile cannot mix two versions
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get("sha256")
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it is truncated or tampered with — {fix}") from None
    check_tensors_sha256(path, expected, tensors, fix)
    broken = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{path} holds non-finite values (in {broken[0]}); it cannot be used — {fix}")
    return tensors
