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
from enhance_edge.export.calibration_mix import (GATE_SEED, NATURAL_GATE_SETS, SYNTHETIC, calibration_mix,
                                                 gate_images, lr_of)
from enhance_edge.export.gate import MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB, GateRow, gate_failures
from enhance_edge.export.quantize import (VALIDATION_SET, FaceCalibrationReader, Recipe, check_int8_file, choose,
                                          default_search, float_compute_ops, fuse_float_silu,
                                          gate_row, gate_table, output_layers, quantize_model, robust_search,
                                          runtime_graph, scoring_session, search_space, set_outputs)
from enhance_edge.core.model import INPUT_NAME, bundled_model_path, int8_weight_bits, open_session

# The tiny random-weight fixture model is not a face model: these tests check the pipeline, and
# allow it any quality loss (ANY_LOSS dB, any PSNR against fp32) except where the gate itself is under test.
ANY_LOSS = 100.0
ANY = {"max_loss_db": ANY_LOSS, "min_psnr_vs_fp32_db": 0.0}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_onnx, face_folder):
    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    summary = quantize_model(tiny_onnx, out, face_folder,
                             [Recipe(), Recipe(activations="int8", weights="uint8")], **ANY)
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
    assert stored["scored_as"] == "exact int8 arithmetic (QDQ in float)"
    assert (stored["min_psnr_vs_fp32_db"], stored["max_loss_db"]) == (0.0, ANY_LOSS)
    assert set(stored["gate"]) == {VALIDATION_SET, "astronaut", "lfw faces", "lfw upsampled", "gradient", "high-key",
                                 "low-key", "text"}
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
    with pytest.raises(ParityError, match=r"losing at most -1 dB.*validation faces loses .* dB on average against "
                                          r"the truth \(limit -1\).*; nothing was written"):
        quantize_model(tiny_onnx, out, face_folder, [Recipe()], max_loss_db=-1.0, min_psnr_vs_fp32_db=0.0)
    assert list(tmp_path.iterdir()) == []


def test_calibration_and_scores_use_the_subjects_and_hr_size_the_model_was_trained_with(tmp_path, tiny_onnx,
                                                                                       eight_subjects):
    model = onnx.load(str(tiny_onnx))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["train_config"] = json.dumps({"seed": 1, "hr_size": [24, 28]})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(tmp_path / "seed1.onnx"))
    summary = quantize_model(tmp_path / "seed1.onnx", tmp_path / "seed1-int8.onnx", eight_subjects, [Recipe()], **ANY)
    # person3 and person6, seed 1's held-out subjects (seed 0 holds out person4 and person1: 6 and 3 faces)
    assert summary["validation"]["faces"] == 5 and summary["test"]["faces"] == 8
    _, info = open_session(tmp_path / "seed1-int8.onnx")
    assert json.loads(info.metadata["test"])["images"] == 8


def test_an_int8_model_is_not_quantized_again(quantized, face_folder, tmp_path):
    with pytest.raises(ModelError, match="already quantized"):
        quantize_model(quantized[0], tmp_path / "twice.onnx", face_folder, **ANY)


def test_search_space_is_the_product_of_the_choices():
    recipes = search_space(calibrations=["minmax", "entropy"], activations=["uint8"], silu=["int8", "float"])
    assert len(recipes) == 2 * 1 * 2 * 2 and len(set(recipes)) == len(recipes)
    assert {r.calibration for r in recipes} == {"minmax", "entropy"} and {r.output for r in recipes} == {"float"}
    default = default_search()
    assert len(set(default)) == len(default) == 3 * 3 * 2 + 3 + 2 + 3 * 2 * 2
    assert {r.output_convs for r in robust_search()} == {1, 2}
    assert {r.calibration_set for r in robust_search()} == {"mix"} and {r.silu for r in robust_search()} == {"float"}
    assert set(robust_search()) <= set(default) and {r.residual for r in robust_search()} == {"int8", "float"}
    assert Recipe(output="int8") in default and Recipe(silu="float") in default
    assert Recipe(calibration="percentile", silu="float") in default
    with pytest.raises(ValueError, match="Recipe.activations must be one of"):
        Recipe(activations="int4")


def test_output_convs_count_only_float_output_layers():
    # int8 output layers have no depth: the product leaves those combinations out, a Recipe refuses them
    recipes = search_space(calibrations=["minmax"], activations=["uint8"], weights=["int8"], output=["float", "int8"],
                           output_convs=[1, 2])
    assert sorted((r.output, r.output_convs) for r in recipes) == [("float", 1), ("float", 2), ("int8", 1)]
    assert Recipe(output_convs=2).name.endswith("out:float outconvs:2")
    with pytest.raises(ValueError, match="got 2 with output='int8'"):
        Recipe(output="int8", output_convs=2)
    with pytest.raises(ValueError, match="got 0 with output='float'"):
        Recipe(output_convs=0)


def test_output_layers_are_the_last_convolutions_and_what_follows(tiny_onnx):
    names = output_layers(onnx.load(str(tiny_onnx)))
    # the tail conv, the bicubic skip conv (not the Pad before it), their Add and the DepthToSpace
    assert sorted(names) == sorted(["/tail/Conv", "/Conv", "/Add", "/shuffle/DepthToSpace"])
    # two deep: on the main path the residual block's second conv (not its first), and on its skip the head conv
    deeper = output_layers(onnx.load(str(tiny_onnx)), convs=2)
    assert set(names) < set(deeper) and {"/body.0/conv2/Conv", "/body.0/Add", "/head/Conv"} <= set(deeper)
    assert "/body.0/conv1/Conv" not in deeper


def test_two_output_convs_run_one_more_convolution_in_float(quantized, tmp_path, tiny_onnx, face_folder):
    out = tmp_path / "two-deep-int8.onnx"
    summary = quantize_model(tiny_onnx, out, face_folder, [Recipe(output_convs=2)], **ANY)
    assert summary["recipe"]["output_convs"] == 2
    float_convs = float_compute_ops(runtime_graph(out, 1))["Conv"]
    assert float_convs > float_compute_ops(runtime_graph(quantized[0], 1))["Conv"]


def test_seven_bit_weights_are_what_avx2_sums_exactly_and_the_file_says_so(quantized, tmp_path, tiny_onnx,
                                                                            face_folder):
    out = tmp_path / "seven-bit-int8.onnx"
    summary = quantize_model(tiny_onnx, out, face_folder, [Recipe(weight_bits=7)], **ANY)
    assert summary["recipe"]["weight_bits"] == 7

    def conv_weights(path):
        model = onnx.load(str(path))
        stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        return [stored[n.input[0]] for n in model.graph.node
                if n.op_type == "DequantizeLinear" and stored.get(n.input[0], np.zeros(0)).ndim == 4]

    seven, eight = conv_weights(out), conv_weights(quantized[0])
    assert len(seven) == len(eight) == 3 and all(w.dtype == np.int8 for w in seven)
    # 255 * 64 * 2 < 2**15: no pair of uint8 x int8 products saturates AVX2's 16-bit sums
    assert max(int(np.abs(w).max()) for w in seven) == 64
    assert max(int(np.abs(w).max()) for w in eight) == 127
    assert [int8_weight_bits(open_session(path)[1].metadata) for path in (out, quantized[0])] == [7, 8]
    assert Recipe(weight_bits=7).name.endswith("out:float wbits:7")
    assert sorted((r.weights, r.weight_bits) for r in search_space(
        calibrations=["minmax"], activations=["uint8"], weights=["int8", "uint8"], weight_bits=[8, 7])) == [
        ("int8", 7), ("int8", 8), ("uint8", 8)]
    with pytest.raises(ValueError, match=r"weight_bits must be one of \[8, 7\] \(7 with weights='int8'\); got 7 with "
                                         r"weights='uint8'"):
        Recipe(weights="uint8", weight_bits=7)


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
    quantize_model(tiny_onnx, out, face_folder, [Recipe(silu="float")], **ANY)
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
    with pytest.raises(ParityError, match=r"no 8-bit recipe .* the best, slow: validation loses 0.050 dB"):
        choose(candidates, fp32_psnr=39.5, max_loss_db=0.01)


def test_within_the_speed_tie_a_recipe_a_hair_more_accurate_does_not_beat_a_faster_one():
    candidates = [candidate("one-float-conv", "uint8", 38.347, 0.0086),
                  candidate("two-float-convs", "uint8", 38.351, 0.0091)]
    assert choose(candidates, fp32_psnr=38.36, max_loss_db=0.1)["name"] == "one-float-conv"
    candidates[1]["psnr"] = 38.360  # 0.013 dB better: worth its time
    assert choose(candidates, fp32_psnr=38.36, max_loss_db=0.1)["name"] == "two-float-convs"


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
        quantize_model(tiny_onnx, tmp_path / "file" / "x-int8.onnx", face_folder, [Recipe()], **ANY)


def test_a_recipe_too_far_from_fp32_on_one_gate_image_is_refused_naming_it(tmp_path, tiny_onnx, face_folder):
    # calibrated on the faces alone, the tiny model's int8 outputs of gradients, high-key and text images
    # are far from its fp32 outputs (20-37 dB), though its natural sets lose little against the truth
    with pytest.raises(ParityError, match=r"within 45 dB PSNR of fp32's output.*(gradient|high-key|text) #\d+'s int8 "
                                          r"output is .* dB from fp32's \(limit >= 45\).*; nothing was written"):
        quantize_model(tiny_onnx, tmp_path / "x-int8.onnx", face_folder, [Recipe()], max_loss_db=ANY_LOSS)
    assert list(tmp_path.iterdir()) == []


def coarsened(int8_path, out_path, factor):
    """A deliberately noisy copy of a QDQ model: every activation's quantization step ``factor`` times
    larger (the scale its QuantizeLinear and DequantizeLinear share), as if it had fewer bits."""
    model = onnx.load(str(int8_path))
    scales = {node.input[1] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name in scales:
            model.graph.initializer[index].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(tensor) * np.float32(factor), tensor.name))
    onnx.save(model, str(out_path))
    return out_path


def test_the_gate_passes_a_good_int8_file_and_refuses_a_deliberately_noisy_one(tmp_path, tiny_onnx, face_folder,
                                                                                 monkeypatch):
    import enhance_edge.export.quantize as quantize_module

    # calibrated on the mix, the tiny model passes the gate at its default limits
    good = tmp_path / "good-int8.onnx"
    summary = quantize_model(tiny_onnx, good, face_folder, [Recipe(calibration_set="mix")])
    assert gate_failures(summary["gate"]) == []
    assert min(row.vs_fp32_min_psnr for row in summary["gate"].values()) >= MIN_PSNR_VS_FP32_DB
    # any int8 file is gated as quantize gates its candidates: the good one as it was, the noisy one refused
    assert check_int8_file(tiny_onnx, good, face_folder) == summary["gate"]
    noisy = check_int8_file(tiny_onnx, coarsened(good, tmp_path / "noisy-int8.onnx", 16), face_folder)
    assert any("int8 output is" in failure and "(limit >= 45)" in failure for failure in gate_failures(noisy))
    # and quantize refuses it, writing nothing, when its recipe makes such a file
    real = quantize_module.quantize_with

    def noisy_quantize_with(recipe, prepared, out_path, *args, **kwargs):
        real(recipe, prepared, out_path, *args, **kwargs)
        coarsened(out_path, out_path, 16)

    monkeypatch.setattr(quantize_module, "quantize_with", noisy_quantize_with)
    with pytest.raises(ParityError, match=r"int8 output is .* dB from fp32's \(limit >= 45\)"):
        quantize_model(tiny_onnx, tmp_path / "refused-int8.onnx", face_folder, [Recipe(calibration_set="mix")])
    assert not (tmp_path / "refused-int8.onnx").exists()


def test_a_gate_row_compares_8_bit_outputs_with_fp32_s_and_both_with_the_truth():
    hrs = np.full((3, 4, 4), 100, np.uint8)
    fp32 = hrs + np.uint8(2)  # 2 levels off the truth: 42.11 dB
    int8 = fp32.copy()
    int8[1, 0, 0] += 8  # one pixel of 16 four levels² on average off fp32: 42.11 dB from it
    int8[2] += 1  # one level everywhere: 48.13 dB from fp32
    row = gate_row(["a", "b", "c"], hrs, fp32, int8, natural=True)
    assert row.vs_fp32_min_psnr == pytest.approx(10 * np.log10(255**2 / 4)) and row.vs_fp32_worst_image == "b"
    assert row.vs_fp32_psnr == pytest.approx(10 * np.log10(255**2 / ((4 + 1) / 3)))  # of the set's mean square
    assert row.fp32_psnr == pytest.approx(10 * np.log10(255**2 / 4)) and row.natural
    # against the truth b's error grows 4 -> (15 * 4 + 100) / 16 = 10 levels², c's 4 -> 9; a loses nothing
    assert (row.worst_image, row.worst_loss_db) == ("b", pytest.approx(10 * np.log10(10 / 4)))
    assert row.mean_loss_db == pytest.approx((10 * np.log10(10 / 4) + 10 * np.log10(9 / 4)) / 3)
    identical = gate_row(["a"], hrs[:1], fp32[:1], fp32[:1], natural=False)
    assert (identical.vs_fp32_min_psnr, identical.mean_loss_db) == (100.0, 0.0)


def test_the_kept_recipe_passes_its_gate_table():
    faces = GateRow(images=5, fp32_psnr=40.0, mean_loss_db=0.05, worst_loss_db=0.25, worst_image="a.png",
                    vs_fp32_psnr=50.0, vs_fp32_min_psnr=46.0, vs_fp32_worst_image="b.png", natural=True)
    high_key = GateRow(images=8, fp32_psnr=41.0, mean_loss_db=0.4, worst_loss_db=0.9, worst_image="high-key #2",
                       vs_fp32_psnr=47.0, vs_fp32_min_psnr=44.0, vs_fp32_worst_image="high-key #3")
    passing = {**candidate("passing", "uint8", 39.4, 0.05), "gate": {"faces": faces}}
    failing = {**candidate("failing", "uint8", 39.45, 0.05), "gate": {"faces": faces, "high-key": high_key}}
    assert choose([passing, failing], fp32_psnr=39.5)["name"] == "passing"
    with pytest.raises(ParityError, match=r"the best, failing: high-key #3's int8 output is 44.00 dB from fp32's"):
        choose([failing], fp32_psnr=39.5)
    assert choose([failing], fp32_psnr=39.5, min_psnr_vs_fp32_db=44.0)["name"] == "failing"  # high-key's mean: shown
    with pytest.raises(ParityError, match=r"faces loses 0.050 dB on average against the truth \(limit 0.04\)"):
        choose([passing], fp32_psnr=39.5, max_loss_db=0.04)


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
    summary = quantize_model(fp32, out, face_folder, [recipe], **ANY)
    assert summary["recipe"] == recipe.to_dict() and summary["max_loss_db"] == ANY_LOSS
    gate = json.loads(open_session(out)[1].metadata["quantization"])["gate"]
    assert set(gate) == {"validation faces", "astronaut", "lfw faces", "lfw upsampled", "gradient", "high-key",
                         "low-key", "text"}
    assert {name for name, row in gate.items() if row["natural"]} == {"validation faces", "astronaut", "lfw faces"}
    assert all(row["images"] > 0 and row["worst_loss_db"] >= row["mean_loss_db"]
               and row["vs_fp32_psnr"] >= row["vs_fp32_min_psnr"] for row in gate.values())
    if model == "tiny_onnx":  # the residual adds run in float: the runtime graph keeps them out of the int8 kernels
        assert float_compute_ops(runtime_graph(out, 1))["Add"] >= 1


@pytest.mark.parametrize("scale", [2, 4])
def test_lfw_gate_faces_are_scored_at_their_own_resolution_and_shown_blown_up(scale):
    import skimage.data

    gates = gate_images((48, 42), scale)
    native = (skimage.data.lfw_subset()[:len(gates["lfw faces"])] * 255).round().astype(np.uint8)
    side = 25 // scale * scale
    np.testing.assert_array_equal(gates["lfw faces"], native[:, :side, :side])
    assert gates["lfw upsampled"].shape[1:] == (48, 42)
    assert "lfw faces" in NATURAL_GATE_SETS and "lfw upsampled" not in NATURAL_GATE_SETS


def test_the_calibration_mix_never_holds_a_gate_image():
    mix = np.concatenate(list(calibration_mix((48, 42), per_kind=2).values()))
    gates = np.concatenate([hrs for hrs in gate_images((48, 42), 2).values() if hrs.shape[1:] == (48, 42)])
    assert not any((gate == mix).all(axis=(1, 2)).any() for gate in gates)
    assert {"gradient", "high_key", "low_key", "text"} <= set(calibration_mix((48, 42), per_kind=1))


def gradient_and_high_key(shape=(112, 92)):
    rng = np.random.default_rng(GATE_SEED)
    return np.stack([SYNTHETIC["gradient"](rng, *shape), SYNTHETIC["high_key"](rng, *shape)])


@pytest.mark.parametrize("int8_path", sorted(bundled_model_path("default").parent.glob("*-int8.onnx")),
                         ids=lambda path: path.name)
def test_every_shipped_int8_file_passed_the_gate_and_holds_on_a_gradient_and_a_high_key_image(int8_path):
    # Each must have been made, and passed, with the gate as it is, and stay within it on these two images.
    info = open_session(int8_path)[1]
    summary = json.loads(info.metadata["quantization"])
    gate = {name: GateRow.from_dict(row) for name, row in summary["gate"].items()}
    assert summary["min_psnr_vs_fp32_db"] >= MIN_PSNR_VS_FP32_DB and summary["max_loss_db"] <= MAX_MEAN_LOSS_DB
    assert all(row.vs_fp32_min_psnr is not None for row in gate.values()) and not gate_failures(gate), int8_path
    hrs = gradient_and_high_key()
    lrs = lr_of(hrs, info.scale)
    sets = {"pinned": (["gradient", "high-key"], hrs, lrs)}
    fp32_path = int8_path.with_name(int8_path.name.replace("-int8", ""))
    fp32, int8 = (set_outputs(scoring_session(path, 1), sets) for path in (fp32_path, int8_path))
    row = gate_table(fp32, int8, sets)["pinned"]
    assert row.vs_fp32_min_psnr >= MIN_PSNR_VS_FP32_DB, (int8_path, row)
