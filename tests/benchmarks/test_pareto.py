"""The Pareto search times candidates and peers in one run, scores them on validation faces as the
runtime runs them (a file's stored score where there are none) and writes a well-formed plot and JSON
(no timing thresholds)."""

import json

import pytest

from enhance_edge.benchmarks import pareto
from enhance_edge.benchmarks.backends import onnx_metadata, pillow_backend
from enhance_edge.errors import ModelError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_pareto(models, other_onnx, face_folder, tmp_path, **changes) -> pareto.ParetoConfig:
    settings = {"data_dir": face_folder, "peers_dir": tmp_path / "no-peers", "size": (16, 12), "threads": 1,
                "warmup": 0, "min_reps": 2, "min_time_s": 0.0}
    return pareto.ParetoConfig((*models, other_onnx), **{**settings, **changes})


@pytest.fixture(scope="module")
def found(models, other_onnx, face_folder, tmp_path_factory):
    return pareto.measure_candidates(tiny_pareto(models, other_onnx, face_folder, tmp_path_factory.mktemp("p")))


def test_candidates_are_labelled_and_scored_from_their_files(found, models):
    rows = {row["label"]: row for row in found["models"]}
    assert list(rows) == ["4x1 fp32", "4x1 int8", "6x0 fp32"]
    assert [rows[label]["macs_per_input_pixel"] for label in rows] == [568, 568, 370]
    # Measured on the validation faces, whatever a file stores (the other model states 31.25).
    assert all(row["psnr_source"] == f"measured on {found['validation_faces']} validation faces"
               for row in rows.values())
    assert rows["6x0 fp32"]["validation_psnr"] != 31.25
    quantization = json.loads(onnx_metadata(models[1])["quantization"])
    assert rows["4x1 fp32"]["validation_psnr"] == pytest.approx(quantization["validation"]["fp32"]["psnr"], abs=0.01)
    for row in found["models"]:
        assert 0 < row["median_ms"] <= row["p90_ms"] and row["reps"] >= 2 and row["file_bytes"] > 0
    assert found["size"] == [16, 12] and found["threads"] == 1 and found["goal_psnr_db"] == 38.5


def test_absent_peers_are_skipped_with_a_reason(found):
    assert found["peers"] == []
    assert set(found["skipped"]) == {"fsrcnn", "espcn"}
    assert all("not found" in reason for reason in found["skipped"].values())
    assert all(row["meets_goal"] is None for row in found["models"])  # no FSRCNN latency to meet


def test_the_front_holds_the_rows_nothing_beats():
    rows = [{"median_ms": ms, "validation_psnr": psnr} for ms, psnr in
            [(10.0, 30.0), (20.0, 29.0), (30.0, 32.0), (5.0, None), (30.0, 31.0)]]
    assert pareto.pareto_front(rows) == [rows[0], rows[2]]


def test_the_flags_follow_the_front(found):
    front = pareto.pareto_front(found["models"])
    assert front and [row["pareto"] for row in found["models"]] == [
        any(row is r for r in front) for row in found["models"]]


def test_peers_are_timed_and_scored_on_the_validation_faces(models, other_onnx, face_folder, tmp_path, monkeypatch):
    # Stand-ins for OpenCV's weights, which the tests do not ship: Pillow bicubic under the peers' names.
    monkeypatch.setattr(pareto, "peer_backend", lambda name, peers_dir: pillow_backend("bicubic"))
    found = pareto.measure_candidates(tiny_pareto(models[:1], other_onnx, face_folder, tmp_path))
    assert [peer["name"] for peer in found["peers"]] == ["fsrcnn", "espcn"] and not found["skipped"]
    assert all(peer["median_ms"] > 0 and 10 < peer["validation_psnr"] < 60 for peer in found["peers"])
    # Both tiny models are far below 38.5 dB: whatever their speed, they miss the goal.
    assert [row["meets_goal"] for row in found["models"]] == [False, False]
    written = pareto.write_pareto(found, tmp_path / "docs" / "pareto.png", tmp_path / "docs" / "pareto.json")
    assert written[0].read_bytes()[:8] == PNG_MAGIC
    assert json.loads(written[1].read_text())["peers"] == found["peers"]


def test_without_validation_faces_stored_scores_still_plot(models, other_onnx, tmp_path):
    found = pareto.measure_candidates(tiny_pareto(models, other_onnx, None, tmp_path, data_dir=tmp_path / "none"))
    assert "validation faces" in found["skipped"]
    assert [row["validation_psnr"] is None for row in found["models"]] == [True, False, False]
    assert found["models"][0]["pareto"] is False
    pareto.write_pareto(found, tmp_path / "pareto.png", tmp_path / "pareto.json")
    assert (tmp_path / "pareto.png").read_bytes()[:8] == PNG_MAGIC


def test_a_config_without_candidate_files_is_refused_naming_them(tmp_path):
    with pytest.raises(ModelError, match="gone.onnx"):
        pareto.ParetoConfig((tmp_path / "gone.onnx",))
    with pytest.raises(ModelError, match="no candidate"):
        pareto.ParetoConfig(())
