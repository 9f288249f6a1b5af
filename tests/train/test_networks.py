import pytest
import torch
from torch.nn import functional as F

from enhance_edge.train.config import DiscriminatorConfig, GeneratorConfig
from enhance_edge.train.networks import Discriminator, Generator, RepConv, bicubic_phase_kernels


def test_bicubic_phase_kernels_equal_torch_bicubic_upsampling():
    x = torch.rand(2, 1, 7, 12, dtype=torch.float64)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    upsampled = F.pixel_shuffle(F.conv2d(padded, bicubic_phase_kernels().double()), 2)
    expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(upsampled, expected, atol=1e-6)


def test_generator_doubles_any_size_and_batch():
    generator = Generator(GeneratorConfig(channels=4, residual_blocks=2))
    for shape in [(1, 1, 56, 46), (3, 1, 7, 13), (1, 1, 1, 1)]:
        n, c, h, w = shape
        assert generator(torch.rand(shape)).shape == (n, c, 2 * h, 2 * w)


def test_bicubic_skip_with_a_zero_residual_is_bicubic_upsampling():
    generator = Generator(GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic"))
    torch.nn.init.zeros_(generator.tail.weight)
    torch.nn.init.zeros_(generator.tail.bias)
    x = torch.rand(1, 1, 9, 10)
    expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(generator(x), expected, atol=1e-5)


def test_generator_parameter_count_matches_the_reports_scale():
    parameters = sum(p.numel() for p in Generator().parameters())
    assert 110_000 < parameters < 120_000  # ~0.47 MB in float32: the report's "hefty" model


def test_discriminator_gives_one_logit_per_image_and_widens_in_pairs():
    discriminator = Discriminator(DiscriminatorConfig(base_channels=4))
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 4, 8, 8, 16, 16, 32, 32, 1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules()) == 8
    logits = discriminator(torch.rand(5, 1, 112, 92))
    assert logits.shape == (5,)


def _randomised(generator: Generator) -> Generator:
    """Every weight drawn afresh (the tail starts at zero), so folding is tested on all branches."""
    torch.manual_seed(0)
    for parameter in generator.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return generator.eval()


@pytest.mark.parametrize("condition", ["none", "degradation"])
def test_a_folded_rep_generator_computes_what_its_branches_did(condition):
    config = GeneratorConfig(channels=16, residual_blocks=0, body="rep", rep_convs=3, skip="bicubic",
                             condition=condition)
    generator = _randomised(Generator(config))
    x = torch.rand(2, 1, 11, 9)
    level = torch.tensor([0.0, 0.7]).reshape(2, 1, 1, 1) if condition == "degradation" else None
    args = (x,) if level is None else (x, level)
    with torch.no_grad():
        branched = generator(*args)
        generator.fold()
        folded = generator(*args)
    assert not any(isinstance(m, RepConv) for m in generator.modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in generator.modules()) == 3 + 2  # body, head, tail
    assert torch.allclose(branched, folded, atol=1e-5)


def test_the_rep_generator_hears_its_level_and_starts_as_bicubic_upsampling():
    config = GeneratorConfig(channels=16, residual_blocks=0, body="rep", rep_convs=2, skip="bicubic",
                             condition="degradation")
    x = torch.rand(1, 1, 9, 10)
    expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(Generator(config)(x, torch.zeros(1, 1, 1, 1)), expected, atol=1e-5)
    trained = _randomised(Generator(config))
    with torch.no_grad():
        assert not torch.allclose(trained(x, torch.zeros(1, 1, 1, 1)), trained(x, torch.ones(1, 1, 1, 1)))
