"""Atomic file output: write a temporary file beside the target, then rename it into place.

A crash, a kill or Ctrl-C therefore never leaves a half-written model, checkpoint or image.
The temporary file (``.NAME.XXXXXXXX.part``) is deleted on any exception, Ctrl-C and (with
``terminate_as_interrupt``) SIGTERM included; what only a SIGKILL or a power cut can leave
behind, ``remove_stale_parts`` deletes on the next run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so parts are never judged stale there
    fcntl = None  # type: ignore[assignment]

PART_SUFFIX = ".part"
# A part nobody holds locked may still be brand new (its writer has not locked it yet) or just
# renamed (unlocked between close and rename): only parts unchanged for this long are stale.
STALE_PART_SECONDS = 10.0


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary handle; on clean exit the data replaces ``path``, otherwise it vanishes."""
    path = Path(path)
    fd, tmp = _new_part(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            if fcntl is not None:  # held until the handle closes; remove_stale_parts leaves locked parts alone
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield handle
            handle.flush()
            os.fsync(fd)  # on a machine crash the rename must not reach the disk before the data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(path: Path, data: bytes) -> None:
    """``data`` becomes the file ``path`` whole (its folder made when missing), or nothing is
    written; OSError when the file system refuses, for the caller to name in its own error type."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as handle:
        handle.write(data)


def os_reason(exc: OSError) -> str:
    """Why ``exc`` happened, without the file names it carries: for a write through atomic_output they
    are its hidden temporary's (``.NAME.XXXXXXXX.part``), which a message must not show in place of NAME."""
    return exc.strerror or str(exc)


def _new_part(path: Path) -> tuple[int, Path]:
    """A new ``.NAME.XXXXXXXX.part`` beside ``path``, open for writing. It gets what any new file
    gets (0666 less the umask, applied by the system), as when another program saves it: mkstemp
    makes files private (0600), and reading the umask means setting it, for every thread."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    for _ in range(tempfile.TMP_MAX):
        part = path.parent / f".{path.name}.{secrets.token_hex(4)}{PART_SUFFIX}"
        try:
            return os.open(part, flags, 0o666), part
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def target_name(part_name: str) -> str | None:
    """NAME of a ``.NAME.XXXXXXXX.part`` temporary of atomic_output; None for other names."""
    if not (part_name.startswith(".") and part_name.endswith(PART_SUFFIX)):
        return None
    name, dot, _ = part_name[1:-len(PART_SUFFIX)].rpartition(".")
    return name if dot else None


def _is_abandoned(part: Path) -> bool:
    """No process is writing ``part``: unlocked (a dead writer's lock went with it) and not new."""
    try:
        fd = os.open(part, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return time.time() - os.fstat(fd).st_mtime > STALE_PART_SECONDS
    except OSError:  # locked: its writer is alive
        return False
    finally:
        os.close(fd)  # releases the lock


def remove_stale_parts(targets: Iterable[Path]) -> list[Path]:
    """Delete the temporary files that writes of ``targets`` left when their process was
    killed outright (SIGKILL, a crash, a power cut); the parts that are deleted. A part that
    another process is writing right now is kept."""
    if fcntl is None:
        return []
    names_by_folder: dict[Path, set[str]] = {}
    for target in targets:
        names_by_folder.setdefault(Path(target).parent, set()).add(Path(target).name)
    removed = []
    for folder, names in names_by_folder.items():
        try:
            entries = [entry.name for entry in os.scandir(folder)]
        except OSError:  # not created yet: nothing was written there
            continue
        for entry in entries:
            part = folder / entry
            if target_name(entry) in names and _is_abandoned(part):
                part.unlink(missing_ok=True)
                removed.append(part)
    return removed


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM (``kill``, a service manager stopping the program) raises
    KeyboardInterrupt as Ctrl-C does, so an interrupted write cleans up after itself the same
    way; the previous handler comes back afterwards. Python delivers signals to the main
    thread only: elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupt_notice(notify: Callable[[], None]) -> Iterator[None]:
    """Inside, ``notify`` is called, from a thread of its own, the moment SIGINT or SIGTERM (where it
    has a Python handler: terminate_as_interrupt) arrives. Python raises KeyboardInterrupt only when
    the main thread is back in Python code, which a model run holds for a second or more: the user is
    told at once that the stop was seen. Outside the main thread this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # written by the signal handler, which must never block
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while data := reader.recv(64):  # each byte a signal's number; b"" once the writer is closed
            if {signal.SIGINT, signal.SIGTERM} & set(data):
                notify()
                return

    watcher = threading.Thread(target=watch, name="interrupt-notice", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        writer.close()
        watcher.join()  # a notice is out before what the interrupt's handler prints
        reader.close()
