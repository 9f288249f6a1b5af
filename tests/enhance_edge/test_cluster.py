"""Upscaling on a local Ray cluster (2 CPUs): the same files as `enhance-edge upscale`, a bad file
reported, a killed actor's files retried, a rerun that skips what is done."""

import csv
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.cli import main
from enhance_edge.cluster import SUMMARY_NAME, ActorPlan, Status, bundle_jobs, plan_actors
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


def upscale_worker_pids() -> list[int]:
    """The Ray Data actors running UpscaleWorker (Ray titles its worker processes ray::ACTOR)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # not a process, or one that just ended
            continue
        if entry.name.isdigit() and command.startswith(b"ray::MapWorker(MapBatches(UpscaleWorker))"):
            pids.append(int(entry.name))
    return pids


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
    uses a Ray its process already runs."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@needs_ray
def test_a_killed_actor_and_a_corrupt_file_still_give_the_plain_commands_files(tmp_path, local_ray):
    from enhance_edge.cluster import upscale_on_cluster

    names = make_folder(tmp_path / "in")
    plain = CliRunner().invoke(main, ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "plain"),
                                      "--tile", str(TILE)])
    assert plain.exit_code == 1 and "corrupt.png" in plain.output  # the bad file fails the plain command too

    killed: list[int] = []
    reported_after_kill: list[str] = []

    def kill_an_actor_after_the_first_face(item, finished, total):
        if killed:
            reported_after_kill.append(item.source.name)
        elif item.status is Status.DONE:
            pid = upscale_worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    run = upscale_on_cluster([tmp_path / "in"], tmp_path / "out", cluster="local", tile=TILE,
                             report=kill_an_actor_after_the_first_face)

    assert killed and reported_after_kill, "the actor was not killed while files remained"
    assert run.actors == ActorPlan(count=2, cpus=0.5, threads=1)
    # A temporary the killed actor was writing may remain (hidden; the next run deletes it once stale).
    outputs = sorted(path.name for path in (tmp_path / "out").iterdir() if not path.name.startswith("."))
    assert outputs == sorted(names + [SUMMARY_NAME]), "every good file once, and nothing else"
    for name in names:
        assert_same_image(tmp_path / "out" / name, tmp_path / "plain" / name)
    summary = read_summary(run.summary)
    assert run.summary == tmp_path / "out" / SUMMARY_NAME
    assert {name: status for name, (status, _) in summary.items()} == {**dict.fromkeys(names, "done"),
                                                                        "corrupt.png": "failed"}
    assert "corrupt.png: corrupt or truncated image" in summary["corrupt.png"][1]
    assert (run.count(Status.DONE), run.count(Status.FAILED)) == (len(names), 1)

    # Run again: what is done is skipped (not rewritten), the bad file is tried and reported again.
    written = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in names}
    rerun = upscale_on_cluster([tmp_path / "in"], tmp_path / "out", cluster="local", tile=TILE)
    assert {name: status for name, (status, _) in read_summary(rerun.summary).items()} == {
        **dict.fromkeys(names, "skipped"), "corrupt.png": "failed"}
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
    assert lines == set(plain.stdout.splitlines()), "one 'SOURCE -> TARGET' line per file, as without --cluster"
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
    script = ("import sys\nfrom enhance_edge.cli import main\n"
              "for args in (['--help'], ['upscale', '--help'], ['upscale', sys.argv[1]]):\n"
              "    try:\n        main(args)\n    except SystemExit as exit:\n        assert not exit.code, exit\n"
              "loaded = sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.'))\n"
              "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "face.png")], capture_output=True, text=True)
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
