"""The errors vaekit raises for problems a user can fix.

Every message names the problem and how to fix it. The CLI prints them as one line and
exits non-zero; library users can catch :class:`VaekitError`.
"""

from __future__ import annotations

__all__ = [
    "VaekitError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "NonFiniteLossError",
]


class VaekitError(Exception):
    """Base class of every error that is the user's to fix (bad data, option, file)."""


class DataError(VaekitError, ValueError):
    """The data is missing, corrupt, of the wrong shape, or outside the expected range."""


class ConfigError(VaekitError, ValueError):
    """An unknown model, an unknown option, or an option value that cannot work."""


class CheckpointError(VaekitError, OSError):
    """A saved model or checkpoint is missing, truncated, tampered with or incompatible."""


class NonFiniteLossError(VaekitError, FloatingPointError):
    """Training produced a NaN or infinite loss; the model was restored to its last good state."""
