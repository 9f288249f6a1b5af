"""Models the benchmark tests share: the tiny fixture generator in fp32 and int8, and a second,
smaller one whose file stores a validation PSNR as an exported checkpoint's does."""

import shutil

import pytest

from enhance_edge.export.quantize import Recipe, quantize_model


@pytest.fixture(scope="session")
def models(tmp_path_factory, tiny_onnx, face_folder):
    folder = tmp_path_factory.mktemp("bench-models")
    fp32 = folder / "tiny.onnx"
    shutil.copy(tiny_onnx, fp32)
    quantize_model(fp32, folder / "tiny-int8.onnx", face_folder, [Recipe()], max_loss_db=100.0,
                   min_psnr_vs_fp32_db=0.0)
    return fp32, folder / "tiny-int8.onnx"


@pytest.fixture(scope="session")
def other_onnx(tmp_path_factory):
    """6 channels, no residual block: 370 multiply-adds per input pixel against the tiny model's 568."""
    import torch

    from enhance_edge.export.onnx_export import export_generator
    from enhance_edge.train.config import GeneratorConfig
    from enhance_edge.train.networks import Generator

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("other-model") / "other.onnx"
    export_generator(Generator(GeneratorConfig(channels=6, residual_blocks=0, skip="bicubic")).eval(), path,
                     {"validation": {"psnr": 31.25, "ssim": 0.95}})
    return path
