"""Checking the ``split`` argument the loaders share."""

from __future__ import annotations

from collections.abc import Sequence

from vaekit.errors import DataError

__all__ = ["check_split"]


def check_split(split: str, allowed: Sequence[str], source: str) -> str:
    """Return ``split`` if it is one of ``allowed``; else raise a DataError naming them."""
    if split not in allowed:
        choices = ", ".join(repr(s) for s in allowed)
        raise DataError(f"{source} has no split {split!r}; choose one of {choices}")
    return split
