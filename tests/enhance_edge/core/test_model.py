import onnx
import onnxruntime as ort
import pytest

from enhance_edge.errors import ModelError, ProviderError
from enhance_edge.core.model import (BUNDLED_MODELS, DISABLED_OPTIMIZERS_KEY, RECEPTIVE_RADIUS_KEY, WORKING_BYTES_KEY,
                                     ModelInfo, bundled_model_path, bundled_name, bundled_scale, bundled_scales,
                                     _stored_metadata, open_session, resolve_model, resolve_provider)


def test_model_info_comes_from_the_file(tiny_onnx):
    session, info = open_session(tiny_onnx, provider="cpu", threads=1)
    assert (info.scale, info.channels, info.value_range, info.layout) == (2, 1, (0.0, 1.0), "NCHW")
    assert info.json_field("generator_config")["channels"] == 4
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert not session.get_session_options().enable_mem_pattern  # input shapes change with every image


def optimized_ops(tmp_path, load) -> list[tuple[str, str]]:
    """(domain, op) of the graph onnxruntime runs, for a loader given session options."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / f"optimized-{len(list(tmp_path.iterdir()))}.onnx")
    load(options)
    return [(node.domain, node.op_type) for node in onnx.load(options.optimized_model_filepath).graph.node]


def test_the_optimizers_a_model_disables_are_left_out_of_its_session(tmp_path, tiny_onnx):
    _, info = open_session(tiny_onnx)
    assert info.disabled_optimizers == ["NchwcTransformer"]  # the exporter's choice for 4 channels
    ours = optimized_ops(tmp_path, lambda options: open_session(tiny_onnx, options=options))
    asked = optimized_ops(tmp_path, lambda options: ort.InferenceSession(
        str(tiny_onnx), options, providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]))
    assert ours == asked
    assert not any(domain == "com.microsoft.nchwc" for domain, _ in ours)


def test_a_session_is_built_once_with_the_optimizers_the_file_disables(monkeypatch, tiny_onnx):
    builds = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *args, **kwargs: builds.append(kwargs) or real(*args, **kwargs))
    open_session(tiny_onnx)
    assert [build["disabled_optimizers"] for build in builds] == [["NchwcTransformer"]]


def test_metadata_is_read_from_the_protobuf_as_onnxruntime_reads_it(tiny_onnx):
    session, _ = open_session(tiny_onnx)
    assert _stored_metadata(str(tiny_onnx)) == session.get_modelmeta().custom_metadata_map
    for name in BUNDLED_MODELS:
        path = str(bundled_model_path(name))
        assert _stored_metadata(path) == open_session(path)[0].get_modelmeta().custom_metadata_map


@pytest.mark.parametrize("cut", [1, 3, 0.5])
def test_a_file_the_protobuf_reader_cannot_read_is_left_to_onnxruntime(tmp_path, tiny_onnx, cut):
    data = tiny_onnx.read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(data[:int(len(data) * cut)] if cut < 1 else data[:cut])
    assert _stored_metadata(str(broken)) is None  # a file cut short, or cut mid-field
    with pytest.raises(ModelError, match="cannot load model"):
        open_session(broken)


def test_a_text_file_is_not_read_as_a_model(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("# not a model\n")
    assert _stored_metadata(str(text)) is None  # '#' is protobuf wire type 3, which ONNX never uses
    with pytest.raises(ModelError, match="cannot load model"):
        open_session(text)


def test_a_model_without_the_key_disables_nothing(tiny_onnx):
    _, info = open_session(tiny_onnx)
    metadata = {key: value for key, value in info.metadata.items() if key != DISABLED_OPTIMIZERS_KEY}
    assert ModelInfo.from_metadata("m.onnx", metadata).disabled_optimizers == []


def test_what_tiling_needs_is_read_from_the_file_and_rebuilt_only_for_files_without_it(tiny_onnx):
    _, info = open_session(tiny_onnx)
    # As the exporter wrote them for 1 residual block and the bicubic skip, 4 channels, x2.
    assert (info.receptive_radius, info.working_bytes_per_pixel) == (4, 4 * (7 * 4 + 2 * 4 + 2))
    stated = ModelInfo.from_metadata("m.onnx", {**info.metadata, RECEPTIVE_RADIUS_KEY: "9", WORKING_BYTES_KEY: "1000"})
    assert (stated.receptive_radius, stated.working_bytes_per_pixel) == (9, 1000)  # the file, not its structure
    older = {k: v for k, v in info.metadata.items() if k not in (RECEPTIVE_RADIUS_KEY, WORKING_BYTES_KEY)}
    rebuilt = ModelInfo.from_metadata("old.onnx", older)
    assert (rebuilt.receptive_radius, rebuilt.working_bytes_per_pixel) == (4, 4 * (7 * 4 + 2 * 4 + 2))
    with pytest.raises(ModelError, match=r"'m.onnx' has unreadable metadata"):
        ModelInfo.from_metadata("m.onnx", {**info.metadata, RECEPTIVE_RADIUS_KEY: "wide"})
    with pytest.raises(ModelError, match=r"'m.onnx' declares receptive_radius=-1 and working_bytes_per_pixel=152"):
        ModelInfo.from_metadata("m.onnx", {**info.metadata, RECEPTIVE_RADIUS_KEY: "-1"})


def test_provider_aliases_and_full_names():
    assert resolve_provider("cpu") == resolve_provider("CPUExecutionProvider") == "CPUExecutionProvider"


def test_missing_provider_lists_the_available_ones():
    with pytest.raises(ProviderError, match=r"'NoSuchExecutionProvider' is not available.*CPUExecutionProvider"):
        resolve_provider("NoSuchExecutionProvider")


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        open_session(tmp_path / "absent.onnx")


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="cannot load model"):
        open_session(path)


def test_onnx_model_without_our_metadata_is_refused(tmp_path, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="is not an enhance-edge model"):
        open_session(path)


@pytest.mark.parametrize("change, message", [
    ({"channels": "3"}, "channels=3"),
    ({"scale": "two"}, "unreadable metadata"),
    ({"value_range": "0,255"}, r"range=\(0.0, 255.0\)"),
])
def test_metadata_outside_the_runtime_contract_is_named(tiny_onnx, change, message):
    _, info = open_session(tiny_onnx)
    with pytest.raises(ModelError, match=message):
        ModelInfo.from_metadata("m.onnx", {**info.metadata, **change})


def test_unknown_bundled_model_name():
    with pytest.raises(ModelError, match="no bundled model named 'huge'"):
        bundled_model_path("huge")


def test_a_bundled_name_and_a_scale_choose_the_file_of_that_scale():
    assert bundled_scale("default") == 2 and bundled_scale("default-x4") == 4
    assert bundled_scales("default") == (2, 4) and bundled_scales("fast") == (2,)
    assert bundled_name("default", 4) == "default-x4" and bundled_name("default-x4", 2) == "default"
    assert bundled_name(None, None) == "default" and bundled_name("fast", 2) == "fast"
    assert resolve_model(None, "fp32", 4).name == "default-x4.onnx"
    with pytest.raises(ModelError, match=r"no bundled x4 model of 'fast' \(it comes in x2\)"):
        bundled_name("fast", 4)


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_every_bundled_model_has_the_scale_its_name_says(name):
    _, info = open_session(bundled_model_path(name, "fp32"), "cpu", 1)
    assert info.scale == bundled_scale(name)


@pytest.mark.parametrize("key, value", [("receptive_radius", "1000000000"), ("working_bytes_per_pixel", "0")])
def test_a_tiling_figure_out_of_range_is_named_at_load(tiny_onnx, tmp_path, key, value):
    model = onnx.load(str(tiny_onnx))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, key: value})
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=f"{key}={value}.*must be from 0 to 1024 and from 1 to 1048576"
                       if key == "receptive_radius" else f"{key}={value}"):
        open_session(path)


def test_a_metadata_entry_longer_than_its_file_is_never_read(tmp_path):
    path = tmp_path / "huge.onnx"
    path.write_bytes(bytes([0x72]) + bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]) + b"x" * 99)  # field 14, 2^42
    assert _stored_metadata(str(path)) is None
