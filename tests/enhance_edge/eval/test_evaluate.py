"""Face folders to scored HR/LR pairs: enhance_edge.eval.dataset, enhance_edge.eval.evaluate and `evaluate`."""

import json
import re
import shutil
import warnings

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

from enhance_edge.apps.cli import main
from enhance_edge.eval.dataset import (face_pair, image_files, load_pairs, read_face, trained_hr_size,
                                       trained_seed)
from enhance_edge.errors import DataError
from enhance_edge.eval.evaluate import evaluate_folder, folder_splits
from enhance_edge.core.model import open_session
from enhance_edge.eval.protocol import psnr, ssim
from enhance_edge.core.upscaler import Upscaler


def smooth(rng, width=24, height=28) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    return np.clip(60 + 3 * x + 120 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 40), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def eight_subjects(tmp_path_factory):
    """8 subjects (not Yale's names), subject k with k + 2 images: a split's image count shows its subjects."""
    root = tmp_path_factory.mktemp("eight")
    rng = np.random.default_rng(0)
    for subject in range(8):
        (root / f"person{subject}").mkdir()
        for index in range(subject + 2):
            Image.fromarray(smooth(rng)).save(root / f"person{subject}" / f"img{index}.png")
    return root


def with_train_config(src, dst, **train_config):
    """A copy of a model whose metadata says how it was trained (as `export` records it)."""
    model = onnx.load(str(src))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["train_config"] = json.dumps(train_config)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(dst))
    return dst


def test_the_split_follows_the_seed(eight_subjects):
    tested = {seed: {p.parent.name for p in folder_splits(eight_subjects, seed)["test"]} for seed in (0, 1)}
    assert tested == {0: {"person1"}, 1: {"person6"}}  # seed 1's test subject is a training subject of seed 0


def test_evaluate_splits_with_the_models_training_seed_by_default(eight_subjects, tiny_onnx, tmp_path):
    model = with_train_config(tiny_onnx, tmp_path / "seed1.onnx", seed=1, hr_size=[24, 28])
    _, info = open_session(model)
    assert trained_seed(info) == 1 and trained_hr_size(info) == (24, 28)

    def tested(*options):
        result = CliRunner().invoke(main, ["evaluate", "--data", str(eight_subjects), "--model", str(model),
                                           "--split", "test", "--hr-size", "native", "--json", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["test"]["images"]

    assert tested() == tested("--seed", "1") == 8  # person6
    assert tested("--seed", "0") == 3  # person1
    _, untrained = open_session(tiny_onnx)  # its metadata has no train_config: seed 0, the report's HR size
    assert trained_seed(untrained) == 0 and trained_hr_size(untrained) == (92, 112)


def test_a_flat_folder_of_yale_test_faces_is_the_test_split(yale_test_faces, tiny_onnx, tmp_path):
    for face in yale_test_faces:  # yaleB34_P00A+000E+00.png...: the subject is in the name
        shutil.copy(face, tmp_path / face.name)
    assert folder_splits(tmp_path) == {"test": sorted(tmp_path.iterdir())}
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path), "--model", str(tiny_onnx)])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if not line.startswith(" ")] == [
        f"test ({len(yale_test_faces)} images)"]


def test_a_bomb_sized_file_among_the_faces_is_one_line_without_pillows_warning(tmp_path, tiny_onnx):
    Image.fromarray(smooth(np.random.default_rng(0))).save(tmp_path / "face.png")
    Image.new("1", (12000, 10000)).save(tmp_path / "bomb.png")  # over Pillow's warning threshold
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert image_files(tmp_path) == [tmp_path / "bomb.png", tmp_path / "face.png"]
    assert not seen
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path), "--model", str(tiny_onnx)])
    assert result.exit_code == 1 and result.output.startswith(f"error: {tmp_path / 'bomb.png'}: 12000x10000 is")
    assert len(result.output.splitlines()) == 1


@pytest.fixture
def truncated(eight_subjects, tmp_path):
    folder = tmp_path / "faces"
    shutil.copytree(eight_subjects, folder)
    broken = folder / "person6" / "img0.png"
    broken.write_bytes(broken.read_bytes()[:200])
    return folder, broken


def test_an_undecodable_face_is_a_data_error_naming_it(truncated, tiny_onnx):
    folder, broken = truncated
    with pytest.raises(DataError, match=f"{broken}: corrupt or truncated image"):
        load_pairs(folder, None, seed=1)
    with pytest.raises(DataError, match=f"{broken}: corrupt or truncated image"):
        evaluate_folder(folder, Upscaler(tiny_onnx), None, seed=1)
    result = CliRunner().invoke(main, ["evaluate", "--data", str(folder), "--model", str(tiny_onnx), "--seed", "1"])
    assert result.exit_code == 1 and result.output.startswith(f"error: {broken}: corrupt or truncated image")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("size", ["13x11", "1x1", "0x4", "-2x4", "6x6", "2x2", "8x7"])
def test_hr_sizes_that_cannot_be_scored_are_refused(face_folder, size):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), f"--hr-size={size}"])
    assert result.exit_code == 2 and "must be even (the LR is half) and at least 8" in result.output
    assert f"got '{size}'" in result.output


def test_the_smallest_hr_size_is_scored(face_folder, tiny_onnx):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_onnx),
                                       "--hr-size", "8x8", "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output)["test"]["bicubic"]["ssim"] <= 1


def test_the_library_checks_the_hr_size_against_the_models_scale(face_folder, tiny_onnx, tmp_path):
    with pytest.raises(DataError, match="HR size 13x12 does not fit a x2 model"):
        evaluate_folder(face_folder, Upscaler(tiny_onnx), (13, 12))
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.new("L", (7, 30)).save(tiny / "small.png")
    with pytest.raises(DataError, match=r"small.png: 6x30 is too small to score; HR faces need at least 8x8"):
        evaluate_folder(tiny, Upscaler(tiny_onnx), None)


def test_16_bit_faces_are_scaled_to_8_bit_not_clipped(tmp_path, tiny_onnx):
    eight = smooth(np.random.default_rng(1))
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(eight).save(tmp_path / "plain.png")
    assert np.array_equal(np.asarray(read_face(tmp_path / "deep.png")), eight)
    deep, plain = (face_pair(tmp_path / name, (24, 28)) for name in ("deep.png", "plain.png"))
    assert all(np.array_equal(a, b) for a, b in zip(deep, plain))
    scores = evaluate_folder(tmp_path, Upscaler(tiny_onnx), None)["all"]  # two subjects: no split
    assert scores["bicubic"]["psnr"] < 60  # all-white faces gave inf


def test_faces_are_read_upright(tmp_path):
    pixels = np.zeros((10, 20), np.uint8)
    pixels[:, :10] = 200
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: rotate 90 degrees clockwise to view
    Image.fromarray(pixels).save(tmp_path / "side.jpg", exif=exif, quality=100)
    assert read_face(tmp_path / "side.jpg").size == (10, 20)


@pytest.mark.filterwarnings("ignore:divide by zero")  # skimage on an exact output
def test_an_exact_output_is_null_in_json_not_infinity(tmp_path, tiny_onnx):
    for name in ("a", "b"):
        Image.new("L", (16, 16), 120).save(tmp_path / f"{name}.png")  # flat: bicubic is exact
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path), "--model", str(tiny_onnx),
                                       "--hr-size", "native", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert scores["all"]["bicubic"]["psnr"] is None and scores["all"]["bicubic"]["ssim"] == 1.0


def test_colour_faces_are_scored_on_pillows_luma_with_rgb_psnr(tmp_path, tiny_onnx):
    rng = np.random.default_rng(2)
    rgb = np.dstack([smooth(rng, 32, 32), smooth(rng, 32, 32), smooth(rng, 32, 32)])
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    scores = evaluate_folder(tmp_path, Upscaler(tiny_onnx), None)["all"]["bicubic"]
    hr = Image.fromarray(rgb)
    out = hr.resize((16, 16), Image.Resampling.BICUBIC).resize((32, 32), Image.Resampling.BICUBIC)
    hr_y, out_y = (np.asarray(i.convert("YCbCr").getchannel("Y")) for i in (hr, out))
    assert scores["psnr"] == pytest.approx(psnr(hr_y, out_y)) and scores["ssim"] == pytest.approx(ssim(hr_y, out_y))
    assert scores["rgb_psnr"] == pytest.approx(psnr(rgb, np.asarray(out)))
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path), "--model", str(tiny_onnx),
                                       "--hr-size", "native"])
    assert result.exit_code == 0 and "RGB PSNR" in result.output


def test_a_condition_degrades_the_lr_every_method_upscales_and_scores_against_the_clean_hr(face_folder, tiny_onnx):
    upscaler = Upscaler(tiny_onnx, threads=1)
    clean = evaluate_folder(face_folder, upscaler, (20, 24), seed=0)
    noisy = evaluate_folder(face_folder, upscaler, (20, 24), seed=0, condition="noise3")
    assert noisy.keys() == clean.keys()
    for split in clean:
        assert noisy[split]["lanczos"]["psnr"] < clean[split]["lanczos"]["psnr"]  # the same HR, a worse LR
    again = evaluate_folder(face_folder, upscaler, (20, 24), seed=0, condition="noise3")
    assert again == noisy  # each image's noise is seeded by its place in its split
    with pytest.raises(DataError, match="unknown condition 'fog'"):
        evaluate_folder(face_folder, upscaler, (20, 24), condition="fog")


def test_evaluate_condition_all_prints_one_table_with_the_gain_over_lanczos(face_folder, tiny_conditioned_onnx):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_conditioned_onnx),
                                       "--hr-size", "20x24", "--split", "test", "--condition", "all", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert list(scores) == ["clean", "jpeg75", "noise3", "blur", "camera"]
    table = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_conditioned_onnx),
                                      "--hr-size", "20x24", "--split", "test", "--condition", "camera",
                                      "--strength", "0.3"])
    assert table.exit_code == 0, table.output
    assert "vs Lanczos" in table.output and "camera" in table.output
    bad = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_conditioned_onnx),
                                    "--strength", "2"])
    assert bad.exit_code == 2 and "expected auto or a number from 0 to 1, got '2'" in bad.output


def test_evaluate_scores_a_chain_of_steps_beside_a_named_condition(face_folder, tiny_conditioned_onnx):
    args = ["evaluate", "--data", str(face_folder), "--model", str(tiny_conditioned_onnx), "--hr-size", "20x24",
            "--split", "test", "--condition", "camera", "--condition", "blur=0.8>noise=3>jpeg=75"]
    scores = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert list(scores) == ["camera", "blur=0.8>noise=3>jpeg=75"]
    assert scores["camera"] == scores["blur=0.8>noise=3>jpeg=75"]  # the protocol's camera, written as steps
    with_all = json.loads(CliRunner().invoke(main, [*args, "--condition", "all", "--json"]).output)
    assert list(with_all) == ["camera", "blur=0.8>noise=3>jpeg=75", "clean", "jpeg75", "noise3", "blur"]
    table = CliRunner().invoke(main, args).output.splitlines()
    assert re.match(r"  blur=0\.8>noise=3>jpeg=75  model\s+\d+\.\d\d", table[-4])  # the column fits the chain
    bad = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", "no-such-model",
                                    "--condition", "noise=60"])
    assert bad.exit_code == 2  # refused before the model is looked for
    assert bad.output.splitlines()[-1] == ("Error: Invalid value for '--condition': condition 'noise=60': noise must "
                                           "be a number from 0.1 to 50, got '60'")


def test_a_compared_model_runs_as_many_times_as_reach_the_models_scale(face_folder, tiny_onnx, tiny_x4_onnx):
    x4, x2 = Upscaler(tiny_x4_onnx, threads=1), Upscaler(tiny_onnx, threads=1)
    scores = evaluate_folder(face_folder, x4, (20, 24), ("test",), compare={"tiny": x2})["test"]
    assert list(scores) == ["images", "model", "bicubic", "lanczos", "skimage-order3", "tiny x2^2"]
    paths = folder_splits(face_folder)["test"]
    hrs, twice = [], []
    for path in paths:
        hr, lr = face_pair(path, (20, 24), 4, colour=True)
        hrs.append(hr)
        twice.append(x2.upscale(x2.upscale(lr)))
    assert scores["tiny x2^2"]["psnr"] == pytest.approx(np.mean([psnr(h, o) for h, o in zip(hrs, twice)]))
    with pytest.raises(DataError, match="a x4 model cannot be compared with a x2 one"):
        evaluate_folder(face_folder, x2, (20, 24), compare={"x4": x4})


def test_evaluate_compare_prints_the_repeated_model_beside_the_baselines(face_folder, tiny_onnx, tiny_x4_onnx):
    result = CliRunner().invoke(main, ["evaluate", "--data", str(face_folder), "--model", str(tiny_x4_onnx),
                                       "--compare", str(tiny_onnx), "--hr-size", "20x24", "--split", "test"])
    assert result.exit_code == 0, result.output
    assert re.search(r"clean\s+tiny x2\^2\s+\d+\.\d\d", result.output)
