"""Atomic file output: write a temporary file beside the target, then rename it into place.

A crash, a kill or Ctrl-C therefore never leaves a half-written model, checkpoint or image.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary handle; on clean exit the data replaces ``path``, otherwise it vanishes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            _usual_permissions(fd)
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _usual_permissions(fd: int) -> None:
    """mkstemp creates files private (0600); the result gets what any new file gets (0666
    less the umask), as when another program saves it."""
    if hasattr(os, "fchmod"):
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
