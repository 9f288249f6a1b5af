"""benchmarks/cluster.py's inputs and arithmetic (the measurement itself needs Ray and minutes)."""

import pytest
from PIL import Image

from enhance_edge.benchmarks.cluster import FACE_SIZE, PHOTO_SIZE, Measurement, synthetic_images, workloads


def test_the_workloads_asked_for_and_their_synthetic_images(tmp_path):
    assert workloads(2000, 40) == [("2000 face crops, 92x112 JPEG", "faces", 2000, FACE_SIZE),
                                   ("40 photos, 1632x1224 JPEG (2.0 MP)", "photos", 40, PHOTO_SIZE)]
    assert [name for _, name, _, _ in workloads(50, 0)] == ["faces"]  # a quick check leaves the photos out
    synthetic_images(tmp_path / "faces", 3, FACE_SIZE, seed=0)
    files = sorted((tmp_path / "faces").iterdir())
    assert [path.name for path in files] == ["img00000.jpg", "img00001.jpg", "img00002.jpg"]
    for path in files:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", FACE_SIZE)
    assert files[0].read_bytes() != files[1].read_bytes()


def test_steady_throughput_leaves_start_up_out_and_compares_with_the_cli():
    cli = Measurement("CLI", files=100, wall_s=12.0, startup_s=2.0)  # 100 files in 10 s once started
    ray = Measurement("Ray", files=100, wall_s=16.0, startup_s=5.0)  # in 11 s
    assert cli.steady_files_per_s == pytest.approx(10.0)
    assert ray.steady_files_per_s == pytest.approx(100 / 11)
    assert cli.row(None) == "| CLI | 100 | 12.0 | 2.0 | 10.00 | (baseline) |"
    assert ray.row(cli) == "| Ray | 100 | 16.0 | 5.0 | 9.09 | 91% |"
