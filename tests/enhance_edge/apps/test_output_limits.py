"""The size of a result is bounded like an input's: `upscale --width/--height/--outscale` past the
limit is one line per file and the batch goes on; within it, a result that will take more than the
memory budget is warned about."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.core.output_size import OutputSize
from enhance_edge.errors import EnhanceEdgeError


def run(*args):
    return CliRunner().invoke(main, ["upscale", *map(str, args)])


def noise(path, width, height):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("size, result", [(["--width", "100000"], "100000x75000 result is 7,500 megapixels"),
                                          (["--outscale", "1e9"], "4000000000x3000000000 result is 12,000,000,000,000 "
                                                                  "megapixels")])
def test_a_result_over_the_limit_is_one_line_naming_the_file_and_the_batch_goes_on(tmp_path, tiny_onnx, size, result):
    big, small = noise(tmp_path / "big.png", 4, 3), noise(tmp_path / "small.png", 1, 1)
    outcome = run(big, "--model", tiny_onnx, *size, "-o", tmp_path / "out", "--max-pixels", "12")
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: {big}: the {result}, over the limit of 48 pixels for results (2x2 times --max-pixels, "
                      f"what the x2 model makes of the largest input allowed; raise --max-pixels to allow it)"]
    assert not (tmp_path / "out" / "big.png").exists()
    both = run(big, small, "--model", tiny_onnx, "--width", "7", "-o", tmp_path / "both", "--max-pixels", "12")
    assert both.exit_code == 1  # big: 7x5 = 35 pixels fit; small: 7x7 = 49 do not, and are one line
    assert (tmp_path / "both" / "big.png").exists() and not (tmp_path / "both" / "small.png").exists()
    assert f"{small}: the 7x7 result is 49 pixels, over the limit of 48 pixels" in both.stderr


def test_a_resized_result_counts_in_the_memory_estimate(tmp_path, tiny_onnx):
    image = noise(tmp_path / "a.png", 40, 30)
    within = run(image, "--model", tiny_onnx, "--max-memory", "129MiB", "--overwrite")
    assert within.exit_code == 0 and "warning" not in within.stderr
    resized = run(image, "--model", tiny_onnx, "--max-memory", "129MiB", "--width", "400")  # 400x300 RGB: 2 MiB
    assert resized.exit_code == 0, resized.output
    assert (f"warning: {image}: upscaling this 40x30 image to 400x300 takes about 131 MiB, over the memory budget "
            f"of 129 MiB (--max-memory)") in resized.stderr


@pytest.mark.parametrize("options, message", [
    (["--width", "1000000000000"], "width must be at most 2,147,483,647 pixels, the longest side an image can have "
                                   "(PNG's and Pillow's limit), got 1000000000000"),
    (["--outscale", "1e300"], "outscale must be at most 2,147,483,647, a factor past which every result is longer "
                              "than an image's side can be, got 1e+300"),
])
def test_a_size_no_image_can_have_is_refused_at_once(tmp_path, tiny_onnx, options, message):
    outcome = run(noise(tmp_path / "a.png", 4, 3), "--model", tiny_onnx, *options)
    assert (outcome.exit_code, outcome.stderr) == (1, f"error: {message}\n")
    with pytest.raises(EnhanceEdgeError, match="height must be at most 2,147,483,647 pixels"):
        OutputSize(height=2**31)
