import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from enhance_edge.apps.cli import main
from enhance_edge.errors import ModelError, ParityError
from enhance_edge.export.calibration_mix import GATE_SEED, SYNTHETIC, calibration_mix, gate_images, lr_of
from enhance_edge.export.gate import GateRow
from enhance_edge.export.quantize import (HELD_OUT_SET, MAX_IMAGE_LOSS_DB, VALIDATION_SET, FaceCalibrationReader,
                                          Recipe, SetScores, choose, default_search, estimated_levels,
                                          float_compute_ops, fuse_float_silu, gate_failures, gate_table,
                                          held_out_subjects, image_scores, least_input_detail, least_int8_detail,
                                          output_layers, quantize_model, robust_search, runtime_graph,
                                          scoring_session, search_space, subject_of_face)
from enhance_edge.benchmarks.goals import INT8_SET_LOSS_GOAL_DB
from enhance_edge.core.model import (INPUT_NAME, INT8_MIN_DETAIL_KEY, INT8_MIN_INPUT_DETAIL_KEY, bundled_model_path,
                                     open_session)

# The tiny random-weight fixture model is not a face model: these tests check the pipeline, and
# allow it any quality loss except where the check itself is under test.
ANY_LOSS = 100.0


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_onnx, face_folder):
    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    summary = quantize_model(tiny_onnx, out, face_folder,
                             [Recipe(), Recipe(activations="int8", weights="uint8")], max_loss_db=ANY_LOSS,
                             max_image_loss_db=ANY_LOSS)
    return out, summary


def test_int8_model_runs_in_int8_kernels_and_keeps_the_contract(quantized, tiny_onnx):
    out, _ = quantized
    session, info = open_session(out, "cpu", 1)
    assert (info.scale, info.metadata["precision"]) == (2, "int8")
    assert info.metadata["generator_config"] == open_session(tiny_onnx)[1].metadata["generator_config"]
    x = np.random.default_rng(0).random((2, 1, 9, 7), dtype=np.float32)
    assert session.run(None, {INPUT_NAME: x})[0].shape == (2, 1, 18, 14)
    graph = runtime_graph(out, 1)
    ops = Counter(node.op_type for node in graph.graph.node)
    # head + one residual block's two convolutions in int8; the output layers (tail conv and
    # bicubic skip) stay float by default.
    assert ops["QLinearConv"] == 3 and "ConvInteger" not in ops
    floats = float_compute_ops(graph)
    # (onnxruntime fuses the tail's Add into one of them)
    assert floats["Conv"] + floats["FusedConv"] == 2 and not {"QuickGelu", "Sigmoid", "Mul"} & set(floats)


def test_every_recipe_is_recorded_and_a_failing_one_does_not_stop_the_search(quantized):
    out, summary = quantized
    stored = json.loads(open_session(out)[1].metadata["quantization"])
    # within any loss, int8 keeps every image; the runtime reads that from the file's own key
    assert summary["fp32_below_detail"] == stored["fp32_below_detail"] == 0.0
    assert float(open_session(out)[1].metadata[INT8_MIN_DETAIL_KEY]) == 0.0
    # and the least input detail of those images, under which inputs go to fp32 at once, in the file's own key
    assert summary["fp32_below_input_detail"] == stored["fp32_below_input_detail"] > 0
    assert float(open_session(out)[1].metadata[INT8_MIN_INPUT_DETAIL_KEY]) == summary["fp32_below_input_detail"]
    assert set(stored["gate_all_int8"]) == set(stored["gate"])
    assert stored["recipe"] == Recipe().to_dict() == summary["recipe"]
    first, failed = stored["candidates"]
    assert first["psnr"] > 0 and first["latency_s"] > 0 and "float_ops" in first
    assert "QInt8" in failed["error"] and "QUInt8" in failed["error"]
    assert stored["validation"]["faces"] == 3 and stored["test"]["faces"] == 3
    assert stored["test"]["int8"]["psnr"] > 0 and stored["validation"]["fp32"]["psnr"] > 0
    # The int8 file states its own scores, not the fp32 model's it was made from.
    metadata = open_session(out)[1].metadata
    assert json.loads(metadata["validation"]) == stored["validation"]["int8"]
    assert json.loads(metadata["test"]) == {"images": 3, **stored["test"]["int8"]}


def test_a_model_losing_too_much_is_refused_and_nothing_is_written(tmp_path, tiny_onnx, face_folder):
    out = tmp_path / "lossy-int8.onnx"
    with pytest.raises(ParityError, match=r"within -1.0 dB.*validation faces loses .* dB on average \(limit -1.0\).*; "
                                          r"nothing was written"):
        quantize_model(tiny_onnx, out, face_folder, [Recipe()], max_loss_db=-1.0, max_image_loss_db=ANY_LOSS)
    assert list(tmp_path.iterdir()) == []


def test_calibration_and_scores_use_the_subjects_and_hr_size_the_model_was_trained_with(tmp_path, tiny_onnx,
                                                                                       eight_subjects):
    model = onnx.load(str(tiny_onnx))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["train_config"] = json.dumps({"seed": 1, "hr_size": [24, 28]})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(tmp_path / "seed1.onnx"))
    summary = quantize_model(tmp_path / "seed1.onnx", tmp_path / "seed1-int8.onnx", eight_subjects, [Recipe()],
                             max_loss_db=ANY_LOSS,
                             max_image_loss_db=ANY_LOSS)
    # person3 and person6, seed 1's held-out subjects (seed 0 holds out person4 and person1: 6 and 3 faces)
    assert summary["validation"]["faces"] == 5 and summary["test"]["faces"] == 8
    _, info = open_session(tmp_path / "seed1-int8.onnx")
    assert json.loads(info.metadata["test"])["images"] == 8


def test_an_int8_model_is_not_quantized_again(quantized, face_folder, tmp_path):
    with pytest.raises(ModelError, match="already quantized"):
        quantize_model(quantized[0], tmp_path / "twice.onnx", face_folder, max_loss_db=ANY_LOSS,
                       max_image_loss_db=ANY_LOSS)


def test_search_space_is_the_product_of_the_choices():
    recipes = search_space(calibrations=["minmax", "entropy"], activations=["uint8"], silu=["int8", "float"])
    assert len(recipes) == 2 * 1 * 2 * 2 and len(set(recipes)) == len(recipes)
    assert {r.calibration for r in recipes} == {"minmax", "entropy"} and {r.output for r in recipes} == {"float"}
    default = default_search()
    assert len(set(default)) == len(default) == 3 * 3 * 2 + 3 + 2 + 3 * 2
    assert {r.calibration_set for r in robust_search()} == {"mix"} and {r.silu for r in robust_search()} == {"float"}
    assert set(robust_search()) <= set(default) and {r.residual for r in robust_search()} == {"int8", "float"}
    assert Recipe(output="int8") in default and Recipe(silu="float") in default
    assert Recipe(calibration="percentile", silu="float") in default
    with pytest.raises(ValueError, match="Recipe.activations must be one of"):
        Recipe(activations="int4")


def test_output_layers_are_the_last_convolutions_and_what_follows(tiny_onnx):
    names = output_layers(onnx.load(str(tiny_onnx)))
    # the tail conv, the bicubic skip conv (not the Pad before it), their Add and the DepthToSpace
    assert sorted(names) == sorted(["/tail/Conv", "/Conv", "/Add", "/shuffle/DepthToSpace"])


def test_calibration_reader_feeds_runtime_preprocessed_batches():
    faces = np.random.default_rng(0).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    reader = FaceCalibrationReader(faces, batch_size=2)
    batches = list(iter(reader.get_next, None))
    assert [b[INPUT_NAME].shape for b in batches] == [(2, 1, 6, 4), (2, 1, 6, 4), (1, 1, 6, 4)]
    assert batches[0][INPUT_NAME].dtype == np.float32
    np.testing.assert_allclose(batches[2][INPUT_NAME][0, 0] * 255, faces[4], atol=1e-4)
    reader.set_range(1, 2)
    assert [b[INPUT_NAME].shape[0] for b in iter(reader.get_next, None)] == [2]
    with pytest.raises(ModelError, match="no calibration faces"):
        FaceCalibrationReader(faces[:0])


def test_float_compute_ops_follow_element_types():
    scale, zero = numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(0), "z")
    weight = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("Transpose", ["q"], ["t"]),  # on uint8: not float compute
             helper.make_node("DequantizeLinear", ["t", "s", "z"], ["d"]),
             helper.make_node("Conv", ["d", "w"], ["c"]),
             helper.make_node("Sigmoid", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [scale, zero, weight])
    assert float_compute_ops(helper.make_model(graph)) == {"Conv": 1, "Sigmoid": 1}


def test_float_silu_is_fused_into_one_kernel_with_identical_outputs():
    shape = [1, 2, 3, 3]
    nodes = [helper.make_node("Sigmoid", ["x"], ["gate"]), helper.make_node("Mul", ["gate", "x"], ["silu"]),
             # not a SiLU: x * sigmoid(y); and a sigmoid used twice must stay
             helper.make_node("Sigmoid", ["y"], ["other"]), helper.make_node("Mul", ["x", "other"], ["mixed"]),
             helper.make_node("Add", ["mixed", "other"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "xy"],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("silu", "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inputs = {name: np.random.default_rng(0).normal(0, 3, shape).astype(np.float32) for name in "xy"}
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)
    assert fuse_float_silu(model) == 1
    assert [n.op_type for n in model.graph.node] == ["QuickGelu", "Sigmoid", "Mul", "Add"]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)
    for expected, actual in zip(before, after):
        np.testing.assert_array_equal(actual, expected)


def test_a_recipe_with_silu_in_float_ships_the_fused_kernel(tmp_path, tiny_onnx, face_folder):
    out = tmp_path / "silu-float.onnx"
    quantize_model(tiny_onnx, out, face_folder, [Recipe(silu="float")], max_loss_db=ANY_LOSS,
                   max_image_loss_db=ANY_LOSS)
    silus = sum(node.op_type == "Sigmoid" for node in onnx.load(str(tiny_onnx)).graph.node)
    ops = Counter(node.op_type for node in onnx.load(str(out)).graph.node)
    assert silus > 0 and ops["QuickGelu"] == silus and "Sigmoid" not in ops
    assert float_compute_ops(runtime_graph(out, 1))["QuickGelu"] == silus


def candidate(name, activations, psnr, latency_s, float_ops=None):
    return {"name": name, "recipe": Recipe(activations=activations).to_dict(), "psnr": psnr, "latency_s": latency_s,
            "float_ops": float_ops if float_ops is not None else {name: 1}}


def test_the_kept_recipe_is_8_bit_within_the_loss_then_fast_then_accurate():
    candidates = [candidate("fast", "uint8", 39.30, 0.050), candidate("tie", "uint8", 39.40, 0.054),
                  candidate("slow", "uint8", 39.45, 0.090), candidate("lossy", "uint8", 39.00, 0.040),
                  candidate("16-bit", "uint16", 39.50, 0.030),
                  {"name": "broken", "recipe": Recipe().to_dict(), "error": "ValueError: no"}]
    assert choose(candidates, fp32_psnr=39.5, max_loss_db=0.2)["name"] == "tie"
    with pytest.raises(ParityError, match=r"no 8-bit recipe .* the best, slow, validation loses 0.050 dB"):
        choose(candidates, fp32_psnr=39.5, max_loss_db=0.01)


def test_recipes_running_the_same_kernels_are_equally_fast_whatever_one_timing_says():
    same = {"Conv": 2}
    candidates = [candidate("minmax", "uint8", 39.30, 0.050, same),
                  candidate("percentile", "uint8", 39.45, 0.250, same)]  # a load spike during its timing
    assert choose(candidates, fp32_psnr=39.5, max_loss_db=0.3)["name"] == "percentile"


def test_with_16_bit_recipes_measured_alone_the_refusal_names_only_failed_8_bit_ones():
    reference = candidate("16-bit", "uint16", 39.50, 0.030)
    with pytest.raises(ParityError, match=r"none was tried; 16-bit recipes are measured for reference only; nothing"):
        choose([reference], fp32_psnr=39.5, max_loss_db=0.2)
    failed = {"name": "broken", "recipe": Recipe().to_dict(), "error": "ValueError: no"}
    with pytest.raises(ParityError, match=r"every 8-bit recipe failed: broken: ValueError: no; 16-bit recipes are "
                                          r"measured for reference only; nothing was written"):
        choose([reference, failed], fp32_psnr=39.5, max_loss_db=0.2)


def test_a_selection_without_8_bit_activations_is_refused_before_any_work(tmp_path, tiny_onnx, face_folder):
    with pytest.raises(ValueError, match="no recipe has 8-bit activations"):
        quantize_model(tiny_onnx, tmp_path / "x.onnx", tmp_path / "no faces here", [Recipe(activations="uint16")])
    result = CliRunner().invoke(main, ["quantize", str(tiny_onnx), "--calibration", str(face_folder), "-o",
                                       str(tmp_path / "x.onnx"), "--activations", "uint16", "--method", "minmax"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for --activations: no recipe has 8-bit activations (uint8, int8): 16-bit ones are " \
           "measured for reference only and never kept" in result.output
    assert list(tmp_path.iterdir()) == []
    assert "uint16 is measured for reference only" in CliRunner().invoke(main, ["quantize", "--help"]).output


def test_an_unwritable_output_is_a_model_error(tmp_path, tiny_onnx, face_folder):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ModelError, match=f"^{tmp_path / 'file' / 'x-int8.onnx'}: cannot write"):
        quantize_model(tiny_onnx, tmp_path / "file" / "x-int8.onnx", face_folder, [Recipe()], max_loss_db=ANY_LOSS,
                       max_image_loss_db=ANY_LOSS)


def test_a_recipe_losing_too_much_on_one_gate_image_is_refused_naming_it(tmp_path, tiny_onnx, face_folder):
    with pytest.raises(ParityError,
                       match=r"and -1.0 dB on every gate image; .* #\d+ loses .* dB \(limit -1.0\).*; nothing"):
        quantize_model(tiny_onnx, tmp_path / "x-int8.onnx", face_folder, [Recipe()], max_loss_db=ANY_LOSS,
                       max_image_loss_db=-1.0)
    assert list(tmp_path.iterdir()) == []


def scores(fp32_psnr, int8_psnr, detail, input_detail=None):
    """fp32's and int8's SetScores, with the inputs' detail 10 times the added detail unless given."""
    inputs = np.array(input_detail if input_detail is not None else detail, float) * (10 if input_detail is None else 1)
    return (SetScores(np.array(fp32_psnr, float), np.array(detail, float), inputs),
            SetScores(np.array(int8_psnr, float), np.array(detail, float), inputs))


def test_auto_runs_in_fp32_the_images_int8_adds_too_little_detail_to_and_loses_nothing_there():
    (faces32, faces8), (smooth32, smooth8) = scores([40, 41, 42], [39.9, 40.8, 41.95], [12, 3, 30]), \
        scores([55, 54], [52, 53.5], [0.2, 0.5])
    sets = {"faces": (["a", "b", "c"], None, None, None), "smooth": (["s0", "s1"], None, None, None)}
    fp32, int8 = {"faces": faces32, "smooth": smooth32}, {"faces": faces8, "smooth": smooth8}
    every_image = gate_table(fp32, int8, sets)
    assert every_image["smooth"].worst_loss_db == 3.0 and every_image["faces"].int8_share == 1.0
    # below 5 levels²: b (3) and both smooth images in fp32
    auto = gate_table(fp32, int8, sets, fp32_below_detail=5.0)
    assert auto["smooth"] == GateRow(2, 54.5, 0.0, 0.0, "s0", 0.0, 1.0)  # both run int8, then fp32
    assert auto["faces"].worst_loss_db == pytest.approx(0.1) and auto["faces"].int8_share == pytest.approx(2 / 3)
    # the least detail: just above s1's (0.5 levels²), the most detailed image losing over the image limit
    least = least_int8_detail(fp32, int8, sets, max_loss_db=0.15, max_image_loss_db=0.3)
    assert 0.5 < least <= np.nextafter(0.5, 1)
    # a tighter mean limit also sends b, then a, to fp32: the faces' mean loss 0.117, 0.05, then 0.017 dB
    assert least_int8_detail(fp32, int8, sets, max_loss_db=0.04, max_image_loss_db=0.3) == np.nextafter(12, 13)
    assert least_int8_detail(fp32, int8, sets, max_loss_db=5, max_image_loss_db=5) == 0.0


def test_inputs_with_little_fine_detail_go_to_fp32_at_once_and_only_those_not_run_twice():
    # inputs' detail: s1 (1) and b (2) lie under 2.5, a (50) does not, though int8 adds it little detail
    (faces32, faces8), (smooth32, smooth8) = scores([40, 41, 42], [39.9, 40.8, 41.95], [12, 3, 30], [50, 2, 300]), \
        scores([55, 54], [52, 53.5], [0.2, 0.5], [6, 1])
    sets = {"faces": (["a", "b", "c"], None, None, None), "smooth": (["s0", "s1"], None, None, None)}
    fp32, int8 = {"faces": faces32, "smooth": smooth32}, {"faces": faces8, "smooth": smooth8}
    auto = gate_table(fp32, int8, sets, fp32_below_detail=20.0, fp32_below_input_detail=2.5)
    assert auto["faces"] == GateRow(3, 41.0, pytest.approx(0.05 / 3), pytest.approx(0.05), "c", 1 / 3, 1 / 3)
    assert (auto["smooth"].int8_share, auto["smooth"].twice_share) == (0.0, 0.5)  # s0 twice, s1 at once
    # the least input detail of an image whose int8 output is kept: c's alone, then b's; none kept, none at once
    assert least_input_detail(int8, sets, fp32_below_detail=20.0) == 300.0
    assert least_input_detail(int8, sets, fp32_below_detail=1.0) == 2.0
    assert least_input_detail(int8, sets, fp32_below_detail=100.0) == 0.0


def held_out_row(detail, int8_psnr, names=("s1/a.png", "s1/b.png (degraded)", "s2/c.png", "s2/d.png")):
    """The held-out row of validation faces (by default four, of subjects s1 and s2; fp32 at 40 dB,
    inputs detailed enough that none goes to fp32 at once), at the limits 0.2 dB (mean) and 0.3 (image)."""
    fp32, int8 = scores([40] * len(names), int8_psnr, detail, [1000] * len(names))
    sets = {VALIDATION_SET: (names, None, None, None)}
    return held_out_subjects({VALIDATION_SET: fp32}, {VALIDATION_SET: int8}, sets, 0.2, 0.3)


def test_a_least_detail_only_one_subject_demands_fails_on_that_subject_held_out():
    # a (5 levels², 0.5 dB) alone sends the faces under 5 to fp32; chosen on s2 alone, the least detail lets a run int8
    row = held_out_row([5, 20, 6, 30], [39.5, 40.0, 39.8, 39.95])
    assert (row.images, row.worst_image, row.worst_loss_db) == (4, "s1/a.png", pytest.approx(0.5))
    assert gate_failures({HELD_OUT_SET: row}, 0.2, 0.3) == ["s1/a.png loses 0.500 dB (limit 0.3)"]
    # c (5, 0.5 dB) demands the same of s2: each subject, held out, is routed as every face routes it
    row = held_out_row([5, 20, 5, 30], [39.5, 39.9, 39.5, 39.95])
    assert (row.worst_image, row.worst_loss_db, row.int8_share) == ("s1/b.png (degraded)", pytest.approx(0.1), 0.5)
    assert held_out_row([5, 20], [39.5, 39.9], names=("s1/a.png", "s1/b.png")) is None  # one subject


def test_a_validation_face_s_subject_is_its_folder():
    assert subject_of_face("yaleB29/yaleB29_P00A+000E+00.png (degraded)") == "yaleB29"
    assert subject_of_face("face.png (degraded)") == subject_of_face("face.png") == "face.png"


def test_a_recipe_int8_would_rarely_run_is_refused():
    table = {"validation faces": GateRow(images=10, fp32_psnr=40.0, mean_loss_db=0.01, worst_loss_db=0.1,
                                         worst_image="a.png", int8_share=0.3)}
    rare = {**candidate("rare", "uint8", 39.4, 0.05), "gate": table}
    with pytest.raises(ParityError, match=r"int8 runs 30% of the validation faces \(at least 50%\)"):
        choose([rare], fp32_psnr=39.5, max_loss_db=0.2)
    assert choose([rare], fp32_psnr=39.5, max_loss_db=0.2, min_int8_share=0.25)["name"] == "rare"


def test_the_gate_is_checked_per_set_mean_and_per_image():
    table = {"validation faces": GateRow(images=5, fp32_psnr=40.0, mean_loss_db=0.1, worst_loss_db=0.25,
                                         worst_image="a.png"),
             "high-key": GateRow(images=8, fp32_psnr=41.0, mean_loss_db=0.2, worst_loss_db=0.4,
                                 worst_image="high-key #2")}
    assert gate_failures(table, 0.2, 0.3) == ["high-key #2 loses 0.400 dB (limit 0.3)"]
    assert gate_failures(table, 0.15, 0.5) == ["high-key loses 0.200 dB on average (limit 0.15)"]
    passing = candidate("passing", "uint8", 39.4, 0.05)
    failing = {**candidate("failing", "uint8", 39.45, 0.05), "gate": table}
    assert choose([passing, failing], fp32_psnr=39.5, max_loss_db=0.2)["name"] == "passing"


def with_degradation_config(path, folder):
    """A copy of a conditioned model that states the degradations it was trained on, as a trained one does."""
    from enhance_edge.eval.degradation import DegradationConfig

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "degradation_config": json.dumps(DegradationConfig().to_dict())})
    onnx.save(model, str(folder / path.name))
    return folder / path.name


@pytest.mark.parametrize("model", ["tiny_onnx", "tiny_conditioned_onnx"])
def test_a_mix_calibrated_recipe_records_its_gate_table(request, tmp_path, model, face_folder):
    out = tmp_path / "mix-int8.onnx"
    recipe = Recipe("minmax", silu="float", calibration_set="mix", residual="float")
    fp32 = request.getfixturevalue(model)
    if model == "tiny_conditioned_onnx":
        fp32 = with_degradation_config(fp32, tmp_path)
    summary = quantize_model(fp32, out, face_folder, [recipe], max_loss_db=ANY_LOSS, max_image_loss_db=ANY_LOSS)
    assert summary["recipe"] == recipe.to_dict() and summary["max_image_loss_db"] == ANY_LOSS
    gate = json.loads(open_session(out)[1].metadata["quantization"])["gate"]
    assert set(gate) == {"validation faces", "astronaut", "lfw faces", "gradient", "high-key", "low-key"}
    assert all(row["images"] > 0 and row["worst_loss_db"] >= row["mean_loss_db"] for row in gate.values())
    # the residual adds run in float: the runtime graph keeps them out of the int8 kernels
    assert float_compute_ops(runtime_graph(out, 1))["Add"] >= 1


def test_the_calibration_mix_never_holds_a_gate_image():
    mix = np.concatenate(list(calibration_mix((48, 42), per_kind=2).values()))
    gates = np.concatenate([hrs for hrs in gate_images((48, 42), 2).values() if hrs.shape[1:] == (48, 42)])
    assert not any((gate == mix).all(axis=(1, 2)).any() for gate in gates)
    assert {"gradient", "high_key", "low_key", "text"} <= set(calibration_mix((48, 42), per_kind=1))


def gradient_and_high_key(shape=(112, 92)):
    rng = np.random.default_rng(GATE_SEED)
    return np.stack([SYNTHETIC["gradient"](rng, *shape), SYNTHETIC["high_key"](rng, *shape)])


def test_every_shipped_int8_file_passed_the_held_out_gate_and_holds_on_a_gradient_and_a_high_key_image():
    # None ships now (MODEL_CARD.md, "int8": both candidates fail their held-out subjects); one that does
    # must have been made, and pass, with the gate as it is, and hold on these two images as auto runs it.
    for int8_path in sorted(bundled_model_path("default").parent.glob("*-int8.onnx")):
        info = open_session(int8_path)[1]
        summary = json.loads(info.metadata["quantization"])
        gate = {name: GateRow.from_dict(row) for name, row in summary["gate"].items()}
        assert HELD_OUT_SET in gate and not gate_failures(gate, summary["max_loss_db"], MAX_IMAGE_LOSS_DB), int8_path
        hrs = gradient_and_high_key()
        lrs = lr_of(hrs, 2)
        sets = {"pinned": (["gradient", "high-key"], hrs, lrs, estimated_levels(info, lrs))}
        fp32, int8 = (image_scores(scoring_session(path, 1), sets) for path in (info.fp32_model, int8_path))
        # as precision auto runs it (int8 where exact: computed so here), with the file's own least details
        row = gate_table(fp32, int8, sets, info.fp32_below_detail or 0.0, info.fp32_below_input_detail)["pinned"]
        assert row.worst_loss_db <= MAX_IMAGE_LOSS_DB and row.mean_loss_db <= INT8_SET_LOSS_GOAL_DB, (int8_path, row)
