"""Batches: which output each input gets, conflicts, skipping, and nothing half-written."""

import os

import numpy as np
import pytest
from PIL import Image

from enhance_edge.core.batch import Job, Outcome, expand_inputs, plan_jobs, unsearched_folders, upscale_file
from enhance_edge.errors import EnhanceEdgeError, ImageError
from enhance_edge.core.strength import parse_strength
from enhance_edge.core.upscaler import Upscaler


@pytest.fixture(scope="module")
def upscaler(tiny_onnx):
    return Upscaler(tiny_onnx, threads=1)


def save(path, size=(12, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(
        mode).save(path)
    return path


def targets(jobs):
    return [(job.source.name, str(job.target), job.problem) for job in jobs]


def test_outputs_go_beside_inputs_with_a_suffix(tmp_path):
    a = save(tmp_path / "a.png")
    assert targets(plan_jobs([a], None, scale=2)) == [("a.png", str(tmp_path / "a_x2.png"), None)]
    assert targets(plan_jobs([a], None, scale=2, suffix="-big")) == [("a.png", str(tmp_path / "a-big.png"), None)]


def test_one_file_and_o_names_the_file(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "out.jpg", scale=2)[0].target == tmp_path / "out.jpg"


def test_a_folder_keeps_names_in_o_and_sub_folders_with_r(tmp_path):
    root = tmp_path / "photos"
    save(root / "b.jpg"), save(root / "trip" / "c.png"), save(root / ".hidden.png")
    (root / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert targets(plan_jobs([root], out, scale=2)) == [("b.jpg", str(out / "b.jpg"), None)]
    assert targets(plan_jobs([root], out, scale=2, recursive=True)) == [
        ("b.jpg", str(out / "b.jpg"), None), ("c.png", str(out / "trip" / "c.png"), None)]


def test_format_changes_the_extension(tmp_path):
    a = save(tmp_path / "a.jpg")
    assert plan_jobs([a], tmp_path / "out", scale=2, output_format="webp")[0].target == tmp_path / "out" / "a.webp"
    with pytest.raises(EnhanceEdgeError, match="unknown output format 'jxl'"):
        plan_jobs([a], None, scale=2, output_format="jxl")


def test_inputs_pillow_cannot_write_become_png(tmp_path):
    psd = tmp_path / "layered.psd"
    psd.write_bytes(b"8BPS")
    assert plan_jobs([psd], None, scale=2)[0].target == tmp_path / "layered_x2.png"


def test_globs_are_expanded_and_a_pattern_matching_nothing_is_kept_to_fail(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "b.png"), save(tmp_path / "c.jpg")
    jobs = plan_jobs([tmp_path / "*.png"], tmp_path / "out", scale=2)
    assert [job.source.name for job in jobs] == ["a.png", "b.png"]
    missing = plan_jobs([tmp_path / "*.gif"], tmp_path / "out", scale=2)
    assert [(job.source.name, job.problem) for job in missing] == [("*.gif", "no file matches this pattern")]
    with pytest.raises(EnhanceEdgeError, match=r"\*.gif: no file matches this pattern"):
        upscale_file(None, missing[0])


def test_sub_folders_a_listing_without_r_leaves_out_are_counted(tmp_path):
    root = tmp_path / "photos"
    save(root / "a.png"), save(root / "trip" / "b.png"), save(root / "2019" / "c.png")
    (root / ".thumbnails").mkdir()
    flat = tmp_path / "flat"
    save(flat / "d.png")
    assert unsearched_folders([root, flat, root / "a.png"]) == {root: 2}


def test_never_overwrite_an_input(tmp_path):
    a = save(tmp_path / "a.png")
    [job] = plan_jobs([a], None, scale=2, suffix="")
    assert "would overwrite an input" in job.problem
    with pytest.raises(EnhanceEdgeError, match=f"{a}: output .* would overwrite an input"):
        upscale_file(None, job)
    a_x2 = save(tmp_path / "a_x2.png")
    jobs = plan_jobs([a, a_x2], None, scale=2)  # named explicitly, so both are inputs
    assert "would overwrite an input" in jobs[0].problem and jobs[1].problem is None


def test_two_inputs_for_one_output_is_a_problem_for_the_second(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "a.jpg")
    jobs = plan_jobs([tmp_path], tmp_path / "out", scale=2, output_format="png")
    assert jobs[0].problem is None
    assert jobs[1].problem == f"output {str(tmp_path / 'out' / 'a.png')!r} is already the output of " \
                              f"{str(jobs[0].source)!r}"


def test_earlier_outputs_beside_inputs_are_not_taken_as_inputs(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "a_x2.png")
    assert targets(plan_jobs([tmp_path], None, scale=2)) == [("a.png", str(tmp_path / "a_x2.png"), None)]


def test_the_output_folder_inside_the_input_folder_is_not_read(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "big" / "a.png")
    jobs = plan_jobs([tmp_path], tmp_path / "big", scale=2, recursive=True)
    assert [job.source for job in jobs] == [tmp_path / "a.png"]


def test_o_that_is_a_file_cannot_take_several_outputs(tmp_path):
    save(tmp_path / "a.png")
    (tmp_path / "out.png").write_bytes(b"x")
    with pytest.raises(EnhanceEdgeError, match="'.*out.png' is an existing file, but several inputs, a folder or a "
                                               "pattern need -o to be a folder"):
        plan_jobs([tmp_path], tmp_path / "out.png", scale=2)


def test_the_default_suffix_is_the_models_scale(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], None, scale=4)[0].target == tmp_path / "a_x4.png"
    assert plan_jobs([a], tmp_path / "out", scale=4)[0].target == tmp_path / "out" / "a.png"


@pytest.mark.parametrize("name", ["face[1].png", "what?.png", "star*.png"])
def test_a_file_named_like_a_pattern_is_one_file(tmp_path, name):
    face = save(tmp_path / name)
    save(tmp_path / "f.png")  # what face[1].png would match as a pattern
    assert targets(plan_jobs([face], tmp_path / "big.png", scale=2)) == [(name, str(tmp_path / "big.png"), None)]
    assert plan_jobs([face], None, scale=2)[0].target == tmp_path / name.replace(".png", "_x2.png")


def test_one_input_and_an_o_that_is_no_image_name_is_refused(tmp_path):
    a = save(tmp_path / "a.png")
    with pytest.raises(EnhanceEdgeError, match=r"-o '.*out.xyz': '.xyz' is not an image format enhance-edge can "
                                               r"write \(.png, .jpg, .webp, .tif, .bmp, .gif\)"):
        plan_jobs([a], tmp_path / "out.xyz", scale=2)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EnhanceEdgeError, match=r"-o '.*notes.txt' is an existing file but not an image file name; "
                                               r"name an image \(.png, .jpg"):
        plan_jobs([a], tmp_path / "notes.txt", scale=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "notes.txt"]


def test_several_inputs_and_an_o_image_name_is_refused_and_a_folder_name_with_a_dot_is_a_folder(tmp_path):
    a, b = save(tmp_path / "a.png"), save(tmp_path / "b.png")
    with pytest.raises(EnhanceEdgeError, match=r"-o '.*new.jpg' is an image file name, but several inputs, a "
                                               r"folder or a pattern need -o to be a folder \(create it first"):
        plan_jobs([a, b], tmp_path / "new.jpg", scale=2)
    with pytest.raises(EnhanceEdgeError, match="need -o to be a folder"):
        plan_jobs([tmp_path / "*.png"], tmp_path / "new.jpg", scale=2)
    (tmp_path / "made.jpg").mkdir()
    assert plan_jobs([a, b], tmp_path / "made.jpg", scale=2)[1].target == tmp_path / "made.jpg" / "b.png"
    assert plan_jobs([a, b], tmp_path / "run.v2", scale=2)[0].target == tmp_path / "run.v2" / "a.png"


def test_suffix_does_not_apply_to_an_o_file(tmp_path):
    a = save(tmp_path / "a.png")
    with pytest.raises(EnhanceEdgeError, match=r"--suffix '_big' does not apply when -o '.*b.png' names the output"):
        plan_jobs([a], tmp_path / "b.png", scale=2, suffix="_big")


def test_broken_links_in_folders_are_listed_so_they_are_reported(tmp_path):
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert [found.path.name for found in expand_inputs([tmp_path])] == ["gone.png"]


def test_upscale_file_writes_tagged_output_and_skips_existing(upscaler, tmp_path):
    job = Job(save(tmp_path / "a.png"), tmp_path / "out" / "a.png")
    assert upscale_file(upscaler, job).status is Outcome.DONE
    with Image.open(job.target) as result:
        assert result.size == (24, 20) and result.info["Software"].startswith("enhance-edge ")
        assert "tiny.onnx (sha256 " in result.info["Description"]
    assert oct(job.target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    before = job.target.stat().st_mtime_ns
    assert upscale_file(upscaler, job).status is Outcome.SKIPPED and job.target.stat().st_mtime_ns == before
    assert upscale_file(upscaler, job, overwrite=True).status is Outcome.DONE


def test_upscale_file_says_what_it_did(upscaler, tmp_path):
    job = Job(save(tmp_path / "a.png", size=(12, 10)), tmp_path / "a_x2.png")
    done = upscale_file(upscaler, job)
    assert (done.input, done.output, done.status) == (job.source, job.target, Outcome.DONE)
    assert (done.input_size, done.output_size) == ((12, 10), (24, 20))
    assert done.model == upscaler.model_name and done.precision == "fp32" and done.strength is None
    assert 0 < done.seconds < 60 and done.error is None
    skipped = upscale_file(upscaler, job)
    assert skipped.status is Outcome.SKIPPED and skipped.input_size is None and skipped.output_size is None
    assert skipped.to_dict() == {"input": str(job.source), "output": str(job.target), "status": "skipped",
                                 "error": None, "seconds": round(skipped.seconds, 3), "model": upscaler.model_name,
                                 "precision": "fp32", "strength": None, "input_size": None, "output_size": None}
    with pytest.raises(AttributeError):  # frozen: a record of what happened
        done.status = Outcome.SKIPPED


def test_a_conditioned_model_runs_at_the_strength_asked_for(tiny_conditioned_onnx, tmp_path):
    conditioned = Upscaler(tiny_conditioned_onnx, threads=1)
    source = save(tmp_path / "a.png", size=(16, 12))
    auto = upscale_file(conditioned, Job(source, tmp_path / "auto.png"))
    clean = upscale_file(conditioned, Job(source, tmp_path / "clean.png"), strength="0")
    heavy = upscale_file(conditioned, Job(source, tmp_path / "heavy.png"), strength=1)
    assert (clean.strength, heavy.strength) == (0.0, 1.0)
    # "auto" is reported as the number it chose, which is what the upscaler last ran at
    assert isinstance(auto.strength, float) and 0.0 <= auto.strength <= 1.0
    assert auto.to_dict()["strength"] == round(auto.strength, 3)
    assert upscale_file(conditioned, Job(source, tmp_path / "auto.png")).strength is None  # skipped: nothing ran
    with Image.open(clean.output) as a, Image.open(heavy.output) as b:
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() > 0
    with pytest.raises(EnhanceEdgeError, match="strength: expected auto or a number from 0 to 1, got 1.5"):
        upscale_file(conditioned, Job(source, tmp_path / "bad.png"), strength=1.5)


@pytest.mark.parametrize("value, expected", [(None, "auto"), ("", "auto"), ("auto", "auto"), ("0", 0.0),
                                             ("0.25", 0.25), (1, 1.0)])
def test_strength_is_auto_or_a_number_from_0_to_1(value, expected):
    assert parse_strength(value) == expected


@pytest.mark.parametrize("value", ["high", "-0.1", "1.01", "nan"])
def test_any_other_strength_is_refused_naming_it(value):
    with pytest.raises(EnhanceEdgeError, match=f"expected auto or a number from 0 to 1, got '{value}'"):
        parse_strength(value)


def test_an_upscale_over_the_memory_budget_is_warned_about(tiny_onnx, upscaler, tmp_path):
    job = Job(save(tmp_path / "a.png", size=(40, 30)), tmp_path / "a_x2.png")
    warnings = []
    assert upscale_file(upscaler, job, warn=warnings.append).status is Outcome.DONE and warnings == []
    frugal = Upscaler(tiny_onnx, threads=1, max_memory=128 << 20)  # the runtime's base alone
    upscale_file(frugal, job, overwrite=True, warn=warnings.append)
    [warning] = warnings
    assert warning.startswith(f"{job.source}: upscaling this 40x30 image takes about 129 MiB, over the memory "
                              f"budget of 128 MiB (--max-memory)")


@pytest.mark.parametrize("name, size, message", [
    ("wide.jpg", (32_751, 2), "the 65502x4 result is too large for JPEG, which holds at most 65,500 pixels a side"),
    ("wide.webp", (8_192, 2), "the 16384x4 result is too large for WEBP, which holds at most 16,383 pixels a side"),
])
def test_a_result_too_large_for_its_format_fails_before_the_upscale(upscaler, tmp_path, name, size, message):
    job = Job(save(tmp_path / name, size=size), tmp_path / "out" / name)
    done = []
    with pytest.raises(ImageError, match=f"{job.source}: {message}; PNG has no such limit \\(--format png\\)"):
        upscale_file(upscaler, job, progress=done.append)
    assert done == [] and not (tmp_path / "out").exists()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_nothing_behind(upscaler, tmp_path, monkeypatch):
    job = Job(save(tmp_path / "a.png"), tmp_path / "out" / "a.png")

    def half_then_fail(image, handle, *args, **kwargs):
        handle.write(b"\x89PNG half an image")
        raise OSError("disk full")

    monkeypatch.setattr("enhance_edge.core.batch.write_image", half_then_fail)
    with pytest.raises(ImageError, match="a.png: cannot write \\(disk full\\)"):
        upscale_file(upscaler, job)
    assert not (tmp_path / "out").exists()  # nor the folder made for it


def test_ctrl_c_during_a_write_leaves_nothing_behind(upscaler, tmp_path, monkeypatch):
    job = Job(save(tmp_path / "a.png"), tmp_path / "a_x2.png")

    def interrupted(image, handle, *args, **kwargs):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("enhance_edge.core.batch.write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        upscale_file(upscaler, job)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_an_unwritable_output_is_one_error_found_before_the_upscale(upscaler, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file where a folder should be")
    job = Job(save(tmp_path / "a.png"), tmp_path / "file" / "out" / "a.png")
    monkeypatch.setattr(Upscaler, "upscale", lambda *args, **kwargs: pytest.fail("upscaled for an unwritable output"))
    with pytest.raises(ImageError, match="file/out/a.png: cannot write"):
        upscale_file(upscaler, job)


def test_a_symbolic_link_loop_is_planned_and_then_reported_like_any_bad_file(upscaler, tmp_path):
    save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "loop.png").symlink_to(tmp_path / "in" / "loop2.png")
    (tmp_path / "in" / "loop2.png").symlink_to(tmp_path / "in" / "loop.png")
    listed = plan_jobs([tmp_path / "in"], tmp_path / "out", scale=2)
    assert [job.source.name for job in listed] == ["good.png", "loop.png", "loop2.png"]
    named = plan_jobs([tmp_path / "in" / "loop.png", tmp_path / "in" / "good.png"], tmp_path / "out", scale=2)
    assert [job.source.name for job in named] == ["loop.png", "good.png"]
    with pytest.raises(ImageError, match="loop.png: symbolic link loop$"):
        upscale_file(upscaler, named[0])
    assert upscale_file(upscaler, named[1]).status is Outcome.DONE


def test_o_naming_the_input_folder_is_refused_unless_a_suffix_keeps_names_apart(tmp_path):
    save(tmp_path / "photos" / "a.png")
    with pytest.raises(EnhanceEdgeError, match=r"-o '.*photos/?' is an input folder: its images would be written "
                                               r"over themselves; choose another -o, or give --suffix"):
        plan_jobs([tmp_path / "photos"], tmp_path / "photos" / ".", scale=2)
    jobs = plan_jobs([tmp_path / "photos"], tmp_path / "photos", scale=2, suffix="_big")
    assert [job.target.name for job in jobs] == ["a_big.png"]


def test_an_earlier_output_folder_is_not_read_again_when_o_changes(upscaler, tmp_path):
    save(tmp_path / "photos" / "a.png")
    for job in plan_jobs([tmp_path / "photos"], tmp_path / "photos" / "big", scale=2, recursive=True):
        upscale_file(upscaler, job)
    jobs = plan_jobs([tmp_path / "photos"], tmp_path / "photos" / "bigger", scale=2, recursive=True)
    assert [str(job.source.relative_to(tmp_path)) for job in jobs] == ["photos/a.png"]
    # Named, an output is an input like any other (upscaling twice on purpose).
    assert len(plan_jobs([tmp_path / "photos" / "big" / "a.png"], tmp_path / "x4", scale=2)) == 1


def test_o_without_an_image_extension_is_a_folder_even_for_one_file(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "big", scale=2)[0].target == tmp_path / "big" / "a.png"


def test_o_and_format_must_agree(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "b.jpeg", scale=2, output_format="jpeg")[0].target == tmp_path / "b.jpeg"
    with pytest.raises(EnhanceEdgeError, match="-o '.*b.png' is a PNG name but --format is jpeg"):
        plan_jobs([a], tmp_path / "b.png", scale=2, output_format="jpeg")


def test_inputs_inside_the_output_folder_are_still_read(tmp_path):
    save(tmp_path / "out" / "photos" / "a.png")
    jobs = plan_jobs([tmp_path / "out" / "photos"], tmp_path / "out", scale=2)
    assert [(job.source.name, job.target) for job in jobs] == [("a.png", tmp_path / "out" / "a.png")]
