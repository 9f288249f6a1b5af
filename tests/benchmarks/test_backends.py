import numpy as np
import onnx
import pytest

from enhance_edge import Upscaler
from enhance_edge.benchmarks.backends import Skipped, opencv_dnn_backend, ort_backend, torch_backend
from enhance_edge.export.quantize import fuse_float_silu
from enhance_edge.core.processing import to_unit_float


def test_a_file_opencv_cannot_load_is_skipped_with_opencvs_reason(tmp_path, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    assert fuse_float_silu(model)  # onnxruntime's QuickGelu, which OpenCV's DNN module lacks
    path = tmp_path / "fused.onnx"
    onnx.save(model, str(path))
    with pytest.raises(Skipped, match=r"cannot load fused.onnx: .*QuickGelu") as raised:
        opencv_dnn_backend("opencv-dnn-int8", path)(1)
    assert not str(raised.value).endswith(">")


def test_a_conditioned_model_runs_at_the_strength_its_estimator_reads_in_every_network_backend(tiny_conditioned_onnx):
    lr = np.random.default_rng(0).integers(0, 256, (2, 12, 10), dtype=np.uint8)
    upscaler = Upscaler(tiny_conditioned_onnx, threads=1)
    expected = np.stack([upscaler.upscale(plane) for plane in lr])  # the runtime, at strength "auto"
    feeds = ort_backend("ort-fp32", tiny_conditioned_onnx)(1).prepare(lr)
    assert list(feeds) == ["input"]  # the file reads each image's strength itself
    levels = torch_backend(tiny_conditioned_onnx)(1).prepare(lr)[1]  # PyTorch hears what the file reads
    assert levels.ravel().tolist() == pytest.approx([upscaler.strength_for(to_unit_float(plane)) for plane in lr])
    for make in (ort_backend("ort-fp32", tiny_conditioned_onnx), torch_backend(tiny_conditioned_onnx)):
        out = make(1).upscale(lr)
        assert out.shape == (2, 24, 20) and np.abs(out.astype(int) - expected).max() <= 1
    try:
        out = opencv_dnn_backend("opencv-dnn-fp32", tiny_conditioned_onnx)(1).upscale(lr)
    except Skipped as skipped:  # an OpenCV that cannot load or run it says why
        assert "tiny-conditioned.onnx" in str(skipped)
    else:
        assert np.abs(out.astype(int) - expected).max() <= 1
