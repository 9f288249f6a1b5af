"""Atomic writes: data on disk before the rename, parts of killed writers cleaned up, SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from enhance_edge.io import fileio
from enhance_edge.io.fileio import STALE_PART_SECONDS, atomic_output, remove_stale_parts, terminate_as_interrupt

# A writer that stops half-way through, holding its part, until it is killed.
HALF_WRITTEN = """
import sys, time
from enhance_edge.io.fileio import atomic_output
with atomic_output(sys.argv[1]) as handle:
    handle.write(b"half an image")
    handle.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def start_writer(target):
    writer = subprocess.Popen([sys.executable, "-c", HALF_WRITTEN, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    return writer


def parts(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def age(path, seconds=STALE_PART_SECONDS + 50):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_data_is_synced_to_disk_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b))
    with atomic_output(tmp_path / "out.png") as handle:
        handle.write(b"data")
    assert calls == ["fsync", "replace"]
    assert (tmp_path / "out.png").read_bytes() == b"data"


def test_the_output_gets_what_any_new_file_gets_and_the_umask_is_never_set(tmp_path, monkeypatch):
    real_umask = os.umask
    previous = real_umask(0o027)
    try:
        # Setting the umask, even only to read it, changes it for every thread of the process meanwhile.
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail(f"os.umask({mask:#o}) called"))
        with atomic_output(tmp_path / "out.png") as handle:
            handle.write(b"data")
    finally:
        real_umask(previous)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o640


def test_the_part_of_a_killed_writer_is_removed_and_a_live_writers_part_kept(tmp_path):
    killed, live = tmp_path / "killed.png", tmp_path / "live.png"
    victim, writer = start_writer(killed), start_writer(live)
    try:
        victim.kill()  # SIGKILL: no handler runs, the part stays
        victim.wait(30)
        [killed_part] = [tmp_path / name for name in parts(tmp_path) if name.startswith(".killed.png.")]
        [live_part] = [tmp_path / name for name in parts(tmp_path) if name.startswith(".live.png.")]
        (tmp_path / ".notes.txt.abc.part").write_text("someone else's")  # not a part of these targets
        fresh = tmp_path / ".killed.png.fresh123.part"  # unlocked but brand new: its writer may be about to lock it
        fresh.write_text("x")
        for path in (killed_part, live_part, tmp_path / ".notes.txt.abc.part"):
            age(path)
        assert remove_stale_parts([killed, live]) == [killed_part]
        assert parts(tmp_path) == sorted([".notes.txt.abc.part", fresh.name, live_part.name])
    finally:
        writer.kill()
        writer.wait(30)


def test_a_folder_that_does_not_exist_has_no_parts(tmp_path):
    assert remove_stale_parts([tmp_path / "not yet" / "a.png"]) == []


def test_sigterm_raises_keyboard_interrupt_inside_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) is before
