"""Inputs and outputs named by URIs, without a network: pyarrow's in-memory filesystem stands for
an object store (mock://BUCKET/...), file:// URIs for a local disk opened through pyarrow."""

import io
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enhance_edge.apps import uris
from enhance_edge.core.batch import LOCAL_FILES, Job, Outcome, plan_jobs, upscale_file
from enhance_edge.errors import EnhanceEdgeError, ImageError, MissingExtraError
from enhance_edge.core.upscaler import Upscaler

pytest.importorskip("pyarrow", reason='pyarrow comes with the cluster extra (pip install "enhance-edge[cluster]")')


@pytest.fixture
def store(monkeypatch):
    """mock://BUCKET/KEY opens one in-memory filesystem (the bucket in the path, as S3's), whose
    clock is an hour back: a temporary written there is long abandoned."""
    from pyarrow import fs

    memory = fs._MockFileSystem(current_time=datetime.now(timezone.utc) - timedelta(hours=1))
    opened = uris._filesystem
    monkeypatch.setattr(uris, "_filesystem", lambda scheme, netloc, query: (
        (memory, netloc) if scheme == "mock" else opened(scheme, netloc, query)))
    return memory


def put(store, path: str, data: bytes) -> None:
    store.create_dir(path.rpartition("/")[0], recursive=True)
    with store.open_output_stream(path) as stream:
        stream.write(data)


def png(seed: int) -> bytes:
    """A 20x24 colour PNG of noise."""
    encoded = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(encoded, "PNG")
    return encoded.getvalue()


@pytest.fixture(scope="module")
def upscaler():
    return Upscaler("fast", precision="fp32", threads=1)


def test_a_folder_uri_is_listed_as_the_command_lists_a_folder(store):
    names = ("in/a b.png", "in/what?.jpg", "in/sub/c.png", "in/.hidden.png", "in/notes.txt", "in/out/old.png")
    for name in names:
        put(store, f"bucket/{name}", name.encode())  # the content's size tells them apart
    jobs, sizes = uris.plan_jobs(["mock://bucket/in/"], "mock://bucket/in/out", scale=2, recursive=True)
    assert jobs == [Job("mock://bucket/in/a%20b.png", "mock://bucket/in/out/a%20b.png"),
                    Job("mock://bucket/in/sub/c.png", "mock://bucket/in/out/sub/c.png"),
                    Job("mock://bucket/in/what%3F.jpg", "mock://bucket/in/out/what%3F.jpg")]
    assert sizes == {"mock://bucket/in/a%20b.png": len("in/a b.png"), "mock://bucket/in/sub/c.png": len("in/sub/c.png"),
                     "mock://bucket/in/what%3F.jpg": len("in/what?.jpg")}

    # No -o: beside the inputs, with the scale's suffix; an earlier run's output is not an input.
    put(store, "bucket/in/a b_x2.webp", b"earlier output")
    jobs, _ = uris.plan_jobs(["mock://bucket/in"], None, scale=2, output_format="webp")
    assert jobs == [Job("mock://bucket/in/a%20b.png", "mock://bucket/in/a%20b_x2.webp"),
                    Job("mock://bucket/in/what%3F.jpg", "mock://bucket/in/what%3F_x2.webp")]


def test_a_uri_file_a_missing_uri_and_a_local_folder_mix(store, tmp_path):
    put(store, "bucket/one.png", b"12345")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "face.png").write_bytes(png(0))
    jobs, sizes = uris.plan_jobs(["mock://bucket/one.png", "mock://bucket/gone.png", tmp_path / "local"],
                                 "mock://bucket/out/", scale=2)
    assert jobs == [Job("mock://bucket/one.png", "mock://bucket/out/one.png"),
                    Job("mock://bucket/gone.png", "mock://bucket/out/gone.png"),  # fails when read, as a path does
                    Job(tmp_path / "local" / "face.png", "mock://bucket/out/face.png")]
    assert sizes == {"mock://bucket/one.png": 5, "mock://bucket/gone.png": 0}


def test_minus_o_is_a_folder_and_an_unknown_scheme_is_one_line(store):
    put(store, "bucket/in/a.png", b"x")
    with pytest.raises(EnhanceEdgeError, match="-o 'mock://bucket/out/big.png': with URIs, -o names a folder"):
        uris.plan_jobs(["mock://bucket/in"], "mock://bucket/out/big.png", scale=2)
    with pytest.raises(EnhanceEdgeError, match=r"^nope://host/: pyarrow cannot open it \(Unrecognized filesystem"):
        uris.plan_jobs(["nope://host/photos/"], None, scale=2)


def test_a_uri_job_writes_the_bytes_upscale_file_writes(store, tmp_path, upscaler):
    data = png(1)
    put(store, "bucket/in/face.png", data)
    (tmp_path / "face.png").write_bytes(data)
    upscale_file(upscaler, Job(tmp_path / "face.png", tmp_path / "plain.png"))
    upscale_job(upscaler, Job("mock://bucket/in/face.png", "mock://bucket/out/face.png"))
    with store.open_input_stream("bucket/out/face.png") as stream:
        assert stream.read() == (tmp_path / "plain.png").read_bytes()
    # Across: a URI to a local file, a local file to a URI (folders made as needed)
    upscale_job(upscaler, Job("mock://bucket/in/face.png", tmp_path / "new" / "face.png"))
    upscale_job(upscaler, Job(tmp_path / "face.png", (tmp_path / "made" / "face.png").as_uri()))
    for written in (tmp_path / "new" / "face.png", tmp_path / "made" / "face.png"):
        assert written.read_bytes() == (tmp_path / "plain.png").read_bytes()
    assert [info.base_name for info in store.get_file_info(uris_selector("bucket/out"))] == ["face.png"]


def test_paths_and_uris_are_planned_and_upscaled_by_one_planner_and_one_file_path(store, tmp_path, upscaler):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(png(1))
    put(store, "bucket/in/a.png", png(1))
    local = plan_jobs([tmp_path / "in", tmp_path / "none*.png"], None, scale=2, output_format="webp")
    mixed, _ = uris.plan_jobs(["mock://bucket/in", tmp_path / "in", tmp_path / "none*.png"], None, scale=2,
                              output_format="webp")
    pattern = Job(tmp_path / "none*.png", tmp_path / "none*_x2.webp", "no file matches this pattern")
    assert local == [Job(tmp_path / "in" / "a.png", tmp_path / "in" / "a_x2.webp"), pattern]
    assert mixed == [Job("mock://bucket/in/a.png", "mock://bucket/in/a_x2.webp"), *local]
    done = upscale_job(upscaler, mixed[0])
    assert (done.status, done.output, done.input_size) == (Outcome.DONE, "mock://bucket/in/a_x2.webp", (20, 24))
    assert upscale_job(upscaler, mixed[0]).status is Outcome.SKIPPED
    assert uris.storage_for(mixed[0]) is uris.URI_FILES and uris.storage_for(local[0]) is LOCAL_FILES


def upscale_job(upscaler, job, **options):
    """The single-file path with a URI at either end."""
    return upscale_file(upscaler, job, storage=uris.URI_FILES, **options)


def uris_selector(path: str):
    from pyarrow.fs import FileSelector

    return FileSelector(path, recursive=True)


def test_a_bad_uri_input_fails_naming_it_and_writes_nothing(store, upscaler):
    put(store, "bucket/in/corrupt.png", png(2)[:80] + bytes(100))
    with pytest.raises(ImageError, match=r"^mock://bucket/in/corrupt.png: corrupt or truncated image"):
        upscale_job(upscaler, Job("mock://bucket/in/corrupt.png", "mock://bucket/out/corrupt.png"))
    with pytest.raises(ImageError, match=r"^mock://bucket/in/gone.png: no such file$"):
        upscale_job(upscaler, Job("mock://bucket/in/gone.png", "mock://bucket/out/gone.png"))
    assert [info.path for info in store.get_file_info(uris_selector("bucket"))] == ["bucket/in",
                                                                                    "bucket/in/corrupt.png"]


def in_a_thread(call, seconds: float = 20):
    """What ``call()`` returns or raises, failing the test if it takes over ``seconds`` (a hang)."""
    outcome: list = []

    def run():
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_file_uri_of_a_pipe_or_a_device_is_one_line_not_a_hang(store, tmp_path, upscaler):
    os.mkfifo(tmp_path / "pipe.png")
    pipe = (tmp_path / "pipe.png").as_uri()
    failed = in_a_thread(lambda: upscale_job(upscaler, Job(pipe, "mock://bucket/out/pipe.png")))
    assert isinstance(failed, ImageError) and str(failed) == f"{pipe}: is a named pipe, not a regular file"
    failed = in_a_thread(lambda: uris.expand_lists([f"@{pipe}"]))
    assert str(failed) == f"@{pipe}: cannot read the input list (is a named pipe, not a regular file)"
    if os.path.exists("/dev/zero"):  # endless: read without a limit, it fills the memory
        failed = in_a_thread(lambda: upscale_job(upscaler, Job("file:///dev/zero", "mock://bucket/out/z.png")))
        assert str(failed) == "file:///dev/zero: is a device, not a regular file"


def test_a_uri_larger_than_an_image_within_max_pixels_is_not_read_whole(store, monkeypatch, upscaler):
    monkeypatch.setattr(uris, "METADATA_BYTES", 1000)
    put(store, "bucket/in/huge.png", png(4) + bytes(2000))
    with pytest.raises(ImageError) as failed:
        upscale_job(upscaler, Job("mock://bucket/in/huge.png", "mock://bucket/out/huge.png"), max_pixels=100)
    assert str(failed.value) == ("mock://bucket/in/huge.png: over 0 MiB, more than an image within --max-pixels 100 "
                                 "can take (8 bytes a pixel, and metadata)")


def test_a_path_and_a_file_uri_of_one_output_are_one_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(png(5))
    (tmp_path / "a" / "x.jpg").write_bytes(png(6))
    jpeg = (tmp_path / "a" / "x.jpg").as_uri()
    jobs, _ = uris.plan_jobs([Path("a/x.png"), jpeg], None, scale=2, output_format="png")
    assert [job.problem for job in jobs] == [None, "output 'file://" + str(tmp_path / "a" / "x_x2.png")
                                             + "' is already the output of 'a/x.png'"]


def test_an_existing_target_is_kept_and_abandoned_temporaries_are_deleted(store, tmp_path, upscaler):
    put(store, "bucket/in/face.png", png(3))
    put(store, "bucket/out/face.png", b"an earlier run's output")
    put(store, "bucket/out/.other.png.0123abcd.part", b"half an image")  # a killed writer's, an hour old
    put(store, "bucket/out/.unrelated.txt.0123abcd.part", b"not ours")
    upscale_job(upscaler, Job("mock://bucket/in/face.png", "mock://bucket/out/face.png"))
    with store.open_input_stream("bucket/out/face.png") as stream:
        assert stream.read() == b"an earlier run's output"  # not overwritten without overwrite

    existing, removed = uris.existing_and_stale(["mock://bucket/out/face.png", "mock://bucket/out/other.png",
                                                 "mock://bucket/nowhere/x.png"])
    assert (existing, removed) == ({"mock://bucket/out/face.png"}, ["mock://bucket/out/.other.png.0123abcd.part"])
    assert sorted(info.base_name for info in store.get_file_info(uris_selector("bucket/out"))) == [
        ".unrelated.txt.0123abcd.part", "face.png"]

    # A temporary written just now may belong to a writer still at work: kept.
    (tmp_path / ".face.png.89abcdef.part").write_bytes(b"being written")
    assert uris.existing_and_stale([(tmp_path / "face.png").as_uri()]) == (set(), [])
    os.utime(tmp_path / ".face.png.89abcdef.part", (time.time() - 60, time.time() - 60))
    assert uris.existing_and_stale([(tmp_path / "face.png").as_uri()]) == (
        set(), [(tmp_path / ".face.png.89abcdef.part").as_uri()])


def test_a_write_the_storage_refuses_leaves_neither_target_nor_temporary(store, tmp_path):
    (tmp_path / "file").write_bytes(b"a file where the folder would be")
    with pytest.raises(EnhanceEdgeError, match=r"file/out.png: cannot write \("):
        uris.write_atomically((tmp_path / "file" / "out.png").as_uri(), b"data")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]
    # Refused at the last step, moving the written temporary into place (a folder has the name):
    store.create_dir("bucket/out/taken.png/inner", recursive=True)
    with pytest.raises(EnhanceEdgeError, match=r"^mock://bucket/out/taken.png: cannot write \(Cannot replace"):
        uris.write_atomically("mock://bucket/out/taken.png", b"data")
    assert [info.path for info in store.get_file_info(uris_selector("bucket/out"))] == [
        "bucket/out/taken.png", "bucket/out/taken.png/inner"]
    uris.write_atomically((tmp_path / "sub" / "out.png").as_uri(), b"data")
    assert [path.name for path in (tmp_path / "sub").iterdir()] == ["out.png"]
    assert (tmp_path / "sub" / "out.png").read_bytes() == b"data"


def test_an_input_list_names_paths_and_uris(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("list.txt").write_text("# the archive\nmock://bucket/in/\n\n  photos/a b.png  \n/abs/x.png\n")
    put(store, "bucket/lists/more.txt", b"mock://bucket/more.png\n")
    assert uris.expand_lists([Path("@list.txt"), "@mock://bucket/lists/more.txt", Path("plain.png")]) == [
        "mock://bucket/in/", Path("photos/a b.png"), Path("/abs/x.png"), "mock://bucket/more.png", Path("plain.png")]
    with pytest.raises(EnhanceEdgeError, match=r"^@gone.txt: cannot read the input list \(no such file\)$"):
        uris.expand_lists([Path("@gone.txt")])
    with pytest.raises(EnhanceEdgeError,
                       match=r"^@mock://bucket/gone.txt: cannot read the input list \(no such file\)$"):
        uris.expand_lists(["@mock://bucket/gone.txt"])
    Path("latin1.txt").write_bytes("caf\xe9.png\n".encode("latin-1"))
    with pytest.raises(EnhanceEdgeError, match=r"^@latin1.txt: cannot read the input list \('utf-8' codec"):
        uris.expand_lists([Path("@latin1.txt")])


def test_without_the_extra_a_uri_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)  # what an install without the extra sees
    uris._filesystem.cache_clear()
    with pytest.raises(MissingExtraError, match=r"^a URI needs the 'cluster' extra \(pyarrow is not installed\)"):
        uris.plan_jobs(["s3://bucket/photos/"], None, scale=2)
    uris._filesystem.cache_clear()


def test_locations_and_their_common_folder():
    assert uris.location("s3://bucket/a//b.png") == "s3://bucket/a//b.png"  # as typed: Path would fold //
    assert uris.location("photos/a.png") == Path("photos/a.png")
    assert uris.location("C:/photos/a.png") == Path("C:/photos/a.png")
    assert uris.join("gs://bucket/out/", "sub/a b#1.png") == "gs://bucket/out/sub/a%20b%231.png"
    assert uris.file_name("gs://bucket/out/a%20b.png") == Path("a b.png")
    assert uris.common_folder(["s3://b/out/x/1.png", "s3://b/out/2.png"]) == "s3://b/out"
    assert uris.common_folder(["s3://b/out/1.png", "s3://c/out/2.png"]) is None
    assert uris.common_folder(["s3://b/out/1.png", Path("out/2.png")]) is None
