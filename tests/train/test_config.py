import re

import pytest

from enhance_edge.eval.degradation import DegradationConfig
from enhance_edge.train.config import (DiscriminatorConfig, EstimatorConfig, GeneratorConfig, RunConfig, TrainConfig,
                                       bicubic_taps)


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


def test_a_conditioned_run_round_trips_and_old_checkpoint_configs_still_load():
    config = RunConfig(GeneratorConfig(channels=8, skip="bicubic", condition="degradation"),
                       degradation=DegradationConfig(jpeg_quality=(50, 90)), estimator=EstimatorConfig(channels=4))
    assert RunConfig.from_dict(config.to_dict()) == config
    old = RunConfig().to_dict()
    del old["degradation"], old["estimator"]  # written before degradations existed
    assert RunConfig.from_dict(old) == RunConfig()


def test_a_conditioned_generator_needs_degraded_training_pairs():
    with pytest.raises(ValueError, match="needs degraded training pairs"):
        RunConfig(GeneratorConfig(condition="degradation"))


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown GeneratorConfig keys \['wings'\]"):
        GeneratorConfig.from_dict({"channels": 4, "wings": 2})


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 0}, "channels must be a whole number from 1 to 1024, got 0"),
    ({"channels": 1025}, "channels must be a whole number from 1 to 1024, got 1025"),
    ({"channels": True}, "channels must be a whole number from 1 to 1024, got True"),
    ({"in_channels": 5}, "in_channels must be a whole number from 1 to 4, got 5"),
    ({"residual_blocks": 257}, "residual_blocks must be a whole number from 0 to 256, got 257"),
    ({"residual_blocks": -1}, "residual_blocks must be a whole number from 0 to 256, got -1"),
    ({"body": "rep", "rep_convs": 513, "residual_blocks": 0},
     "rep_convs must be a whole number from 0 to 512, got 513"),
    ({"scale": 17}, "scale must be a whole number from 1 to 16, got 17"),
    ({"scale": "2"}, "scale must be a whole number from 1 to 16, got '2'"),
    ({"skip": "nearest"}, r"skip must be one of \('none', 'bicubic'\), got 'nearest'"),
    ({"condition": "noise"}, r"condition must be one of \('none', 'degradation'\), got 'noise'"),
    ({"body": "dense"}, r"body must be one of \('residual', 'rep'\), got 'dense'"),
    ({"body": "rep", "rep_convs": 0, "residual_blocks": 0},
     "'rep' needs rep_convs >= 1 and residual_blocks 0, got 0 and 0"),
    ({"body": "rep", "rep_convs": 4}, "'rep' needs rep_convs >= 1 and residual_blocks 0, got 4 and 16"),
    ({"rep_convs": 4}, "rep_convs is for the 'rep' body, got 4 with 'residual'"),
])
def test_generator_config_rejects_bad_values_showing_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**kwargs)


def test_the_largest_networks_allowed_are_accepted():
    GeneratorConfig(in_channels=4, channels=1024, residual_blocks=256, scale=16)
    GeneratorConfig(channels=1024, residual_blocks=0, body="rep", rep_convs=512)
    EstimatorConfig(channels=512)
    DiscriminatorConfig(in_channels=4, base_channels=8, conv_layers=16)  # last layers 8 x 2^7 = 1024 wide


@pytest.mark.parametrize("config, kwargs, message", [
    (EstimatorConfig, {"channels": 513}, "EstimatorConfig.channels must be a whole number from 1 to 512, got 513"),
    (DiscriminatorConfig, {"conv_layers": 18}, "conv_layers must be a whole number from 2 to 16, got 18"),
    (DiscriminatorConfig, {"conv_layers": 7}, "DiscriminatorConfig.conv_layers must be even, got 7"),
    (DiscriminatorConfig, {"base_channels": 0}, "base_channels must be a whole number from 1 to 1024, got 0"),
    (DiscriminatorConfig, {"base_channels": 256}, "DiscriminatorConfig's last layers would be 2048 channels wide "
                                                  "(base_channels 256 x 2^3); at most 1024"),
])
def test_estimator_and_discriminator_sizes_are_bounded_showing_the_value(config, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"content_loss": "l2"}, r"content_loss must be one of \('mse', 'l1', 'psnr'\), got 'l2'"),
    ({"lr_schedule": "step"}, r"lr_schedule must be one of \('constant', 'cosine'\), got 'step'"),
    ({"qat_weight_bits": 4}, r"qat_weight_bits must be one of \[8, 7\], got 4"),
])
def test_train_config_rejects_a_choice_it_does_not_have(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_macs_per_input_pixel_of_the_reports_generator():
    # head 9*20 + 16 blocks * 2 * 9*20*20 + tail 9*20*4: the report's model is ~116k MACs/pixel.
    assert GeneratorConfig().macs_per_input_pixel() == 180 + 16 * 7200 + 720


def test_macs_of_a_conditioned_rep_generator_count_its_level_plane():
    config = GeneratorConfig(channels=16, residual_blocks=0, body="rep", rep_convs=8, skip="bicubic",
                             condition="degradation")
    assert config.macs_per_input_pixel() == 9 * 2 * 16 + 8 * 9 * 16 * 16 + 9 * 16 * 4 + 25 * 4


def test_the_bicubic_skip_path_reads_five_taps_at_x2_and_x4():
    # x2 phases sit 0.25 from an input pixel, x4 phases up to 0.375: the cubic's reach of 2 then
    # covers input pixels i-2..i+2 at both scales.
    assert bicubic_taps(2) == bicubic_taps(4) == 5
    assert GeneratorConfig(skip="bicubic", scale=4).macs_per_input_pixel() == (
        GeneratorConfig(scale=4).macs_per_input_pixel() + 25 * 16)


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads must be >= 1 (or None), got 0"),
    ({"threads": -2}, "threads must be >= 1 (or None), got -2"),
    ({"max_images": -1}, "max_images must be >= 1 (or None), got -1"),  # would drop each split's last image
])
def test_train_config_rejects_bad_counts_showing_them(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**kwargs)
