"""The benchmark runs end to end on tiny inputs and produces well-formed results (no timing thresholds)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from enhance_edge.benchmarks import machine, run
from enhance_edge.benchmarks.report import (CAVEAT, NOT_AN_INT8_SPEED_CPU, goals, markdown, screen_table, verdict,
                                            write_all)
from enhance_edge.benchmarks.run import (BenchConfig, Faces, compare_models, end_to_end, input_plane, peak_rss_mib,
                                         run_benchmark)
from enhance_edge.errors import DataError, ModelError
from enhance_edge.core.model import int8_runs_exactly_here, open_session
from enhance_edge.export.quantize import Recipe
from enhance_edge.core.model import bundled_model_path

YALE_TEST = Path(__file__).parent.parent / "data" / "yale_test"
# Extra models in the run: another generator size, and the int8 model again under its own label.
EXTRA = ("ort-other", "ort-tiny-int8")
NETWORKS = ("pytorch-fp32", "ort-fp32", "ort-int8", "opencv-dnn-fp32", "opencv-dnn-int8", *EXTRA)
ALL_BACKENDS = (*NETWORKS, "fsrcnn", "fsrcnn-small", "espcn", "pillow-bicubic", "pillow-lanczos")


def tiny_config(models, tmp_path, **changes) -> BenchConfig:
    settings = dict(data_dir=YALE_TEST, peers_dir=tmp_path / "no-peers", sizes=((8, 6), (12, 10)), threads=(1,),
                    batch=3, warmup=1, min_reps=2, min_time_s=0.0, peak_n=64, end_to_end_reps=1,
                    sections=("latency", "throughput", "quality", "kernels"))
    return BenchConfig(*models, **{**settings, **changes})


@pytest.fixture(scope="module")
def results(models, other_onnx, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(machine.shutil, "which", lambda name: None)  # perf: tested apart
    return run_benchmark(tiny_config(models, tmp_path_factory.mktemp("bench"),
                                     extra_models=(("other", other_onnx), ("tiny-int8", models[1]))))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_backend_is_measured_or_skipped_with_a_reason(results):
    measured = {row["backend"] for row in results["latency"]}
    assert measured | set(results["skipped"]) == set(ALL_BACKENDS)
    for peer in ("fsrcnn", "fsrcnn-small", "espcn"):
        assert peer in results["skipped"] and "not found" in results["skipped"][peer]
    assert {"ort-fp32", "ort-int8", "pillow-bicubic", "pillow-lanczos"} <= measured


def test_latency_rows_are_complete_and_networks_get_a_roofline(results):
    for row in results["latency"]:
        assert row["size"] in ([8, 6], [12, 10]) and row["threads"] == 1 and row["reps"] >= 2
        assert 0 < row["median_ms"] <= row["p90_ms"]
        assert ("gflops" in row) == (row["backend"] in NETWORKS)
    sizes = {tuple(r["size"]) for r in results["latency"] if r["backend"] == "ort-int8"}
    assert sizes == {(8, 6), (12, 10)}
    assert {r["backend"] for r in results["throughput"]} == {r["backend"] for r in results["latency"]}
    assert all(r["images_per_s"] > 0 and r["batch"] == 3 for r in results["throughput"])


def test_quality_is_scored_on_the_yale_test_faces_and_networks_agree(results):
    quality = results["quality"]
    assert quality["faces"] == 12 and quality["split"] == "test"
    scores = quality["scores"]
    assert scores["pillow-lanczos"]["psnr"] > scores["pillow-bicubic"]["psnr"] > 30
    assert scores.get("pytorch-fp32", {}).get("max_diff_vs_ort_fp32", 0) <= 1  # same weights, same result
    assert scores.get("opencv-dnn-fp32", {}).get("max_diff_vs_ort_fp32", 0) <= 1


def test_roofline_kernels_and_model_facts(results, models, tiny_generator_config):
    roofline = results["roofline"]
    assert roofline["macs_per_input_pixel"] == tiny_generator_config.macs_per_input_pixel()
    assert roofline["peaks"]["1"]["fp32_gflops"] > 0 and roofline["peaks"]["1"]["int8_gops"] > 0
    operators = {o["op"] for o in results["kernels"]["operators"]["int8"]}
    assert "QLinearConv" in operators and "ConvInteger" not in operators
    assert {o["op"] for o in results["kernels"]["operators"]["fp32"]} >= {"Conv"}
    assert "skipped" in results["kernels"]["instructions"]["int8"]
    assert results["models"]["int8"]["bytes"] == models[1].stat().st_size
    assert results["models"]["int8"]["runs_under_auto"] == int8_runs_exactly_here(models[1])
    assert results["quantization"]["recipe"] == Recipe().to_dict()
    assert results["machine"]["logical_cpus"] >= 1 and "onnxruntime" in results["versions"]


def test_extra_models_are_timed_and_scored_with_their_own_multiply_adds(results, models, other_onnx):
    assert results["roofline"]["extra_models"] == {"ort-other": 370, "ort-tiny-int8": 568}
    for row in (r for r in results["latency"] if r["backend"] in EXTRA):
        macs = results["roofline"]["extra_models"][row["backend"]]
        assert row["gflops"] == pytest.approx(2 * macs * row["size"][0] * row["size"][1] / row["median_ms"] / 1e6)
        assert row["precision"] == ("int8" if row["backend"] == "ort-tiny-int8" else "fp32")
    assert {tuple(r["size"]) for r in results["latency"] if r["backend"] == "ort-other"} == {(8, 6), (12, 10)}
    assert {r["backend"] for r in results["throughput"]} >= set(EXTRA)
    scores = results["quality"]["scores"]
    assert scores["ort-tiny-int8"] == {k: scores["ort-int8"][k] for k in ("psnr", "ssim")}  # one file, twice
    assert scores["ort-other"]["psnr"] != scores["ort-fp32"]["psnr"]
    assert results["models"]["ort-other"]["bytes"] == other_onnx.stat().st_size
    assert results["config"]["extra_models"] == [["other", str(other_onnx)], ["tiny-int8", str(models[1])]]
    goal_names = [g["goal"] for g in goals(json.loads(json.dumps(results)))]
    assert "ort-other PSNR on the Yale test subjects" in goal_names
    assert "ort-other PSNR on the Yale test subjects" in screen_table(results)


def test_extra_models_need_a_file_and_a_name_of_their_own(models, other_onnx, tmp_path):
    with pytest.raises(ModelError, match="ort-fp32"):
        tiny_config(models, tmp_path, extra_models=(("fp32", other_onnx),))
    with pytest.raises(ModelError, match="ort-x"):
        tiny_config(models, tmp_path, extra_models=(("x", other_onnx), ("x", models[0])))
    with pytest.raises(ModelError, match="missing.onnx"):
        tiny_config(models, tmp_path, extra_models=(("x", tmp_path / "missing.onnx"),))


def test_compared_models_are_bundled_names_or_files(other_onnx, tmp_path, monkeypatch):
    assert run.compare_models((str(other_onnx),)) == (("other", other_onnx),)
    bundled = run.compare_models(("default",))
    assert bundled[0] == ("default-fp32", run.resolve_model("default", "fp32"))
    assert {label for label, _ in bundled} <= {"default-fp32", "default-int8"}
    with pytest.raises(ModelError, match="nothing-here.onnx"):
        run.compare_models((str(tmp_path / "nothing-here.onnx"),))
    # Nothing named: the default bundled name's installed files, and no error where it has none.
    monkeypatch.setattr(run, "DEFAULT_COMPARE", "default")
    assert run.compare_models() == bundled
    monkeypatch.setattr(run, "DEFAULT_COMPARE", "not-bundled")
    assert run.compare_models() == ()


def test_results_are_written_as_json_markdown_and_a_plot(results, tmp_path):
    written = write_all(results, tmp_path)
    assert [p.name for p in written] == ["results.json", "latency.png", "RESULTS.md"]
    assert json.loads((tmp_path / "results.json").read_text())["latency"] == json.loads(json.dumps(results["latency"]))
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "RESULTS.md").read_text()
    assert CAVEAT in text and "## Machine" in text and "| ort-int8 | 8x6 |" in text
    assert "## Quantization recipes" in text
    assert "with at least 2 repetitions and 0 s per backend and measurement, after 1 warm-up runs" in text


def test_a_busy_machine_is_called_out(results):
    busy = {**results, "load_average_before": [8.0, 8.0, 8.0], "machine": {**results["machine"], "logical_cpus": 2}}
    assert "not representative" in markdown(busy, None)
    idle = {**busy, "load_average_before": [0.0, 0.0, 0.0]}
    assert "not representative" not in markdown(idle, None)


def test_goals_are_ratios_of_the_same_run():
    rows = [{"backend": b, "size": s, "threads": 1, "median_ms": ms} for b, s, ms in [
        ("ort-fp32", [256, 256], 100.0), ("ort-int8", [256, 256], 40.0), ("pytorch-fp32", [256, 256], 150.0),
        ("ort-fp32", [1024, 1024], 1600.0), ("ort-int8", [1024, 1024], 1000.0)]]
    rows.append({"backend": "ort-int8", "size": [256, 256], "threads": 1, "median_ms": 40.0, "peak_fraction": 0.3})
    found = {g["goal"]: g for g in goals({"config": {"threads": [1]}, "latency": rows, "quality": {"scores": {
        "ort-fp32": {"psnr": 38.0}, "ort-int8": {"psnr": 37.95}}}, "end_to_end": {"image": "x", "runs": {
        "fp32": {"median_s": 3.0}, "int8": {"median_s": 2.0}}}})}
    assert found["ORT int8 vs ORT fp32, 256x256, 1 thread(s)"]["value"] == pytest.approx(2.5)
    assert found["ORT int8 vs ORT fp32, 256x256, 1 thread(s)"]["met"] is True
    assert found["ORT int8 vs ORT fp32, 1024x1024, 1 thread(s)"]["met"] is False
    assert found["ORT fp32 vs PyTorch eager, 256x256, 1 thread(s)"]["value"] == pytest.approx(1.5)
    assert found["int8 PSNR loss on the Yale test subjects (dB)"]["met"] is True
    assert found["enhance-edge upscale end to end, x"]["value"] == pytest.approx(1.5)
    assert [g["met"] for g in found.values() if g["goal"].startswith("ORT int8 share")] == [True]


def test_extra_model_goals_compare_with_fsrcnn_in_the_same_run():
    rows = [{"backend": b, "size": s, "threads": t, "median_ms": ms} for b, s, t, ms in [
        ("fsrcnn", [512, 512], 2, 30.0), ("ort-fast-fp32", [512, 512], 2, 20.0),
        ("fsrcnn", [512, 512], 1, 50.0), ("ort-fast-fp32", [512, 512], 1, 100.0),
        ("ort-fast-int8", [256, 256], 2, 5.0), ("fsrcnn", [256, 256], 2, 10.0)]]
    found = {g["goal"]: g for g in goals({"config": {"threads": [1, 2], "extra_models": [
        ["fast-fp32", "fast.onnx"], ["fast-int8", "fast-int8.onnx"]]}, "latency": rows, "quality": {"scores": {
        "ort-fast-fp32": {"psnr": 38.6}, "ort-fast-int8": {"psnr": 38.4}}}})}
    latency = found["ort-fast-fp32 latency vs OpenCV FSRCNN x2, 512x512, 2 threads"]
    assert latency["value"] == pytest.approx(1.5) and latency["met"] is False and latency["target"] == ">= 2.5x"
    psnr = found["ort-fast-fp32 PSNR on the Yale test subjects"]
    assert psnr["value"] == 38.6 and psnr["met"] is True and psnr["target"] == ">= 38.5 dB"
    # No 512x512 row for the int8 model in this run: not measured, whatever other sizes say.
    unmeasured = found["ort-fast-int8 latency vs OpenCV FSRCNN x2, 512x512, 2 threads"]
    assert unmeasured["value"] is None and unmeasured["met"] is None
    assert found["ort-fast-int8 PSNR on the Yale test subjects"]["met"] is False
    assert found["ort-fast-int8 vs ort-fast-fp32, 512x512, 2 threads"]["value"] is None  # nor against its fp32
    with_int8 = rows + [{"backend": "ort-fast-int8", "size": [512, 512], "threads": 2, "median_ms": 8.0}]
    found = {g["goal"]: g for g in goals({"config": {"threads": [2], "extra_models": [
        ["fast-fp32", "fast.onnx"], ["fast-int8", "fast-int8.onnx"]]}, "latency": with_int8})}
    speedup = found["ort-fast-int8 vs ort-fast-fp32, 512x512, 2 threads"]
    assert speedup["value"] == pytest.approx(2.5) and speedup["met"] is True and speedup["target"] == ">= 2.0x"
    slower = [{**r, "median_ms": 45.0} if (r["backend"], r["threads"]) == ("ort-fast-fp32", 2) else r for r in rows]
    found = {g["goal"]: g for g in goals({"config": {"threads": [2], "extra_models": [["fast-fp32", "f"]]},
                                          "latency": slower})}
    assert found["ort-fast-fp32 latency vs OpenCV FSRCNN x2, 512x512, 2 threads"]["met"] is False
    other = {g["goal"]: g for g in goals({"config": {"threads": [2], "extra_models": [["other", "o"]]},
                                          "latency": [{**r, "backend": "ort-other"} if r["backend"] == "ort-fast-fp32"
                                                      else r for r in rows]})}
    assert other["ort-other latency vs OpenCV FSRCNN x2, 512x512, 2 threads"]["target"] == ">= 1.0x"


RELEASE_ROWS = "ORT fp32 vs ort-release-0.1-default, 1024x1024, 2 threads (latency rows)"


def test_the_default_is_timed_against_the_release_it_replaced_in_the_same_run():
    rows = [{"backend": b, "size": [1024, 1024], "threads": 2, "median_ms": ms}
            for b, ms in [("ort-fp32", 200.0), ("ort-release-0.1-default", 900.0)]]
    found = {g["goal"]: g for g in goals({"config": {"threads": [2], "extra_models": [
        ["release-0.1-default", "release-0.1-default.onnx"]]}, "latency": rows})}
    replaced = found[RELEASE_ROWS]
    assert replaced["value"] == pytest.approx(4.5) and replaced["met"] is True and replaced["target"] == ">= 4.0x"
    slower = [{**r, "median_ms": 300.0} if r["backend"] == "ort-fp32" else r for r in rows]
    found = {g["goal"]: g for g in goals({"config": {"threads": [2], "extra_models": [
        ["release-0.1-default", "release-0.1-default.onnx"]]}, "latency": slower})}
    assert found[RELEASE_ROWS]["met"] is False
    assert not any(name.startswith("ort-release-0.1-default") for name in found)  # not held to the edge goals
    without = goals({"config": {"threads": [2]}, "latency": rows})
    assert not any("release-0.1" in g["goal"] for g in without)


def test_against_the_release_the_int8_file_counts_where_auto_runs_it():
    rows = [{"backend": b, "size": [1024, 1024], "threads": 2, "median_ms": ms}
            for b, ms in [("ort-fp32", 300.0), ("ort-int8", 200.0), ("ort-release-0.1-default", 900.0)]]
    run = {"config": {"threads": [2], "extra_models": [["release-0.1-default", "r.onnx"]]}, "latency": rows}
    name = "ORT int8 (what --precision auto runs here) vs ort-release-0.1-default, 1024x1024, 2 threads (latency rows)"
    found = {g["goal"]: g for g in goals({**run, "models": {"int8": {"runs_under_auto": True}}})}
    assert found[name]["value"] == pytest.approx(4.5) and found[name]["met"] is True
    assert found[RELEASE_ROWS]["met"] is False
    assert name not in {g["goal"] for g in goals({**run, "models": {"int8": {"runs_under_auto": False}}})}
    # Where the files were also called in turns, those times judge the goal, not the latency rows'.
    in_turns = {**run, "against_release": {"median_ms": {"ort-fp32": 200.0, "ort-release-0.1-default": 1000.0}}}
    found = {g["goal"]: g for g in goals(in_turns)}
    assert found["ORT fp32 vs ort-release-0.1-default, 1024x1024, 2 threads (called in turns)"]["value"] == 5.0
    assert RELEASE_ROWS not in found


def test_the_release_section_calls_the_main_files_and_the_release_in_turns(models, other_onnx, tmp_path):
    release = tmp_path / "release-0.1-default.onnx"
    shutil.copy(other_onnx, release)
    config = tiny_config(models, tmp_path, sections=("release",), min_reps=3,
                         extra_models=(("release-0.1-default", release),))
    results = run_benchmark(config)
    measured = results["against_release"]
    assert measured["size"] == [1024, 1024] and measured["threads"] == 2 and measured["rounds"] == 3
    assert set(measured["median_ms"]) == {"ort-fp32", "ort-int8", "ort-release-0.1-default"}
    assert all(ms > 0 for ms in measured["median_ms"].values())
    table = markdown({**results, "against_release": {**measured, "median_ms": {
        "ort-fp32": 30.0, "ort-release-0.1-default": 120.0}}}, None)
    assert "| ort-fp32 | 30.0 | 0.250 |" in table and "| ort-release-0.1-default | 120.0 | 1.000 |" in table
    assert "against_release" not in run_benchmark(tiny_config(models, tmp_path, sections=("release",)))


def test_int8_speed_goals_are_judged_only_on_cpus_with_fast_int8_instructions():
    rows = [{"backend": b, "size": s, "threads": 1, "median_ms": ms} for b, s, ms in [
        ("ort-fp32", [256, 256], 100.0), ("ort-int8", [256, 256], 80.0)]]
    run = {"config": {"threads": [1]}, "latency": rows,
           "end_to_end": {"image": "x", "runs": {"fp32": {"median_s": 3.0}, "int8": {"median_s": 2.9}}}}
    avx2 = {**run, "machine": {"int8_instructions": [], "int8_pair_sums": True}}
    found = {g["goal"]: g for g in goals(avx2)}
    for name in ("ORT int8 vs ORT fp32, 256x256, 1 thread(s)", "enhance-edge upscale end to end, x"):
        assert found[name]["value"] is not None and found[name]["met"] is None  # shown, not judged
        assert verdict(found[name]) == NOT_AN_INT8_SPEED_CPU
    vnni = {g["goal"]: g for g in goals({**run, "machine": {"int8_instructions": ["avx512_vnni"]}})}
    assert verdict(vnni["ORT int8 vs ORT fp32, 256x256, 1 thread(s)"]) == "NOT met"
    assert verdict(vnni["ORT int8 vs ORT fp32, 1024x1024, 1 thread(s)"]) == "not measured"


def test_peak_memory_is_measured_in_a_fresh_process(models, tmp_path):
    mib = peak_rss_mib(tiny_config(models, tmp_path), "ort-int8", input_plane(None, (16, 12)), 1)
    assert 10 < mib < 4096


def test_end_to_end_runs_the_upscale_command_for_both_precisions(models, tmp_path):
    found = end_to_end(tiny_config(models, tmp_path), input_plane(None, (16, 12)), 1)
    assert set(found["runs"]) == {"fp32", "int8"} and found["image"] == "12x16 RGB PNG"
    assert all(run["median_s"] > 0 and len(run["times_s"]) == 1 for run in found["runs"].values())


def test_faces_are_the_yale_test_subjects_only(tmp_path):
    faces = Faces.load(YALE_TEST)
    assert len(faces.hr) == 12 and faces.hr[0].shape == (112, 92) and faces.lr[0].shape == (56, 46)
    shutil.copy(next(YALE_TEST.glob("*.png")), tmp_path / "yaleB01_P00A+000E+00.png")
    with pytest.raises(DataError, match="no Yale test-subject faces"):
        Faces.load(tmp_path)


def test_machine_facts_without_perf(models, monkeypatch):
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    assert "needs perf" in machine.hot_instructions(models[1], (8, 8))["skipped"]
    peaks = machine.matmul_peaks(1, n=32, min_time_s=0.0)
    assert peaks["fp32_gflops"] > 0 and peaks["int8_gops"] > 0
    assert machine.cpu_info()["logical_cpus"] >= 1


def test_the_machine_section_names_the_int8_instructions_and_what_auto_runs(results):
    from enhance_edge.core.model import int8_instructions, int8_pair_sums

    cpu = results["machine"]
    assert cpu["int8_instructions"] == int8_instructions() and cpu["int8_pair_sums"] == int8_pair_sums()
    assert cpu["auto_precision"] == ("int8" if int8_instructions() else "int8 for 7-bit weights, else fp32"
                                     if int8_pair_sums() else "fp32")
    for found, pair_sums, says in (
            (["avx512_vnni"], False, "- int8 instructions: avx512_vnni (exact and fast int8: `--precision auto` runs "
                                     "an installed int8 file here)"),
            ([], True, "- int8 instructions: none of VNNI, AMX or ARM64 dot product; AVX2, whose int8 kernels sum "
                       "pairs of products in 16 bits (`--precision auto` runs an int8 file of 7-bit weights here"),
            ([], False, "- int8 instructions: none of VNNI, AMX or ARM64 dot product (`--precision auto` runs fp32 "
                        "here")):
        text = markdown({**results, "machine": {**cpu, "int8_instructions": found, "int8_pair_sums": pair_sums}}, None)
        assert says in text


def test_synthetic_inputs_when_there_are_no_faces():
    plane = input_plane(None, (5, 7))
    assert plane.shape == (5, 7) and plane.dtype == np.uint8 and plane.std() > 0


def test_int8_per_image_rows_cover_the_mixed_set(results):
    table = results["int8_per_image"]["ort"]
    assert set(table["sets"]) == {"yale test faces", "astronaut", "lfw faces", "lfw upsampled", "gradient",
                                  "high-key", "low-key", "text"}
    assert table["sets"]["yale test faces"]["images"] == 12
    assert {name for name, row in table["sets"].items() if row["natural"]} == {"yale test faces", "astronaut",
                                                                                "lfw faces"}
    assert table["min_psnr_vs_fp32"] == min(row["vs_fp32_min_psnr"] for row in table["sets"].values())
    found = {g["goal"]: g for g in goals(results)}
    lowest = found["ort int8: every image of the mixed set against fp32's output (lowest PSNR, dB)"]
    assert lowest["value"] == table["min_psnr_vs_fp32"]
    worst_set = found["ort int8: mean PSNR loss against the truth of the worst natural set (dB)"]
    assert worst_set["value"] == table["max_mean_loss_db"] == max(
        row["mean_loss_db"] for row in table["sets"].values() if row["natural"])
    assert "## int8 per image, on a mixed set" in markdown(results, None)


def test_hand_written_sections_of_results_md_are_kept_across_runs(results, tmp_path):
    from enhance_edge.benchmarks.report import KEPT_MARKER

    (tmp_path / "RESULTS.md").write_text(f"an older run\n{KEPT_MARKER}\n## Profile\nby hand\n")
    write_all(results, tmp_path)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "an older run" not in text and CAVEAT in text and text.endswith(f"\n{KEPT_MARKER}\n## Profile\nby hand\n")


def test_int8_pairs_are_the_main_and_extra_models_installed_in_both_precisions(tmp_path):
    fast, fast_int8 = bundled_model_path("fast"), bundled_model_path("fast").with_name("fast-int8.onnx")
    alone = tmp_path / "alone.onnx"  # an fp32 file with no int8 file beside it
    shutil.copy(bundled_model_path("default"), alone)
    config = BenchConfig(fast, fast_int8, peers_dir=tmp_path, extra_models=(
        *compare_models(("fast",)), *compare_models((str(alone),)), *compare_models(("default",))))
    pairs = [(label, fp32.name, int8.name) for label, fp32, int8 in run._int8_pairs(config)]
    assert pairs == [("ort", "fast.onnx", "fast-int8.onnx"), ("ort-fast", "fast.onnx", "fast-int8.onnx"),
                     ("ort-default", "default.onnx", "default-int8.onnx")]


def test_profiled_runs_feed_a_conditioned_model_its_strength(tiny_conditioned_onnx):
    session, info = open_session(tiny_conditioned_onnx)
    out, _ = session.run(None, machine.profile_feeds(info, (8, 6)))
    assert out.shape == (1, 1, 8 * info.scale, 6 * info.scale)


def test_the_end_to_end_section_says_whether_an_int8_file_ran():
    from enhance_edge.benchmarks.report import _end_to_end_section

    e2e = {"image": "16x12 RGB PNG", "threads": 1, "model": "default.onnx", "runs": {"fp32": {"median_s": 1.0}}}
    assert "(`--precision fp32`: no int8 file is installed)" in "\n".join(_end_to_end_section({"end_to_end": e2e}))
    e2e["runs"]["int8"] = {"median_s": 0.5}
    assert "and its int8 file" in "\n".join(_end_to_end_section({"end_to_end": e2e}))
