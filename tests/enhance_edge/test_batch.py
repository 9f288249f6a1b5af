"""Batches: which output each input gets, conflicts, skipping, and nothing half-written."""

import os

import numpy as np
import pytest
from PIL import Image

from enhance_edge import imageio
from enhance_edge.batch import Job, Outcome, expand_inputs, plan_jobs, read_image, upscale_file
from enhance_edge.errors import EnhanceEdgeError, ImageError
from enhance_edge.upscaler import Upscaler


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
    assert targets(plan_jobs([a], None)) == [("a.png", str(tmp_path / "a_x2.png"), None)]
    assert targets(plan_jobs([a], None, suffix="-big")) == [("a.png", str(tmp_path / "a-big.png"), None)]


def test_one_file_and_o_names_the_file(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "out.jpg")[0].target == tmp_path / "out.jpg"


def test_a_folder_keeps_names_in_o_and_sub_folders_with_r(tmp_path):
    root = tmp_path / "photos"
    save(root / "b.jpg"), save(root / "trip" / "c.png"), save(root / ".hidden.png")
    (root / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert targets(plan_jobs([root], out)) == [("b.jpg", str(out / "b.jpg"), None)]
    assert targets(plan_jobs([root], out, recursive=True)) == [
        ("b.jpg", str(out / "b.jpg"), None), ("c.png", str(out / "trip" / "c.png"), None)]


def test_format_changes_the_extension(tmp_path):
    a = save(tmp_path / "a.jpg")
    assert plan_jobs([a], tmp_path / "out", output_format="webp")[0].target == tmp_path / "out" / "a.webp"
    with pytest.raises(EnhanceEdgeError, match="unknown output format 'jxl'"):
        plan_jobs([a], None, output_format="jxl")


def test_inputs_pillow_cannot_write_become_png(tmp_path):
    psd = tmp_path / "layered.psd"
    psd.write_bytes(b"8BPS")
    assert plan_jobs([psd], None)[0].target == tmp_path / "layered_x2.png"


def test_globs_are_expanded_and_a_pattern_matching_nothing_is_kept_to_fail(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "b.png"), save(tmp_path / "c.jpg")
    jobs = plan_jobs([tmp_path / "*.png"], tmp_path / "out")
    assert [job.source.name for job in jobs] == ["a.png", "b.png"]
    missing = plan_jobs([tmp_path / "*.gif"], tmp_path / "out")
    assert [job.source.name for job in missing] == ["*.gif"]


def test_never_overwrite_an_input(tmp_path):
    a = save(tmp_path / "a.png")
    [job] = plan_jobs([a], None, suffix="")
    assert "would overwrite an input" in job.problem
    with pytest.raises(EnhanceEdgeError, match=f"{a}: output .* would overwrite an input"):
        upscale_file(None, job)
    a_x2 = save(tmp_path / "a_x2.png")
    jobs = plan_jobs([a, a_x2], None)  # named explicitly, so both are inputs
    assert "would overwrite an input" in jobs[0].problem and jobs[1].problem is None


def test_two_inputs_for_one_output_is_a_problem_for_the_second(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "a.jpg")
    jobs = plan_jobs([tmp_path], tmp_path / "out", output_format="png")
    assert jobs[0].problem is None
    assert jobs[1].problem == f"output {str(tmp_path / 'out' / 'a.png')!r} is already the output of " \
                              f"{str(jobs[0].source)!r}"


def test_earlier_outputs_beside_inputs_are_not_taken_as_inputs(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "a_x2.png")
    assert targets(plan_jobs([tmp_path], None)) == [("a.png", str(tmp_path / "a_x2.png"), None)]


def test_the_output_folder_inside_the_input_folder_is_not_read(tmp_path):
    save(tmp_path / "a.png"), save(tmp_path / "big" / "a.png")
    assert [job.source for job in plan_jobs([tmp_path], tmp_path / "big", recursive=True)] == [tmp_path / "a.png"]


def test_o_that_is_a_file_cannot_take_several_outputs(tmp_path):
    save(tmp_path / "a.png")
    (tmp_path / "out.png").write_bytes(b"x")
    with pytest.raises(EnhanceEdgeError, match="is a file, but several inputs need a folder"):
        plan_jobs([tmp_path], tmp_path / "out.png")


def test_broken_links_in_folders_are_listed_so_they_are_reported(tmp_path):
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert [found.path.name for found in expand_inputs([tmp_path])] == ["gone.png"]


def test_upscale_file_writes_tagged_output_and_skips_existing(upscaler, tmp_path):
    job = Job(save(tmp_path / "a.png"), tmp_path / "out" / "a.png")
    assert upscale_file(upscaler, job) is Outcome.DONE
    with Image.open(job.target) as result:
        assert result.size == (24, 20) and result.info["Software"].startswith("enhance-edge ")
        assert "tiny.onnx (sha256 " in result.info["Description"]
    assert oct(job.target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    before = job.target.stat().st_mtime_ns
    assert upscale_file(upscaler, job) is Outcome.SKIPPED and job.target.stat().st_mtime_ns == before
    assert upscale_file(upscaler, job, overwrite=True) is Outcome.DONE


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_nothing_behind(upscaler, tmp_path, monkeypatch):
    job = Job(save(tmp_path / "a.png"), tmp_path / "out" / "a.png")

    def half_then_fail(image, handle, *args, **kwargs):
        handle.write(b"\x89PNG half an image")
        raise OSError("disk full")

    monkeypatch.setattr("enhance_edge.batch.write_image", half_then_fail)
    with pytest.raises(ImageError, match="a.png: cannot write \\(disk full\\)"):
        upscale_file(upscaler, job)
    assert list((tmp_path / "out").iterdir()) == []


def test_ctrl_c_during_a_write_leaves_nothing_behind(upscaler, tmp_path, monkeypatch):
    job = Job(save(tmp_path / "a.png"), tmp_path / "a_x2.png")

    def interrupted(image, handle, *args, **kwargs):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("enhance_edge.batch.write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        upscale_file(upscaler, job)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_an_unwritable_output_folder_is_one_error(upscaler, tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    job = Job(save(tmp_path / "a.png"), tmp_path / "file" / "out" / "a.png")
    with pytest.raises(ImageError, match="file/out/a.png: cannot write"):
        upscale_file(upscaler, job)


def test_read_image_keeps_the_files_format_for_other_callers(tmp_path):
    image = read_image(save(tmp_path / "a.png", mode="P"))
    assert image.format == "PNG" and image.mode == "RGB"
    tight = imageio.DEFAULT_MAX_PIXELS
    with pytest.raises(ImageError, match="over the limit"):
        read_image(save(tmp_path / "b.png", size=(20, 20)), max_pixels=100)
    assert imageio.DEFAULT_MAX_PIXELS == tight


def test_o_without_an_image_extension_is_a_folder_even_for_one_file(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "big")[0].target == tmp_path / "big" / "a.png"


def test_o_and_format_must_agree(tmp_path):
    a = save(tmp_path / "a.png")
    assert plan_jobs([a], tmp_path / "b.jpeg", output_format="jpeg")[0].target == tmp_path / "b.jpeg"
    with pytest.raises(EnhanceEdgeError, match="-o '.*b.png' is a PNG name but --format is jpeg"):
        plan_jobs([a], tmp_path / "b.png", output_format="jpeg")


def test_inputs_inside_the_output_folder_are_still_read(tmp_path):
    save(tmp_path / "out" / "photos" / "a.png")
    jobs = plan_jobs([tmp_path / "out" / "photos"], tmp_path / "out")
    assert [(job.source.name, job.target) for job in jobs] == [("a.png", tmp_path / "out" / "a.png")]
