"""`enhance-edge upscale` end to end: a mixed folder of good and bad files, options, bad models."""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge import __version__
from enhance_edge.apps.cli import main
from enhance_edge.core.upscaler import Upscaler

from ...conftest import with_int8_metadata


def rgb(width, height, seed=0):
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([0.5 + 0.4 * np.sin(4 * x), 0.5 + 0.3 * np.cos(3 * y), 0.4 + 0.3 * x * y], -1)
    noise = 0.05 * np.random.default_rng(seed).random((height, width, 3))
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8))


def good_files(folder):
    """One of each kind a user has: JPEG from a phone (rotated by EXIF), PNG, RGBA, 16-bit, GIF."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: 20 wide, 30 high; upright it is 30 x 20
    rgb(30, 20).transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", exif=exif.tobytes(), dpi=(300, 300))
    rgb(24, 16, 1).save(folder / "drawing.png")
    rgb(16, 16, 2).convert("RGBA").save(folder / "sticker.png")
    Image.fromarray(np.arange(20 * 12, dtype=np.uint16).reshape(12, 20) * 250).save(folder / "scan16.png")
    rgb(18, 14, 3).convert("P").save(folder / "icon.gif", transparency=0)
    return {"phone.jpg": ((60, 40), "RGB", "JPEG"), "drawing.png": ((48, 32), "RGB", "PNG"),
            "sticker.png": ((32, 32), "RGBA", "PNG"), "scan16.png": ((40, 24), "I;16", "PNG"),
            "icon.gif": ((36, 28), "P", "GIF")}


def bad_files(folder):
    """One of each way a file is bad, with the reason its error line must give."""
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image\n")
    data = (folder / "drawing.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[:len(data) // 2])
    corrupt = bytearray(data)
    corrupt[60:90] = bytes(30)
    (folder / "corrupt.png").write_bytes(bytes(corrupt))
    Image.new("1", (12000, 10000)).save(folder / "bomb.png")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    return {"empty.png": "empty file", "notes.png": "not an image", "truncated.png": "corrupt or truncated",
            "corrupt.png": "corrupt or truncated", "bomb.png": "over the limit of 64 megapixels",
            "gone.png": "broken symbolic link"}


def run(*args):
    return CliRunner().invoke(main, ["upscale", *map(str, args)])


def model_line(model) -> str:
    """What `upscale` says first: the model and its precision, once for the whole batch."""
    return f"model {Upscaler(model, threads=1).model_name}, fp32"


def test_a_mixed_folder_does_every_good_file_and_one_line_per_bad_one(tmp_path, tiny_onnx):
    folder = tmp_path / "photos"
    good, bad = good_files(folder), bad_files(folder)
    out = tmp_path / "out"
    result = run(folder, "-o", out, "--model", tiny_onnx)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad)
    for name, reason in bad.items():
        [line] = [e for e in errors if e.startswith(f"error: {folder / name}: ")]
        assert reason in line
    assert result.stderr.splitlines()[-1].startswith(f"done {len(good)}, failed {len(bad)}, skipped 0 in ")
    assert sorted(p.name for p in out.iterdir()) == sorted(good)  # nothing for bad files, no temporaries
    for name, (size, mode, image_format) in good.items():
        assert f"{folder / name} -> {out / name}" in result.stdout
        with Image.open(out / name) as image:
            assert (image.size, image.mode, image.format) == (size, mode, image_format)
    with Image.open(out / "phone.jpg") as image:
        assert image.getexif()[0x0131] == f"enhance-edge {__version__}" and image.info["dpi"] == (300, 300)
        assert 0x0112 not in image.getexif()
    with Image.open(out / "sticker.png") as image:
        assert image.info["Software"] == f"enhance-edge {__version__}"
        assert f"with model {tiny_onnx.name} (sha256" in image.info["Description"]


def test_all_good_exits_0_and_a_rerun_skips(tmp_path, tiny_onnx):
    good_files(tmp_path / "in")
    first = run(tmp_path / "in", "--model", tiny_onnx)
    assert first.exit_code == 0, first.output
    assert (tmp_path / "in" / "phone_x2.jpg").exists()
    again = run(tmp_path / "in", "--model", tiny_onnx)
    assert again.exit_code == 0
    assert again.stderr.count("skipped: ") == 5 and "done 0, failed 0, skipped 5" in again.stderr
    assert not (tmp_path / "in" / "phone_x2_x2.jpg").exists()  # earlier outputs are not inputs
    forced = run(tmp_path / "in", "--model", tiny_onnx, "--overwrite")
    assert forced.exit_code == 0 and "done 5, failed 0, skipped 0" in forced.stderr


def test_recursive_globs_suffix_format_and_quality(tmp_path, tiny_onnx):
    rgb(40, 30).save(tmp_path / "a.png")
    (tmp_path / "trip").mkdir()
    rgb(40, 30, 1).save(tmp_path / "trip" / "b.png")
    out = tmp_path / "out"
    result = run(tmp_path, "-r", "-o", out, "--format", "jpeg", "--quality", "40", "--suffix", "_big",
                 "--model", tiny_onnx)
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg")) == ["a_big.jpg", "trip/b_big.jpg"]
    low = (out / "a_big.jpg").stat().st_size
    run(tmp_path / "a.png", "-o", tmp_path / "high.jpg", "--quality", "95", "--model", tiny_onnx)
    assert low < (tmp_path / "high.jpg").stat().st_size
    matched = run(f"{tmp_path}/**/*.png", "-o", tmp_path / "globbed", "--model", tiny_onnx)
    assert matched.exit_code == 0 and sorted(p.name for p in (tmp_path / "globbed").iterdir()) == ["a.png", "b.png"]


def test_tiles_give_the_untiled_result(tmp_path, tiny_onnx):
    rgb(150, 110).save(tmp_path / "big.png")
    assert run(tmp_path / "big.png", "-o", tmp_path / "whole.png", "--model", tiny_onnx).exit_code == 0
    tiled = run(tmp_path / "big.png", "-o", tmp_path / "tiled.png", "--tile", "32", "--model", tiny_onnx)
    assert tiled.exit_code == 0
    whole_pixels, tiled_pixels = (np.asarray(Image.open(tmp_path / name), int) for name in ("whole.png", "tiled.png"))
    difference = np.abs(whole_pixels - tiled_pixels)
    assert difference.max() <= 3 and difference.mean() <= 0.25


def test_the_pixel_limit_can_be_lowered_and_raised(tmp_path, tiny_onnx):
    rgb(40, 30).save(tmp_path / "a.png")
    refused = run(tmp_path / "a.png", "--max-pixels", "1K", "--model", tiny_onnx)
    assert refused.exit_code == 1
    assert "40x30 is 1,200 pixels, over the limit of 1,000 pixels" in refused.stderr
    assert run(tmp_path / "a.png", "--max-pixels", "1.2K", "--model", tiny_onnx).exit_code == 0
    bad = run(tmp_path / "a.png", "--max-pixels", "lots")
    assert bad.exit_code == 2 and "expected a number with an optional K, M or G suffix, got 'lots'" in bad.output


def test_memory_budget_accepts_sizes(tmp_path, tiny_onnx):
    rgb(40, 30).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--max-memory", "129MiB", "--model", tiny_onnx)
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert run(tmp_path / "a.png", "--max-memory", "0").exit_code == 2


def test_a_memory_budget_without_a_unit_is_refused_below_a_megabyte(tmp_path, tiny_onnx):
    """"512" is 512 bytes, never what was meant: refused, saying so, rather than run on tiny tiles."""
    rgb(40, 30).save(tmp_path / "a.png")
    bare = run(tmp_path / "a.png", "--max-memory", "512", "--model", tiny_onnx)
    assert bare.exit_code == 2
    assert "must be at least 1M, got '512' (a plain number counts bytes: 512M is 512 MiB)" in bare.output
    assert "plain number" not in run(tmp_path / "a.png", "--max-memory", "0.5M").output
    assert run(tmp_path / "a.png", "--max-memory", str(2**20), "--model", tiny_onnx).exit_code == 0


def test_a_budget_too_small_for_the_image_is_warned_about_and_documented(tmp_path, tiny_onnx):
    rgb(40, 30).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--max-memory", "128M", "--model", tiny_onnx, "--overwrite")
    assert result.exit_code == 0 and (tmp_path / "a_x2.png").exists()
    assert (f"warning: {tmp_path / 'a.png'}: upscaling this 40x30 image takes about 129 MiB, over the memory "
            f"budget of 128 MiB (--max-memory)") in result.stderr
    assert "Tiles bound only the model run" in " ".join(run("--help").output.split())


def test_outputs_beside_inputs_are_named_for_the_models_scale(tmp_path, tiny_x4_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--model", tiny_x4_onnx)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x4.png"]
    with Image.open(tmp_path / "a_x4.png") as image:
        assert image.size == (48, 40)


def test_outscale_and_width_resize_the_models_result_and_name_the_output_for_it(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--model", tiny_onnx, "--outscale", "1.5").exit_code == 0
    assert run(tmp_path / "a.png", "--model", tiny_onnx, "--width", "30").exit_code == 0
    with Image.open(tmp_path / "a_x1.5.png") as image:
        assert image.size == (18, 15)
        assert "resized with Lanczos to x1.5" in image.info["Description"]
    with Image.open(tmp_path / "a_w30.png") as image:
        assert image.size == (30, 25)  # the aspect ratio kept
    native = Upscaler(tiny_onnx, threads=1).upscale(Image.open(tmp_path / "a.png"))
    with Image.open(tmp_path / "a_x1.5.png") as image:
        assert image.tobytes() == native.resize((18, 15), Image.Resampling.LANCZOS).tobytes()


def test_scale_checks_a_model_files_scale_and_sizes_conflict_in_one_line(tmp_path, tiny_onnx, tiny_x4_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--model", tiny_x4_onnx, "--scale", "4").exit_code == 0
    wrong = run(tmp_path / "a.png", "--model", tiny_onnx, "--scale", "4")
    assert wrong.exit_code == 1 and "upscales x2, not the x4 asked for" in wrong.output
    both = run(tmp_path / "a.png", "--model", tiny_onnx, "--outscale", "3", "--height", "20")
    assert both.exit_code == 1 and "give outscale (3) or a target width and height (height 20), not both" in both.output
    assert len(both.output.strip().splitlines()) == 1
    assert run(tmp_path / "a.png", "--scale", "3").exit_code == 2  # not a choice


def test_a_file_named_like_a_pattern_with_o_writes_that_file(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "face[1].png")
    result = run(tmp_path / "face[1].png", "-o", tmp_path / "big.png", "--model", tiny_onnx)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "big.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["-o", "out.xyz"], "-o 'OUT/out.xyz': '.xyz' is not an image format enhance-edge can write"),
    (["-o", "big.png", "--suffix", "_big"], "--suffix '_big' does not apply when -o 'OUT/big.png' names the output"),
])
def test_output_options_that_cannot_be_honoured_are_one_line(tmp_path, tiny_onnx, args, message):
    rgb(12, 10).save(tmp_path / "a.png")
    args = [str(tmp_path / arg) if arg.endswith((".xyz", ".png")) else arg for arg in args]
    result = run(tmp_path / "a.png", *args, "--model", tiny_onnx)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"error: {message.replace('OUT', str(tmp_path))}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_a_precision_other_than_a_model_files_own_is_refused_as_the_help_says(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--model", tiny_onnx, "--precision", "int8")
    assert result.exit_code == 1 and "is an fp32 model file, and --precision int8 cannot change that" in result.output
    assert run(tmp_path / "a.png", "--model", tiny_onnx, "--precision", "fp32").exit_code == 0
    assert "A model file runs in its own precision: auto, or that one" in " ".join(run("--help").output.split())


def test_a_jpeg_result_over_its_size_limit_fails_before_the_upscale_and_suggests_png(tmp_path, tiny_onnx):
    rgb(32_751, 2).save(tmp_path / "wide.jpg")
    result = run(tmp_path / "wide.jpg", "--model", tiny_onnx)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"error: {tmp_path / 'wide.jpg'}: the 65502x4 result is too large for JPEG, which holds at most 65,500 "
            f"pixels a side; PNG has no such limit (--format png)") in result.stderr
    assert run(tmp_path / "wide.jpg", "--format", "png", "--model", tiny_onnx).exit_code == 0


def test_a_closed_standard_output_stops_the_batch_in_one_line(tmp_path, tiny_onnx):
    for seed in range(3):
        rgb(12, 10, seed).save(tmp_path / f"{seed}.png")
    # As `enhance-edge upscale ... | head -1` once head has exited: nobody reads what is printed.
    command = [sys.executable, "-c", "from enhance_edge.apps.cli import main; main()", "upscale", str(tmp_path),
               "-o", str(tmp_path / "out"), "--model", str(tiny_onnx)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert stderr.splitlines() == [model_line(tiny_onnx), "stopped: standard output was closed; done 1, failed 0, "
                                                          "skipped 0; no partial file was left"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["0.png"]


@pytest.mark.parametrize("make_model, message", [
    (lambda d: d / "absent.onnx", "does not exist"),
    (lambda d: (d / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 20) and d / "corrupt.onnx", "cannot load model"),
])
def test_a_missing_or_corrupt_model_is_one_line_and_no_output(tmp_path, make_model, message):
    rgb(20, 10).save(tmp_path / "a.png")
    model = make_model(tmp_path)
    result = run(tmp_path / "a.png", "--model", model)
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and str(model) in line and message in line
    assert not (tmp_path / "a_x2.png").exists()


def test_a_model_whose_inputs_do_not_fit_is_one_line(tmp_path, tiny_onnx):
    import onnx

    model = onnx.load(str(tiny_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    path = tmp_path / "rgb_model.onnx"
    onnx.save(model, str(path))
    rgb(20, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--model", path)
    assert result.exit_code == 1
    assert re.fullmatch(r"error: model '.*rgb_model.onnx' takes inputs of shape .*\n", result.output)


def test_a_model_that_fails_on_images_names_each_file_and_goes_on(tmp_path, tiny_onnx):
    import onnx
    from onnx import helper

    model = onnx.load(str(tiny_onnx))  # keep its metadata and I/O, make the graph return its input
    del model.graph.node[:], model.graph.initializer[:]
    model.graph.node.append(helper.make_node("Identity", ["input"], ["output"]))
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    rgb(20, 10).save(tmp_path / "a.png")
    rgb(12, 8).save(tmp_path / "b.png")
    result = run(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out", "--model", path)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and errors[0].startswith(f"error: {tmp_path / 'a.png'}: model ")
    assert "returned shape (1, 1, 8, 12), expected (1, 1, 16, 24)" in errors[1]
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_folder_fails_each_file_and_leaves_nothing(tmp_path, tiny_onnx):
    good_files(tmp_path / "in")
    (tmp_path / "blocker").write_text("a file where the output folder should go")
    result = run(tmp_path / "in", "-o", tmp_path / "blocker" / "out", "--model", tiny_onnx)
    assert result.exit_code == 1
    assert result.stderr.count("cannot write") == 5 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "in"]


def test_no_images_found_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = run(tmp_path)
    assert result.exit_code == 1 and "no images found in" in result.output and "-r searches" in result.output


def test_ctrl_c_stops_cleanly(tmp_path, tiny_onnx, monkeypatch):
    good_files(tmp_path)

    def interrupted(self, image, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr("enhance_edge.core.upscaler.Upscaler.upscale", interrupted)
    result = run(tmp_path, "-o", tmp_path / "out", "--model", tiny_onnx)
    assert result.exit_code == 130 and "interrupted: done 0" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_threads_reach_onnxruntime(tmp_path, tiny_onnx, monkeypatch):
    from enhance_edge.core import upscaler as module

    seen = []
    original = module.open_session

    def recording(path, provider, threads):
        session, info = original(path, provider, threads)
        seen.append(session.get_session_options().intra_op_num_threads)
        return session, info

    monkeypatch.setattr(module, "open_session", recording)
    rgb(20, 10).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--threads", "3", "--model", tiny_onnx).exit_code == 0
    assert seen == [3]


def test_a_terminal_gets_a_progress_bar(tmp_path, tiny_onnx, monkeypatch):
    import click._termui_impl

    good_files(tmp_path / "in")
    monkeypatch.setattr("enhance_edge.apps.cli._stderr_is_terminal", lambda: True)
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)
    result = run(tmp_path / "in", "--model", tiny_onnx)
    assert result.exit_code == 0, result.output
    assert "upscaling" in result.stderr and "100%" in result.stderr
    assert "\r\033[K" in result.stderr  # the bar's line is cleared before each message


def test_pipes_get_no_progress_bar(tmp_path, tiny_onnx):
    good_files(tmp_path / "in")
    result = run(tmp_path / "in", "--model", tiny_onnx)
    assert "upscaling" not in result.stderr and "\r" not in result.stderr


def test_names_with_control_characters_are_printed_escaped(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "evil\x1b[2Jname\nsecond line.png", format="PNG")
    (tmp_path / "bad\rname.png").write_text("not an image")
    result = run(tmp_path, "-o", tmp_path / "out", "--model", tiny_onnx)
    assert "\x1b" not in result.output and "\r" not in result.output
    assert f"{tmp_path}/bad\\rname.png: not an image" in result.stderr
    assert result.stdout.endswith("out/evil\\x1b[2Jname\\nsecond line.png\n")
    assert len(result.stdout.splitlines()) == 1


def upscale_in_a_process(*args, script: str = "from enhance_edge.apps.cli import main; main()"):
    """`enhance-edge upscale ARGS` in a subprocess (run by ``script``), its stdout and stderr piped."""
    return subprocess.Popen([sys.executable, "-c", script, "upscale", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_named_pipe_and_a_link_loop_among_the_inputs_are_one_line_each(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")  # nobody ever writes to it
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    process = upscale_in_a_process(tmp_path / "pipe.png", tmp_path / "loop.png", tmp_path / "good.png",
                                   "-o", tmp_path / "out", "--model", tiny_onnx)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr
    assert stderr.splitlines()[:3] == [model_line(tiny_onnx),
                                      f"error: {tmp_path / 'pipe.png'}: is a named pipe, not a regular file",
                                      f"error: {tmp_path / 'loop.png'}: symbolic link loop"]
    assert stdout == f"{tmp_path / 'good.png'} -> {tmp_path / 'out' / 'good.png'}\n"


# Runs `upscale` with an encoder that writes half an image, says so and then waits to be stopped.
STALLED_WRITE = """
import sys, time
import enhance_edge.core.batch
def stalled(image, handle, *args, **kwargs):
    handle.write(b"half an image")
    handle.flush()
    print("writing", file=sys.stderr, flush=True)
    time.sleep(120)
enhance_edge.core.batch.write_image = stalled
from enhance_edge.apps.cli import main
main()
"""


def test_sigterm_stops_like_ctrl_c_and_leaves_no_part(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    process = upscale_in_a_process(tmp_path / "a.png", "--model", tiny_onnx, script=STALLED_WRITE)
    assert process.stderr.readline() == model_line(tiny_onnx) + "\n"
    assert process.stderr.readline() == "writing\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    # acknowledged the moment it arrived, while the write was still held up
    assert stderr == ("stopping after the current tile...\n"
                      "\ninterrupted: done 0, failed 0, skipped 0; no partial file was left\n")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


# Runs `upscale` with a model run that holds the main thread in C code, as onnxruntime's does (Python
# code, and so KeyboardInterrupt, runs again only when it returns), until Ctrl-C arrives, and then on
# until the test has looked (the file CHECKED exists): how long either takes is up to the machine's
# load, not to the test.
HELD_MODEL_RUN = """
import hashlib, os, signal, sys, time
# Ctrl-C in a terminal reaches a process whose SIGINT is Python's own handler, unblocked; a child of
# the test run is not always one (in about half of the full-suite runs of 2026-12-06 it never heard it).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
import enhance_edge.core.upscaler
def held(self, image, **options):
    print("running", file=sys.stderr, flush=True)
    try:
        for _ in range(3000):
            hashlib.pbkdf2_hmac("sha256", b"tile", b"salt", 100_000)  # tens of ms in C, deaf to signals
    except KeyboardInterrupt:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.environ["CHECKED"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise
    raise AssertionError("no interrupt came")
enhance_edge.core.upscaler.Upscaler.upscale = held
from enhance_edge.apps.cli import main
main()
"""


def test_ctrl_c_during_a_model_run_is_acknowledged_at_once(tmp_path, tiny_onnx, monkeypatch):
    rgb(12, 10).save(tmp_path / "a.png")
    checked = tmp_path.parent / f"{tmp_path.name}.checked"
    monkeypatch.setenv("CHECKED", str(checked))
    process = upscale_in_a_process(tmp_path / "a.png", "--model", tiny_onnx, script=HELD_MODEL_RUN)
    assert process.stderr.readline() == model_line(tiny_onnx) + "\n"
    assert process.stderr.readline() == "running\n"
    process.send_signal(signal.SIGINT)
    assert process.stderr.readline() == "stopping after the current tile...\n"
    assert process.poll() is None  # said while the run still held the main thread
    checked.touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted: done 0" in stderr and "AssertionError" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_the_parts_a_killed_run_left_are_removed_by_the_next_run(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    process = upscale_in_a_process(tmp_path / "a.png", "--model", tiny_onnx, script=STALLED_WRITE)
    assert process.stderr.readline() == model_line(tiny_onnx) + "\n"
    assert process.stderr.readline() == "writing\n"
    process.kill()
    process.communicate(timeout=60)
    [part] = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    long_ago = part.stat().st_mtime - 3600
    os.utime(part, (long_ago, long_ago))
    result = run(tmp_path / "a.png", "--model", tiny_onnx)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[1] == ("removed 1 partial file(s) that a killed earlier run left beside "
                                             "its outputs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_x2.png"]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_json_prints_one_object_per_file_and_a_summary(tmp_path, tiny_onnx):
    folder = tmp_path / "in"
    folder.mkdir()
    rgb(12, 10).save(folder / "a.png")
    (folder / "broken.png").write_text("not an image")
    rgb(14, 8, 1).save(folder / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    rgb(2, 2).save(out / "b.png")  # an earlier output: skipped
    result = run(folder, "-o", out, "--model", tiny_onnx, "--json")
    assert result.exit_code == 1
    model = Upscaler(tiny_onnx, threads=1).model_name
    a, b, broken, summary = json_lines(result.stdout)  # in name order
    assert {key: a[key] for key in ("type", "input", "output", "status", "error", "model", "precision", "strength",
                                    "input_size", "output_size")} == {
        "type": "file", "input": str(folder / "a.png"), "output": str(out / "a.png"), "status": "done",
        "error": None, "model": model, "precision": "fp32", "strength": None, "input_size": [12, 10],
        "output_size": [24, 20]}
    assert broken["status"] == "failed" and broken["error"] == f"{folder / 'broken.png'}: not an image (or a format " \
                                                               f"Pillow cannot read)"
    assert b["status"] == "skipped" and b["output"] == str(out / "b.png") and b["error"] is None
    assert all(isinstance(record["seconds"], float) for record in (a, broken, b, summary))
    assert {key: summary[key] for key in ("type", "done", "failed", "skipped", "model", "precision")} == {
        "type": "summary", "done": 1, "failed": 1, "skipped": 1, "model": model, "precision": "fp32"}
    assert "->" not in result.stdout and "error: " in result.stderr  # messages stay on stderr


def test_the_model_and_precision_are_said_once(tmp_path, tiny_onnx):
    for seed in range(3):
        rgb(12, 10, seed).save(tmp_path / f"{seed}.png")
    result = run(tmp_path, "-o", tmp_path / "out", "--model", tiny_onnx)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == model_line(tiny_onnx)
    assert result.stderr.count("model ") == 1


def test_the_bundled_models_line_names_the_precision_auto_chose(tmp_path):
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--model", "fast", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    strength = ", strength auto" if Upscaler("fast", precision="fp32").info.conditioned else ""
    assert re.fullmatch(rf"model fast\.onnx \(sha256 [0-9a-f]{{12}}\), fp32{strength}", result.stderr.splitlines()[0])


def test_a_log_gets_progress_lines_with_files_done_and_time_left(tmp_path, tiny_onnx, monkeypatch):
    monkeypatch.setattr("enhance_edge.apps.cli.PROGRESS_LINE_SECONDS", 0.0)  # a line at every step
    for seed in range(3):
        rgb(12, 10, seed).save(tmp_path / f"{seed}.png")
    result = run(tmp_path, "-o", tmp_path / "out", "--model", tiny_onnx)  # stderr is not a terminal here
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert lines and all(re.fullmatch(r"progress: [0-3]/3 files, \d+%, \d+ s elapsed(, about \d+ s left)?", line)
                         for line in lines)
    assert lines[-1].startswith("progress: 3/3 files, 100%, ") and "about 0 s left" in lines[-1]
    assert "progress: 1/3 files, 33%" in result.stderr


def test_no_progress_line_before_a_few_seconds(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    assert "progress:" not in run(tmp_path / "a.png", "--model", tiny_onnx).stderr


def test_a_folder_without_r_says_how_many_sub_folders_it_left_out(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    for name in ("2019", "2020"):
        (tmp_path / name).mkdir()
        rgb(12, 10).save(tmp_path / name / "b.png")
    result = run(tmp_path, "-o", tmp_path / "out", "--model", tiny_onnx)
    assert result.exit_code == 0
    assert f"note: {tmp_path}: 2 sub-folders not searched (-r includes them)" in result.stderr.splitlines()
    assert "sub-folder" not in run(tmp_path, "-r", "-o", tmp_path / "all", "--model", tiny_onnx).stderr


def test_a_pattern_matching_nothing_says_so(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "*.tif", tmp_path / "a.png", "--model", tiny_onnx)
    assert result.exit_code == 1
    assert f"error: {tmp_path}/*.tif: no file matches this pattern" in result.stderr.splitlines()
    assert (tmp_path / "a_x2.png").exists()


def test_fail_on_skip_makes_an_existing_output_an_error(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    assert run(tmp_path / "a.png", "--model", tiny_onnx).exit_code == 0
    again = run(tmp_path / "a.png", "--model", tiny_onnx)
    assert again.exit_code == 0 and again.stderr.splitlines()[-1].startswith("done 0, failed 0, skipped 1 in ")
    strict = run(tmp_path / "a.png", "--model", tiny_onnx, "--fail-on-skip")
    assert strict.exit_code == 1
    assert f"error: {tmp_path / 'a_x2.png'} exists (--overwrite replaces it)" in strict.stderr.splitlines()
    assert strict.stderr.splitlines()[-1].endswith("; skipped outputs fail the run (--fail-on-skip)")


def test_json_does_not_apply_to_a_cluster_run_yet(tmp_path, tiny_onnx):
    result = run(tmp_path, "--cluster", "local", "--json", "--model", tiny_onnx)
    assert result.exit_code == 2 and "--json does not apply to --cluster yet" in result.output


def test_the_api_writes_exactly_what_the_cli_writes_by_default(tmp_path, yale_test_faces):
    from enhance_edge import Outcome, read_image

    face = tmp_path / "face.png"
    face.write_bytes(yale_test_faces[0].read_bytes())
    assert run(face).exit_code == 0  # the bundled default model, every option at its default
    cli_bytes = (tmp_path / "face_x2.png").read_bytes()
    (tmp_path / "face_x2.png").rename(tmp_path / "cli.png")
    upscaler = Upscaler()
    result = upscaler.upscale_file(face)
    assert result.status is Outcome.DONE and result.output == tmp_path / "face_x2.png"
    assert result.output.read_bytes() == cli_bytes
    image, _ = read_image(face)
    with Image.open(tmp_path / "cli.png") as written:
        assert np.array_equal(np.asarray(upscaler.upscale(image)), np.asarray(written))


def test_upscale_file_keeps_what_the_cli_keeps(tmp_path, tiny_onnx):
    from enhance_edge import FileResult, ImageError, Outcome, read_image

    good_files(tmp_path / "in")
    upscaler = Upscaler(tiny_onnx, threads=1)
    result = upscaler.upscale_file(tmp_path / "in" / "phone.jpg", tmp_path / "out")  # a folder: keeps the name
    assert isinstance(result, FileResult) and result.status is Outcome.DONE
    assert (result.input_size, result.output_size) == ((30, 20), (60, 40))  # upright, as EXIF says
    with Image.open(tmp_path / "out" / "phone.jpg") as written:
        assert written.format == "JPEG" and written.size == (60, 40) and written.info["dpi"] == (300, 300)
        assert written.getexif()[0x0131] == f"enhance-edge {__version__}"  # the provenance tag
    image, source = read_image(tmp_path / "in" / "phone.jpg")
    assert image.size == (30, 20) and source.dpi == (300, 300) and source.format == "JPEG"
    png = upscaler.upscale_file(tmp_path / "in" / "phone.jpg", format="png", quality=50)
    assert png.output == tmp_path / "in" / "phone_x2.png" and png.output.exists()
    assert upscaler.upscale_file(tmp_path / "in" / "phone.jpg", format="png").status is Outcome.SKIPPED
    with pytest.raises(ImageError, match="upscale_file takes one image file, not a folder or a pattern"):
        upscaler.upscale_file(tmp_path / "in")
    with pytest.raises(ImageError, match="over the limit of 100 pixels"):
        upscaler.upscale_file(tmp_path / "in" / "drawing.png", max_pixels=100)
    assert not list((tmp_path / "in").glob(".*.part"))


def test_each_file_records_the_precision_that_ran_it(tmp_path, tiny_onnx):
    (tmp_path / "tiny.onnx").write_bytes(tiny_onnx.read_bytes())
    int8 = with_int8_metadata(tmp_path / "tiny.onnx", tmp_path / "tiny-int8.onnx")
    folder = tmp_path / "in"
    folder.mkdir()
    planes = {"flat.png": np.full((10, 12), 128, np.uint8),
              "noisy.png": np.random.default_rng(0).integers(0, 256, (10, 12)).astype(np.uint8)}
    for name, plane in planes.items():
        Image.fromarray(plane).save(folder / name)
    result = run(folder, "-o", tmp_path / "out", "--model", int8, "--json")
    assert result.exit_code == 0, result.output
    flat, noisy, summary = json_lines(result.stdout)
    assert flat["precision"] == noisy["precision"] == summary["precision"] == "int8"  # the flat one too
    assert "tiny-int8.onnx (sha256" in result.stderr and ", int8" in result.stderr
    api = Upscaler(int8, threads=1)  # the API gives the same pixels and says the same
    assert np.array_equal(np.asarray(api.upscale(Image.open(folder / "flat.png"))),
                          np.asarray(Image.open(tmp_path / "out" / "flat.png")))
    assert api.last_precision == "int8"


def test_a_tiled_image_reports_its_tiles_as_they_finish(tmp_path, tiny_onnx, monkeypatch):
    monkeypatch.setattr("enhance_edge.apps.cli.PROGRESS_LINE_SECONDS", 0.0)  # a line at every step
    rgb(40, 30).save(tmp_path / "big.png")
    result = run(tmp_path / "big.png", "--model", tiny_onnx, "--tile", 16)  # 2 rows of 3 tiles
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert [re.search(r"\(tile (\d)/6 of the current one\)", line)[1] for line in lines[:6]] == list("123456")


def test_a_folder_of_earlier_outputs_says_why_it_has_no_images_and_how_to_take_them(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    outputs = tmp_path / "outputs"
    assert run(tmp_path / "a.png", "-o", outputs, "--model", tiny_onnx).exit_code == 0
    result = run(outputs, "--model", tiny_onnx)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: no images found in {outputs}: its 1 image file(s) are outputs of an earlier run (tagged by "
        f"enhance-edge), which a folder's listing leaves out; name the files to upscale them again, e.g. "
        f"{outputs / '*.png'}")
    again = run(outputs / "*.png", "--model", tiny_onnx)  # the pattern it suggests, quoted
    assert again.exit_code == 0 and (outputs / "a_x2.png").is_file()


def test_a_write_error_names_the_output_not_its_hidden_temporary(tmp_path, tiny_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    (tmp_path / "out" / "a.png").mkdir(parents=True)  # where the output would be renamed to
    result = run(tmp_path / "a.png", "-o", tmp_path / "out", "--model", tiny_onnx, "--overwrite")
    assert result.exit_code == 1 and ".part" not in result.output
    assert f"error: {tmp_path / 'out' / 'a.png'}: cannot write (Is a directory)" in result.stderr.splitlines()


def test_the_strength_auto_chose_is_in_each_files_line_and_json(tmp_path, tiny_conditioned_onnx):
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "-o", tmp_path / "out.png", "--model", tiny_conditioned_onnx)
    assert result.exit_code == 0, result.output
    chosen = float(re.fullmatch(rf"{re.escape(str(tmp_path / 'a.png'))} -> .*out\.png \(strength (\d\.\d\d)\)\n",
                                result.stdout)[1])
    as_json = run(tmp_path / "a.png", "-o", tmp_path / "out.png", "--model", tiny_conditioned_onnx, "--overwrite",
                  "--json")
    record, summary = json_lines(as_json.stdout)
    assert isinstance(record["strength"], float) and round(record["strength"], 2) == chosen
    assert summary["strength"] == "auto"  # the setting the whole run had
    fixed = run(tmp_path / "a.png", "-o", tmp_path / "out.png", "--model", tiny_conditioned_onnx, "--overwrite",
                "--strength", "0.25")
    assert fixed.stdout.endswith(" (strength 0.25)\n")


@pytest.mark.parametrize("args, message", [
    (["--model", "defualt"], "error: model 'defualt' does not exist: it is neither a file nor a bundled model "
                             "(default, fast, default-x4); did you mean 'default'?"),
    (["--model", "{fake}"], "error: cannot load model '{fake}': not an ONNX model (its content does not parse as "
                            "one)"),
    (["--outscale", "2", "--width", "1000"], "error: give outscale (2) or a target width and height (width 1000), "
                                             "not both"),
])
def test_a_mistake_is_one_line_that_says_what_to_do(tmp_path, args, message):
    rgb(12, 10).save(tmp_path / "a.png")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00not a model\xff" * 10)
    result = run(tmp_path / "a.png", *(arg.format(fake=fake) for arg in args))
    assert result.exit_code == 1 and result.stderr == message.format(fake=fake) + "\n"


def test_an_unavailable_gpu_provider_names_the_package_that_brings_it(tmp_path, tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    rgb(12, 10).save(tmp_path / "a.png")
    result = run(tmp_path / "a.png", "--model", tiny_onnx, "--provider", "cuda")
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: execution provider 'cuda' is not available in this onnxruntime; ")
    assert result.stderr.endswith("; it comes with the onnxruntime-gpu package, installed in place of onnxruntime: "
                                  "pip uninstall onnxruntime && pip install onnxruntime-gpu\n")


@pytest.mark.parametrize("model, scale, pixels, suggested", [
    ("default", 2, 12_000_000, True), ("default", 2, 1_000_000, False), ("fast", 2, 12_000_000, False),
    ("default-x4", 4, 12_000_000, False),  # no fast x4 model
    ("my-model.onnx", 2, 12_000_000, False),
])
def test_a_long_run_of_a_larger_bundled_model_points_to_the_fast_one(model, scale, pixels, suggested):
    from enhance_edge.apps.cli import _faster_model_note

    note = _faster_model_note(model, scale, pixels)
    assert (note is not None) == suggested
    if suggested:
        assert note == ("note: 12 megapixels with model default can take minutes on a CPU; --model fast is several "
                        "times quicker, for a little less detail")
