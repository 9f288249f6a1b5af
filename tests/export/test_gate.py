"""The int8 gate's records: what `quantize` stores and `bench` reports, and their JSON."""

import json

import pytest

from enhance_edge.export.gate import GateResult, GateRow, as_json, describe_table, table_from_dict

TABLE = {"faces": GateRow(images=12, fp32_psnr=39.5, mean_loss_db=0.05, worst_loss_db=0.12, worst_image="yaleB34 #3",
                          int8_share=0.75, twice_share=0.125),
         "high-key": GateRow(images=8, fp32_psnr=42.0, mean_loss_db=0.2, worst_loss_db=0.35, worst_image="high-key #1")}


def test_a_table_goes_through_json_as_it_went_in():
    text = json.dumps({"gate": TABLE}, default=as_json)
    assert json.loads(text)["gate"]["faces"] == {"images": 12, "fp32_psnr": 39.5, "mean_loss_db": 0.05,
                                                  "worst_loss_db": 0.12, "worst_image": "yaleB34 #3",
                                                  "int8_share": 0.75, "twice_share": 0.125}
    assert table_from_dict(json.loads(text)["gate"]) == TABLE
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        json.dumps({"gate": {1, 2}}, default=as_json)


def test_a_models_result_names_its_worst_image_loss_and_worst_set_mean():
    result = GateResult(TABLE)
    assert (result.worst_loss_db, result.max_mean_loss_db) == (0.35, 0.2)
    stored = json.loads(json.dumps(result.to_dict()))
    assert stored["worst_loss_db"] == 0.35 and stored["max_mean_loss_db"] == 0.2
    assert GateResult.from_dict(stored) == result


def test_the_table_prints_one_line_per_set():
    header, faces, high_key = describe_table(TABLE)
    assert header.split() == ["gate", "set", "images", "in", "int8", "twice", "fp32", "dB", "mean", "loss", "worst",
                              "worst", "image"]
    assert faces.split() == ["faces", "12", "75%", "12%", "39.50", "0.050", "0.120", "yaleB34", "#3"]
    assert high_key.split() == ["high-key", "8", "100%", "0%", "42.00", "0.200", "0.350", "high-key", "#1"]


def test_a_table_written_before_the_int8_share_reads_as_every_image_in_int8():
    old = {"images": 8, "fp32_psnr": 42.0, "mean_loss_db": 0.2, "worst_loss_db": 0.35, "worst_image": "high-key #1"}
    assert (GateRow.from_dict(old).int8_share, GateRow.from_dict(old).twice_share) == (1.0, 0.0)
