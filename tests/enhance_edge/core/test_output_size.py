"""enhance_edge.core.output_size: the size an upscale returns and which model scale makes it."""

import numpy as np
import pytest
from PIL import Image

from enhance_edge.errors import EnhanceEdgeError
from enhance_edge.core.output_size import OutputSize, model_scale_for, resize_output


def test_the_models_own_scale_by_default():
    size = OutputSize()
    assert size.is_model_scale
    assert size.for_input(46, 56, 2) == (92, 112) and size.for_input(46, 56, 4) == (184, 224)
    assert size.suffix(4) == "_x4" and size.describe(4) == "x4"


def test_outscale_is_a_factor_of_the_input_rounded_to_whole_pixels():
    size = OutputSize(outscale=1.5)
    assert size.for_input(45, 57, 2) == (68, 86)  # 67.5 -> 68 (round half to even), 85.5 -> 86
    assert size.suffix(2) == "_x1.5"
    assert size.describe(2) == "x2, resized with Lanczos to x1.5"
    assert OutputSize(outscale=0.001).for_input(10, 10, 2) == (1, 1)  # never an empty image


def test_a_width_or_height_alone_keeps_the_aspect_ratio():
    assert OutputSize(width=100).for_input(50, 30, 2) == (100, 60)
    assert OutputSize(height=45).for_input(50, 30, 4) == (75, 45)
    assert OutputSize(width=100, height=10).for_input(50, 30, 2) == (100, 10)
    assert OutputSize(width=800).suffix(2) == "_w800"
    assert OutputSize(width=8, height=6).suffix(2) == "_w8_h6"
    assert OutputSize(height=6).describe(4) == "x4, resized with Lanczos to 6 pixels high"
    assert OutputSize(width=8, height=6).describe(2) == "x2, resized with Lanczos to 8x6 pixels"


@pytest.mark.parametrize("options, message", [
    (dict(outscale=2, width=10), "give outscale (2) or a target width and height (width 10), not both"),
    (dict(outscale=2, width=10, height=8), "give outscale (2) or a target width and height (width 10, height 8), not "
                                           "both"),
    (dict(outscale=0), "outscale must be a number > 0, got 0"),
    (dict(outscale=float("inf")), "outscale must be a number > 0, got inf"),
    (dict(width=0), "width must be a whole number of pixels >= 1, got 0"),
    (dict(height=2.5), "height must be a whole number of pixels >= 1, got 2.5"),
])
def test_bad_sizes_are_refused_showing_the_value(options, message):
    with pytest.raises(EnhanceEdgeError) as raised:
        OutputSize(**options)
    assert str(raised.value) == message


@pytest.mark.parametrize("factor, scale", [(0.5, 2), (1.5, 2), (2, 2), (2.01, 4), (3, 4), (4, 4), (6, 4)])
def test_the_model_is_the_smallest_scale_at_or_above_the_factor(factor, scale):
    assert model_scale_for(factor, (4, 2)) == scale


def test_resize_output_uses_lanczos_and_keeps_an_image_of_the_right_size():
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert resize_output(image, (8, 8)) is image
    resized = resize_output(image, (6, 5))
    assert resized.size == (6, 5)
    assert resized.tobytes() == image.resize((6, 5), Image.Resampling.LANCZOS).tobytes()
