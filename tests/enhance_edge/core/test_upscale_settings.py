"""UpscaleSettings: one frozen object, validated when made, that every front end hands the core."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enhance_edge.apps.cluster import upscale_on_cluster
from enhance_edge.core.upscale_settings import MODEL_FIELDS, UpscaleSettings
from enhance_edge.core.upscaler import Upscaler
from enhance_edge.errors import EnhanceEdgeError


@pytest.mark.parametrize("fields, message", [
    ({"strength": 1.5}, "expected auto or a number from 0 to 1, got 1.5"),
    ({"strength": "strong"}, "expected auto or a number from 0 to 1, got 'strong'"),
    ({"outscale": 2, "width": 300}, r"give outscale \(2\) or a target width and height \(width 300\), not both"),
    ({"outscale": -1.0}, "outscale must be a number > 0, got -1.0"),
    ({"width": 0}, "width must be a whole number of pixels >= 1, got 0"),
    ({"tile": 0}, "tile must be >= 1 pixel, got 0"),
    ({"max_memory": 0}, "max_memory must be > 0 bytes, got 0"),
])
def test_a_bad_value_is_refused_when_the_settings_are_made_and_named(fields, message):
    with pytest.raises(EnhanceEdgeError, match=f"^{message}$"):
        UpscaleSettings(**fields)
    with pytest.raises(EnhanceEdgeError, match=f"^{message}$"):  # a copy is checked as a new one is
        UpscaleSettings().replace(**fields)


def test_strength_is_kept_as_parse_strength_leaves_it():
    assert UpscaleSettings(strength="0.30").strength == 0.3
    assert UpscaleSettings(strength="").strength == UpscaleSettings(strength=None).strength == "auto"  # type: ignore[arg-type]
    assert UpscaleSettings(outscale=3).output_size.suffix(4) == "_x3"


def test_the_settings_are_frozen_and_travel_to_workers_as_they_are():
    settings = UpscaleSettings(model="fast", strength=0.25, width=200, tile=64, output_format="webp", quality=80,
                               recursive=True, overwrite=True, max_pixels=1000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.tile = 32  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert hash(settings) == hash(pickle.loads(pickle.dumps(settings)))


def test_the_old_keywords_and_from_settings_make_the_same_upscaler():
    options = {"precision": "fp32", "strength": 0.4, "outscale": 1.5, "tile": 16}
    by_keywords = Upscaler("fast", "cpu", 1, **options)
    settings = UpscaleSettings(model="fast", threads=1, **options)
    by_settings = Upscaler.from_settings(settings)
    assert by_keywords.settings == by_settings.settings == settings
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    assert by_keywords.upscale(image).tobytes() == by_settings.upscale(image).tobytes()
    assert (by_settings.strength, by_settings.tile, by_settings.threads) == (0.4, 16, 1)


def test_the_upscaler_takes_only_the_model_fields():
    assert set(MODEL_FIELDS) <= {field.name for field in dataclasses.fields(UpscaleSettings)}
    with pytest.raises(TypeError, match="unexpected keyword argument 'quality'"):
        Upscaler("fast", quality=80)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiles'"):
        Upscaler("fast", tiles=80)


def test_a_cluster_run_takes_settings_or_their_fields_not_both():
    with pytest.raises(TypeError, match="not both"):
        upscale_on_cluster([Path("face.png")], None, UpscaleSettings(), tile=64)
    with pytest.raises(EnhanceEdgeError, match="expected auto or a number from 0 to 1, got 2"):
        upscale_on_cluster([Path("face.png")], None, strength=2)  # checked before Ray starts


def test_the_cluster_workers_get_the_drivers_settings_with_its_model_choices(tmp_path):
    from enhance_edge.apps.cluster import _settings_for_actors
    from enhance_edge.core.model import resolve_model

    settings = UpscaleSettings(model="default", outscale=3, strength=0.2, quality=70)
    sent = pickle.loads(pickle.dumps(_settings_for_actors(settings, 4)))  # as Ray sends it
    assert sent == settings.replace(scale=4, precision=sent.precision) and sent.precision in ("fp32", "int8")
    assert Upscaler.from_settings(sent).scale == 4  # worked out once, on the driver
    copy = tmp_path / "mine.onnx"
    copy.write_bytes(resolve_model("fast", "fp32").read_bytes())
    assert _settings_for_actors(UpscaleSettings(model=str(copy)), 2) == UpscaleSettings(
        model=str(copy.resolve()), precision="auto", scale=2)
