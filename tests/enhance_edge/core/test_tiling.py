"""Tiles: margins from the model's receptive field, blend weights, and tiled == untiled."""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enhance_edge.core.tiling import (FALLBACK_MARGIN, MIN_TILE, blend_weights, choose_tile, half_blend,
                                      receptive_radius, spans, tile_count, upscale_tiled, working_bytes_per_pixel)
from enhance_edge.core.upscaler import Upscaler


@pytest.fixture(scope="module")
def upscaler(tiny_onnx):
    return Upscaler(tiny_onnx, threads=1)


def test_receptive_radius_counts_the_generators_convolutions():
    # head + 2 per residual block + tail; the default generator (16 blocks) sees 34 pixels around.
    assert receptive_radius({"residual_blocks": 16, "skip": "none"}) == 34
    assert receptive_radius({"residual_blocks": 0, "skip": "bicubic"}) == 2
    assert receptive_radius({"residual_blocks": 1, "skip": "bicubic"}) == 4


@pytest.mark.parametrize("config", [None, {}, {"residual_blocks": "many"}, "not a dict"])
def test_an_unknown_generator_has_no_receptive_radius_and_the_widest_working_memory(config):
    assert receptive_radius(config) is None
    assert working_bytes_per_pixel(config) == working_bytes_per_pixel({"channels": 64})


def test_upscaler_reads_the_margin_and_working_memory_from_the_model_metadata(upscaler):
    metadata = upscaler.info.metadata
    assert upscaler.margin == int(metadata["receptive_radius"]) == 4  # 1 residual block
    assert not upscaler.blend_tiles  # a stated field: tiles are exact side by side
    assert upscaler.bytes_per_pixel == int(metadata["working_bytes_per_pixel"]) == working_bytes_per_pixel(
        upscaler.info.json_field("generator_config"))


def test_a_model_that_does_not_state_its_field_gets_the_fallback_margin_and_blended_tiles(tiny_onnx, tmp_path):
    model = onnx.load(str(tiny_onnx))
    kept = {p.key: p.value for p in model.metadata_props if p.key not in ("receptive_radius", "generator_config")}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, kept)
    onnx.save(model, str(tmp_path / "unstated.onnx"))
    unstated = Upscaler(tmp_path / "unstated.onnx", threads=1)
    assert unstated.info.receptive_radius is None
    assert (unstated.margin, unstated.blend_tiles) == (FALLBACK_MARGIN, True)


def test_working_memory_grows_with_the_generator_width():
    assert working_bytes_per_pixel({"channels": 20, "scale": 2}) == 4 * (7 * 20 + 8 + 2)
    assert working_bytes_per_pixel({"channels": 40}) > working_bytes_per_pixel({"channels": 20})
    # the plain "rep" chain keeps fewer feature maps live than residual blocks
    assert working_bytes_per_pixel({"channels": 32, "body": "rep"}) == 4 * (5 * 32 + 8 + 2)


@given(length=st.integers(1, 300), tile=st.integers(1, 120))
def test_spans_partition_the_axis_and_overlap_by_the_blend(length, tile):
    half = half_blend(tile)
    parts = spans(length, tile, half)
    assert sum(p.owned for p in parts) == length
    assert all(p.owned <= tile for p in parts)
    assert parts[0].start == 0 and parts[-1].end == length
    for left, right in zip(parts, parts[1:]):
        assert left.end - right.start == 2 * half  # the overlap that is blended
    total = np.zeros(length * 2, np.float32)
    for part in parts:
        total[part.start * 2:part.end * 2] += blend_weights(part, half, 2)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)  # complementary ramps: no seam in brightness


def test_choose_tile_keeps_small_images_whole_and_fits_big_ones():
    assert choose_tile(100, 100, budget_bytes=100 * 100 * 600, bytes_per_pixel=600, margin=34) is None
    tile = choose_tile(4000, 3000, budget_bytes=200 << 20, bytes_per_pixel=600, margin=34)
    assert MIN_TILE <= tile and (tile + 2 * 34 + 8) ** 2 * 600 <= 200 << 20
    # unblended tiles have no blend bands to fit: 2 x 4 pixels more of the tile itself
    assert choose_tile(4000, 3000, budget_bytes=200 << 20, bytes_per_pixel=600, margin=34, blend=False) == tile + 8
    assert choose_tile(4000, 3000, budget_bytes=-5, bytes_per_pixel=600, margin=34) == MIN_TILE


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 70), width=st.integers(1, 70), tile=st.integers(1, 40), seed=st.integers(0, 2**16),
       blend=st.booleans())
def test_tiled_equals_untiled(upscaler, height, width, tile, seed, blend):
    plane = np.random.default_rng(seed).random((height, width), dtype=np.float32)
    whole = upscaler.upscale_plane(plane)
    done = []
    tiled = upscale_tiled(plane, upscaler.upscale_plane, 2, tile, upscaler.margin, progress=done.append,
                          blend=blend)
    assert sum(done) == height * width
    assert np.abs(tiled - whole).max() < 1e-4  # the margin covers the receptive field: exact up to float


def test_a_too_small_margin_is_still_blended_without_visible_seams(upscaler):
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:96, 0:96] / 96.0
    plane = (0.5 + 0.3 * np.sin(6 * x) * np.cos(5 * y) + 0.05 * rng.random((96, 96))).astype(np.float32)
    whole = upscaler.upscale_plane(plane)
    tiled = upscale_tiled(plane, upscaler.upscale_plane, 2, 24, margin=2, progress=None)
    difference = np.abs(np.clip(tiled, 0, 1) - np.clip(whole, 0, 1)) * 255
    assert difference.max() <= 3 and difference.mean() <= 0.25


@pytest.mark.parametrize("width, height, tile, runs", [(40, 30, 16, 6), (40, 30, None, 1), (16, 16, 16, 1),
                                                       (17, 16, 16, 2)])
def test_tile_count_is_the_number_of_model_runs(width, height, tile, runs):
    calls = []
    if tile is not None:
        upscale_tiled(np.zeros((height, width), np.float32), lambda part: np.zeros([2 * n for n in part.shape]), 2,
                      tile, 3, calls.append)
    assert tile_count(width, height, tile) == runs == (len(calls) or 1)
