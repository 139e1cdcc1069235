"""What the service refuses: :class:`ServiceError` (answered with its HTTP status and one line)
and :func:`inside`, the guard keeping every file the service reads or writes inside its folder."""

from __future__ import annotations

from pathlib import Path


class ServiceError(Exception):
    """An error answered with ``status`` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def inside(root: str | Path, name: str, what: str) -> Path:
    """``root/name`` resolved, refusing (400) anything that escapes ``root``."""
    base = Path(root).resolve()
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise ServiceError(400, f"{what} '{name}' is outside the {what} directory")
    return path
