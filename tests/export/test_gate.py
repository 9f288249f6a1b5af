"""The int8 gate's records: what `quantize` stores and `bench` reports, its limits, and their JSON."""

import json

import pytest

from enhance_edge.export.gate import GateResult, GateRow, as_json, describe_table, gate_failures, table_from_dict

TABLE = {"faces": GateRow(images=12, fp32_psnr=39.5, mean_loss_db=0.05, worst_loss_db=0.12, worst_image="yaleB34 #3",
                          vs_fp32_psnr=52.0, vs_fp32_min_psnr=47.5, vs_fp32_worst_image="yaleB35 #1", natural=True),
         "high-key": GateRow(images=8, fp32_psnr=42.0, mean_loss_db=0.2, worst_loss_db=0.35, worst_image="high-key #1",
                             vs_fp32_psnr=46.0, vs_fp32_min_psnr=45.5, vs_fp32_worst_image="high-key #2")}


def test_a_table_goes_through_json_as_it_went_in():
    text = json.dumps({"gate": TABLE}, default=as_json)
    assert json.loads(text)["gate"]["faces"] == {"images": 12, "fp32_psnr": 39.5, "mean_loss_db": 0.05,
                                                  "worst_loss_db": 0.12, "worst_image": "yaleB34 #3",
                                                  "vs_fp32_psnr": 52.0, "vs_fp32_min_psnr": 47.5,
                                                  "vs_fp32_worst_image": "yaleB35 #1", "natural": True}
    assert table_from_dict(json.loads(text)["gate"]) == TABLE
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        json.dumps({"gate": {1, 2}}, default=as_json)


def test_a_models_result_names_its_worst_figures_and_gates_the_natural_sets_mean():
    result = GateResult(TABLE)
    # the worst mean of a natural set: high-key's larger mean is only shown
    assert (result.worst_loss_db, result.max_mean_loss_db, result.min_psnr_vs_fp32) == (0.35, 0.05, 45.5)
    stored = json.loads(json.dumps(result.to_dict()))
    assert stored["worst_loss_db"] == 0.35 and stored["min_psnr_vs_fp32"] == 45.5
    assert GateResult.from_dict(stored) == result


def test_the_gate_limits_every_image_against_fp32_and_the_natural_sets_mean_against_the_truth():
    assert gate_failures(TABLE) == []  # 45 dB, 0.1 dB
    assert gate_failures(TABLE, min_psnr_vs_fp32_db=46.0) == [
        "high-key #2's int8 output is 45.50 dB from fp32's (limit >= 46)"]
    assert gate_failures(TABLE, max_mean_loss_db=0.04) == [
        "faces loses 0.050 dB on average against the truth (limit 0.04)"]


def test_the_table_prints_two_rows_per_set_and_their_worst_images():
    header, faces_fp32, faces_truth, high_fp32, high_truth = describe_table(TABLE)
    assert header.split() == ["gate", "set", "images", "int8", "against", "set", "worst", "worst", "image"]
    assert faces_fp32.split() == ["faces", "12", "fp32", "output", "(PSNR", "dB)", "52.00", "47.50", "yaleB35", "#1"]
    assert faces_truth.split() == ["truth", "(gated,", "loss", "dB)", "0.050", "0.120", "yaleB34", "#3", "(fp32",
                                   "39.50", "dB)"]
    assert high_fp32.split()[:2] == ["high-key", "8"] and high_fp32.split()[-2:] == ["high-key", "#2"]
    assert high_truth.split()[:2] == ["truth", "(shown,"]


def test_a_table_written_by_the_per_image_routing_reads_without_its_shares_and_without_a_vs_fp32_row():
    old = {"images": 8, "fp32_psnr": 42.0, "mean_loss_db": 0.2, "worst_loss_db": 0.35, "worst_image": "high-key #1",
           "int8_share": 0.5, "twice_share": 0.25}
    row = GateRow.from_dict(old)
    assert (row.vs_fp32_min_psnr, row.natural) == (None, False)
    assert gate_failures({"high-key": row}) == [] and GateResult({"high-key": row}).min_psnr_vs_fp32 is None
    assert describe_table({"high-key": row})[1].split()[:3] == ["high-key", "8", "truth"]
