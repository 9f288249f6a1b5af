import re

import pytest

from enhance_edge.train.config import DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig


def test_defaults_are_the_reports_numbers():
    generator, discriminator, train = GeneratorConfig(), DiscriminatorConfig(), TrainConfig()
    assert (generator.channels, generator.residual_blocks, generator.scale) == (20, 16, 2)
    assert discriminator.conv_layers == 8
    assert (train.lr, train.betas, train.batch_size, train.epochs) == (2e-4, (0.5, 0.9), 64, 50)
    assert train.adversarial_weight == 1e-3 and train.content_loss == "mse"


def test_run_config_round_trips_through_a_plain_dict():
    config = RunConfig(GeneratorConfig(channels=8, skip="bicubic"), DiscriminatorConfig(base_channels=4),
                       TrainConfig(epochs=3, hflip=True, hr_size=(20, 24)))
    assert RunConfig.from_dict(config.to_dict()) == config


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown GeneratorConfig keys \['wings'\]"):
        GeneratorConfig.from_dict({"channels": 4, "wings": 2})


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 0}, "channels must be >= 1, got 0"),
    ({"skip": "nearest"}, "skip must be 'none' or 'bicubic', got 'nearest'"),
    ({"skip": "bicubic", "scale": 3}, "built for scale 2, got scale 3"),
])
def test_generator_config_rejects_bad_values_showing_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**kwargs)


def test_macs_per_input_pixel_of_the_reports_generator():
    # head 9*20 + 16 blocks * 2 * 9*20*20 + tail 9*20*4: the report's model is ~116k MACs/pixel.
    assert GeneratorConfig().macs_per_input_pixel() == 180 + 16 * 7200 + 720


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads must be >= 1 (or None), got 0"),
    ({"threads": -2}, "threads must be >= 1 (or None), got -2"),
    ({"max_images": -1}, "max_images must be >= 1 (or None), got -1"),  # would drop each split's last image
])
def test_train_config_rejects_bad_counts_showing_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**kwargs)
