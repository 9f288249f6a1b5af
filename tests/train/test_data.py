import numpy as np
import pytest
import torch

from PIL import Image

from enhance_edge.eval.degradation import DegradationConfig
from enhance_edge.errors import DataError, ModelError
from enhance_edge.export.onnx_export import export_generator
from enhance_edge.core.model import bundled_model_path, open_session
from enhance_edge.eval.protocol import make_lr
from enhance_edge.train.config import GeneratorConfig
from enhance_edge.train.data import (Teacher, TrainingImages, degraded_lrs, extra_images, random_crop,
                                     teacher_path)
from enhance_edge.train.networks import Generator


def test_teacher_outputs_are_the_onnx_models_clipped_to_the_unit_range(tiny_onnx):
    lr = torch.from_numpy(np.random.default_rng(0).random((3, 1, 7, 5), dtype=np.float32))
    session, _ = open_session(tiny_onnx, "cpu", 1)  # as the runtime runs it, so the sums agree bit for bit
    raw = session.run(None, {"input": lr.numpy()})[0]
    assert raw.min() < 0 or raw.max() > 1  # a random-weight model: clipping really happens
    taught = Teacher(str(tiny_onnx), scale=2, threads=1)(lr)
    assert taught.shape == (3, 1, 14, 10) and taught.dtype == torch.float32
    np.testing.assert_array_equal(taught.numpy(), np.clip(raw, 0, 1))


def test_a_teacher_of_another_scale_is_refused(tmp_path):
    path = tmp_path / "x3.onnx"
    export_generator(Generator(GeneratorConfig(channels=2, residual_blocks=0, scale=3)), path)
    with pytest.raises(ModelError, match=r"upscales x3, the generator trained x2"):
        Teacher(str(path), scale=2)


def test_a_bundled_teacher_is_its_fp32_file_on_every_cpu(tiny_onnx):
    # "auto" would pick the int8 file on CPUs that run it exactly: the targets would then depend on the CPU.
    assert teacher_path("default") == bundled_model_path("default", "fp32")
    assert teacher_path(str(tiny_onnx)) == tiny_onnx


def test_a_conditioned_teacher_hears_the_levels_of_its_pupils_pairs(tiny_conditioned_onnx):
    lr = torch.from_numpy(np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32))
    teacher = Teacher(str(tiny_conditioned_onnx), scale=2, threads=1)
    clean, degraded = teacher(lr), teacher(lr, torch.full((2, 1, 1, 1), 0.8))
    session, _ = open_session(tiny_conditioned_onnx, "cpu", 1)
    raw = session.run(None, {"input": lr.numpy(), "strength": np.array([0.8], np.float32)})[0]
    np.testing.assert_array_equal(degraded.numpy(), np.clip(raw, 0, 1))
    assert not torch.equal(clean, degraded)  # no levels given: it runs at 0, a clean image's


def test_degraded_lrs_depend_only_on_seed_stream_and_index():
    hrs = np.random.default_rng(0).integers(0, 256, (4, 24, 20), np.uint8)
    config = DegradationConfig(clean_share=0.0, noise_probability=1.0)
    lrs, levels = degraded_lrs(hrs, np.arange(4), config, seed=3, stream=1, scale=2)
    assert lrs.shape == (4, 12, 10) and lrs.dtype == np.uint8 and levels.shape == (4,)
    # The same image in another batch, at another position, is drawn the same.
    again, again_levels = degraded_lrs(hrs[[2, 1]], np.array([2, 1]), config, seed=3, stream=1, scale=2)
    np.testing.assert_array_equal(again, lrs[[2, 1]])
    np.testing.assert_array_equal(again_levels, levels[[2, 1]])
    other_epoch, _ = degraded_lrs(hrs, np.arange(4), config, seed=3, stream=2, scale=2)
    assert not np.array_equal(other_epoch, lrs)
    assert (levels > 0).all()  # noise on every pair


def test_clean_training_pairs_are_protocol_md_bicubic_halves():
    hrs = np.random.default_rng(1).integers(0, 256, (2, 24, 20), np.uint8)
    lrs, levels = degraded_lrs(hrs, np.arange(2), DegradationConfig(clean_share=1.0), seed=0, stream=1, scale=2)
    for hr, lr in zip(hrs, lrs):
        np.testing.assert_array_equal(lr, np.asarray(make_lr(Image.fromarray(hr))))
    assert not levels.any()


def test_each_epoch_draws_its_own_crops_of_the_extra_images_after_the_faces():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 24, 20), np.uint8)
    photos = [rng.integers(0, 256, (60, 50), np.uint8), rng.integers(0, 256, (30, 40), np.uint8)]
    images = TrainingImages(faces, photos, crops=5, seed=7)
    first, second = images.epoch(1), images.epoch(2)
    assert len(images) == 8 and first.shape == (8, 24, 20) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[:3], faces)
    np.testing.assert_array_equal(images.epoch(1), first)  # a resumed epoch sees the same crops
    assert not np.array_equal(first[3:], second[3:])
    np.testing.assert_array_equal(TrainingImages(faces, [], crops=5, seed=7).epoch(1), faces)


def test_a_crop_never_shrinks_a_photo_below_the_crop_size():
    photo = np.random.default_rng(0).integers(0, 256, (25, 21), np.uint8)  # just above 20x24
    for seed in range(5):
        assert random_crop(photo, (20, 24), np.random.default_rng(seed)).shape == (24, 20)


def test_extra_images_are_read_as_luma_and_too_small_folders_are_named(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (30, 40), (255, 0, 0)).save(photos / "red.png")
    Image.new("L", (8, 8), 9).save(photos / "tiny.png")
    images, counts = extra_images((str(photos),), (20, 24))
    assert counts == {"photos": 1} and images[0].shape == (40, 30)
    assert images[0][0, 0] == 76  # Pillow's BT.601 luma of pure red
    with pytest.raises(DataError, match=r"no image under .* is at least 64x64"):
        extra_images((str(photos),), (64, 64))
