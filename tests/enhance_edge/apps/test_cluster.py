"""Upscaling on a local Ray cluster (2 CPUs): the same files as `enhance-edge upscale`, a bad file
reported, a killed actor's files retried, a rerun that skips what is done."""

import contextlib
import csv
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.apps.cluster import SUMMARY_NAME, ActorPlan, Status, bundle_jobs, plan_actors
from enhance_edge.errors import EnhanceEdgeError

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None and os.environ.get("CI") != "true",
    reason='ray is not installed (pip install "enhance-edge[cluster]"); under CI=true this test runs regardless')
GiB = 2**30
# Forces the one large image into tiles and leaves the faces whole: both paths run on the actors.
TILE = 80


def make_folder(folder: Path) -> list[str]:
    """24 faces (gray PNG, colour JPEG with EXIF and DPI, RGBA PNG), a 200x150 photo that is
    tiled, and a corrupt file; returns the good files' names."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:56] / 64
    names = []
    for index in range(24):
        plane = np.clip(0.5 + 0.3 * np.sin(6 * x + index) * np.cos(5 * y) + 0.05 * rng.random(x.shape), 0, 1)
        gray = Image.fromarray((plane * 255).astype(np.uint8))
        if index % 3 == 0:
            name = f"face{index:02d}.png"
            gray.save(folder / name)
        elif index % 3 == 1:
            name = f"face{index:02d}.jpg"
            exif = Image.Exif()
            exif[0x0112] = 6  # stored sideways: the output is upright
            Image.merge("RGB", (gray, gray.rotate(90), gray.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).save(
                folder / name, exif=exif.tobytes(), dpi=(300, 300))
        else:
            name = f"face{index:02d}.png"
            Image.merge("RGBA", (gray, gray, gray.rotate(180), gray.point(lambda v: 255 - v // 2))).save(folder / name)
        names.append(name)
    photo = np.clip(rng.normal(128, 40, (150, 200, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(folder / "photo.png")
    names.append("photo.png")
    (folder / "corrupt.png").write_bytes((folder / "face00.png").read_bytes()[:80] + bytes(200))
    return names


def parent_pid(pid: int) -> int:
    """From /proc/PID/stat, whose second field (the name, in parentheses) may hold spaces."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def processes_of_this_test() -> dict[int, bytes]:
    """Command line of each process this test process started, directly or not (Ray's head
    processes are its children, Ray's workers the raylet's): another Ray on the machine, of
    another test run, is never touched."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command, pid = (entry / "cmdline").read_bytes(), int(entry.name)
            while pid > 1 and pid != os.getpid():
                pid = parent_pid(pid)
        except (OSError, ValueError, IndexError):  # a process that just ended
            continue
        if pid == os.getpid() and int(entry.name) != os.getpid():
            found[int(entry.name)] = command
    return found


def upscale_worker_pids() -> list[int]:
    """The Ray Data actors running UpscaleWorker (Ray titles its worker processes ray::ACTOR)."""
    return sorted(pid for pid, command in processes_of_this_test().items()
                  if command.startswith(b"ray::MapWorker(MapBatches(UpscaleWorker))"))


def assert_same_image(cluster_file: Path, plain_file: Path) -> None:
    with Image.open(cluster_file) as ours, Image.open(plain_file) as theirs:
        assert (ours.format, ours.mode, ours.size) == (theirs.format, theirs.mode, theirs.size), cluster_file
        assert np.array_equal(np.asarray(ours), np.asarray(theirs)), f"{cluster_file}: pixels differ"
        tags = ("Software", "Description", "dpi", "icc_profile")
        assert {key: ours.info.get(key) for key in tags} == {key: theirs.info.get(key) for key in tags}, cluster_file
        assert dict(ours.getexif()) == dict(theirs.getexif()), f"{cluster_file}: EXIF tags differ"
        assert "enhance-edge" in (ours.info.get("Software") or ours.getexif().get(0x0131, "")), cluster_file
    assert cluster_file.read_bytes() == plain_file.read_bytes(), f"{cluster_file}: the files differ"


def read_summary(path: Path) -> dict[str, tuple[str, str]]:
    with path.open(newline="") as handle:
        return {Path(row["source"]).name: (row["status"], row["reason"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs, as on the machines this project is built on; upscale_on_cluster
    uses a Ray its process already runs. Ray 2.60 gives its raylet a fixed 30 s to register
    at start, which a loaded machine can exceed: the start is tried again then."""
    import ray

    for attempt in range(3):
        before = set(processes_of_this_test())
        try:
            ray.init(num_cpus=2, include_dashboard=False)
            break
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for this time-out
            ray.shutdown()  # which leaves the failed start's head processes running: they are ended here
            for pid in set(processes_of_this_test()) - before:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A folder of make_folder's, and what the plain command writes for it (one output failed)."""
    root = tmp_path_factory.mktemp("archive")
    names = make_folder(root / "in")
    plain = CliRunner().invoke(main, ["upscale", str(root / "in"), "-o", str(root / "plain"), "--tile", str(TILE)])
    assert plain.exit_code == 1 and "corrupt.png" in plain.output  # the bad file fails the plain command too
    return root / "in", names, root / "plain"


class ActorKiller(threading.Thread):
    """SIGKILLs one UpscaleWorker actor as soon as the first output appears in ``folder`` (the
    pool is then at work and most files are still to do), and counts the outputs right after.
    Waits on files, not on time: however slow the machine, the kill comes midway."""

    def __init__(self, folder: Path, patience_s: float = 600):
        super().__init__(daemon=True)
        self.folder, self.patience_s = folder, patience_s
        self.done = threading.Event()  # set by the test when the run is over
        self.killed: int | None = None
        self.outputs_after_kill: int | None = None

    def outputs(self) -> int:
        if not self.folder.is_dir():
            return 0
        return sum(1 for path in self.folder.iterdir() if not path.name.startswith(".") and path.name != SUMMARY_NAME)

    def run(self) -> None:
        deadline = time.monotonic() + self.patience_s
        while not self.done.is_set() and time.monotonic() < deadline:
            pids = upscale_worker_pids()
            if pids and self.outputs():
                os.kill(pids[0], signal.SIGKILL)
                self.killed, self.outputs_after_kill = pids[0], self.outputs()
                return
            self.done.wait(0.02)


@needs_ray
def test_a_killed_actor_and_a_corrupt_file_still_give_the_plain_commands_files(tmp_path, local_ray, archive):
    from enhance_edge.apps.cluster import upscale_on_cluster

    source, names, plain = archive
    killer = ActorKiller(tmp_path / "out")
    killer.start()
    try:
        run = upscale_on_cluster([source], tmp_path / "out", cluster="local", tile=TILE)
    finally:
        killer.done.set()
        killer.join()

    assert killer.killed is not None, "no actor was killed"
    assert killer.outputs_after_kill < len(names), "the actor was killed after every file was done"
    assert run.actors == ActorPlan(count=2, cpus=0.5, threads=1)
    # A temporary the killed actor was writing may remain (hidden; the next run deletes it once stale).
    outputs = sorted(path.name for path in (tmp_path / "out").iterdir() if not path.name.startswith("."))
    assert outputs == sorted(names + [SUMMARY_NAME]), "every good file once, and nothing else"
    for name in names:
        assert_same_image(tmp_path / "out" / name, plain / name)
    summary = read_summary(run.summary)
    assert run.summary == tmp_path / "out" / SUMMARY_NAME
    assert {name: status for name, (status, _) in summary.items()} == {**dict.fromkeys(names, "done"),
                                                                        "corrupt.png": "failed"}
    assert "corrupt.png: corrupt or truncated image" in summary["corrupt.png"][1]
    assert (run.count(Status.DONE), run.count(Status.FAILED)) == (len(names), 1)

    # Run again: what is done is skipped (not rewritten), the bad file is tried and reported again.
    written = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names}
    rerun = upscale_on_cluster([source], tmp_path / "out", cluster="local", tile=TILE)
    assert {name: status for name, (status, _) in read_summary(rerun.summary).items()} == {
        **dict.fromkeys(names, "skipped"), "corrupt.png": "failed"}
    assert written == {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names}


@needs_ray
def test_uris_and_an_input_list_give_the_same_files_and_a_rerun_skips_them(tmp_path, local_ray, archive):
    source, names, plain = archive
    listing = tmp_path / "archive.txt"
    listing.write_text(f"# the photos to upscale, one path or URI a line\n\n{source.as_uri()}/\n")
    out = (tmp_path / "out").as_uri()
    command = ["upscale", f"@{listing}", "-o", out, "--tile", str(TILE), "--cluster", "local"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output  # the corrupt file, as without --cluster
    assert set(result.stdout.splitlines()) == {f"{source.as_uri()}/{name} -> {out}/{name}" for name in names}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {source.as_uri()}/corrupt.png: corrupt or truncated image ("), errors
    assert f"summary: {out}/{SUMMARY_NAME}" in result.stderr
    for name in names:
        assert_same_image(tmp_path / "out" / name, plain / name)
    summary = read_summary(tmp_path / "out" / SUMMARY_NAME)
    assert {name: status for name, (status, _) in summary.items()} == {**dict.fromkeys(names, "done"),
                                                                        "corrupt.png": "failed"}

    # A temporary that a killed writer left long ago is deleted; finished files are not redone.
    part = tmp_path / "out" / f".{names[0]}.0123abcd.part"
    part.write_bytes(b"half an image")
    os.utime(part, (time.time() - 3600, time.time() - 3600))
    written = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names}
    rerun = CliRunner().invoke(main, command)
    assert rerun.exit_code == 1, rerun.output
    assert "removed 1 partial file(s)" in rerun.stderr and not part.exists()
    assert f"done 0, failed 1, skipped {len(names)}" in rerun.stderr
    assert written == {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names}


@needs_ray
def test_the_cli_option_runs_the_same_command_on_the_cluster(tmp_path, local_ray, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, named in messages as given (Ray's workers started elsewhere)
    names = make_folder(Path("in"))
    options = ["--format", "webp", "--quality", "70", "--suffix", "_big", "--model", "fast", "--precision", "fp32"]
    plain = CliRunner().invoke(main, ["upscale", "in", "-o", "plain", *options])
    result = CliRunner().invoke(main, ["upscale", "in", "-o", "out", *options, "--cluster", "local"])
    assert result.exit_code == plain.exit_code == 1, result.output  # one file failed, as without --cluster
    lines = set(result.stdout.replace(" -> out/", " -> plain/").splitlines())
    # without the strength each file ran at, which the cluster's workers do not report yet
    plain_lines = {re.sub(r" \(strength \d\.\d\d\)$", "", line) for line in plain.stdout.splitlines()}
    assert lines == plain_lines, "one 'SOURCE -> TARGET' line per file, as without --cluster"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in plain.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: in/corrupt.png: corrupt or truncated image"), errors
    assert f"done {len(names)}, failed 1, skipped 0" in result.stderr
    assert f"{len(names) + 1}/{len(names) + 1} files" in result.stderr  # our own done/total line
    assert "summary: out/enhance-edge-summary.csv" in result.stderr
    for name in names:
        output = f"{Path(name).stem}_big.webp"
        assert_same_image(Path("out", output), Path("plain", output))


@needs_ray
def test_without_cluster_ray_is_never_imported(tmp_path):
    """--help and a plain upscale start without Ray (it takes seconds to import and is an extra)."""
    Image.new("L", (20, 24), 128).save(tmp_path / "face.png")
    script = ("import sys\nfrom enhance_edge.apps.cli import main\n"
              "for args in (['--help'], ['upscale', '--help'], ['upscale', sys.argv[1]]):\n"
              "    try:\n        main(args)\n    except SystemExit as exit:\n        assert not exit.code, exit\n"
              "loaded = sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.'))\n"
              "assert not loaded, loaded\n")
    # Run outside the checkout: `python -c` puts the working folder first on sys.path, and the source
    # tree's enhance_edge/ lacks the train, export and benchmarks sub-packages that --help lists.
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "face.png")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "face_x2.png").is_file()


def test_without_the_extra_cluster_is_one_line_naming_it(tmp_path, monkeypatch):
    Image.new("L", (20, 24), 128).save(tmp_path / "face.png")
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees: import ray fails
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "face.png"), "--cluster", "local"])
    assert result.exit_code == 1
    assert result.stderr == ("error: --cluster needs the 'cluster' extra (ray is not installed): "
                             'pip install "enhance-edge[cluster]"\n')
    assert not (tmp_path / "face_x2.png").exists()


def test_uris_without_cluster_are_refused_before_anything_runs(tmp_path):
    Image.new("L", (20, 24), 128).save(tmp_path / "face.png")
    for arguments in ([(tmp_path / "face.png").as_uri()], [str(tmp_path / "face.png"), "-o", "s3://bucket/out/"]):
        result = CliRunner().invoke(main, ["upscale", *arguments])
        assert result.exit_code == 2
        assert f"Error: '{arguments[-1]}': URIs are read and written with --cluster only" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["face.png"]


@pytest.mark.parametrize(("cpus", "memory", "actors", "threads", "expected"), [
    (2, 16 * GiB, None, None, ActorPlan(2, 0.5, 1)),  # this machine: a whole CPU left for Ray Data's tasks
    (1, 16 * GiB, None, None, ActorPlan(1, 0.5, 1)),
    (64, 256 * GiB, None, None, ActorPlan(64, 0.98, 1)),
    (64, 256 * GiB, 16, None, ActorPlan(16, 3.93, 4)),
    (64, 8 * GiB, None, None, ActorPlan(8, 7.87, 8)),  # memory, not CPUs, bounds the pool
    (8, None, 2, 3, ActorPlan(2, 3.5, 3)),
])
def test_actors_are_sized_from_the_clusters_cpus_and_memory(cpus, memory, actors, threads, expected):
    assert plan_actors(cpus, memory, GiB, actors, threads) == expected


@pytest.mark.parametrize(("cpus", "memory", "actors", "message"), [
    (0, 16 * GiB, None, "the Ray cluster has no CPUs"),
    (4, GiB // 2, None, "--max-memory 1024 MiB per actor is more than the Ray cluster's memory (512 MiB)"),
    (4, 2 * GiB, 3, "3 actors at --max-memory 1024 MiB each need more than the Ray cluster's memory"),
])
def test_a_pool_that_cannot_fit_is_refused_in_one_line(cpus, memory, actors, message):
    with pytest.raises(EnhanceEdgeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_actors(cpus, memory, GiB, actors)


def test_small_images_share_a_bundle_and_each_actor_gets_several():
    jobs = [Path(f"{index}.png") for index in range(10)]
    sizes = [3000] * 8 + [2_000_000, 3000]
    bundles = bundle_jobs(jobs, sizes, 2_000_000, actors=1)
    assert bundles == [jobs[:8], [jobs[8]], [jobs[9]]]  # a photo alone, faces together
    assert len(bundle_jobs(jobs[:8], sizes[:8], 2_000_000, actors=2)) == 8  # 2 actors x 4 bundles at least
