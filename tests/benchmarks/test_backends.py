import onnx
import pytest

from enhance_edge.benchmarks.backends import Skipped, opencv_dnn_backend
from enhance_edge.export.quantize import fuse_float_silu


def test_a_file_opencv_cannot_load_is_skipped_with_opencvs_reason(tmp_path, tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    assert fuse_float_silu(model)  # onnxruntime's QuickGelu, which OpenCV's DNN module lacks
    path = tmp_path / "fused.onnx"
    onnx.save(model, str(path))
    with pytest.raises(Skipped, match=r"cannot load fused.onnx: .*QuickGelu") as raised:
        opencv_dnn_backend("opencv-dnn-int8", path)(1)
    assert not str(raised.value).endswith(">")
