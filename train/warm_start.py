"""Starting a run from trained weights: another run's checkpoint, or a released ONNX model.

A released model (a bundled name such as "default", or an enhance-edge ONNX file) keeps its
weights under the generator's own parameter names and its design in the metadata, so a new
run can fine-tune it without the checkpoint it came from. A conditioned generator may start
from an unconditioned one of the same design: its level biases (a "rep" head's weights on the level
plane) start at zero, so it first computes exactly what the released model did, at every level. A
generator of another scale may start from one of the same width and depth: every feature it has
learned carries over, and only the tail (whose outputs are the scale**2 sub-pixel phases) starts
afresh. A "rep" generator may start from a shallower one: its extra body layers come after the
source's and start as the identity (zero 3x3 and 1x1 branches), which is exact because they follow a
ReLU, so the deeper network first computes what the source did and growing it costs none of what
was learned.

A degradation estimator reads the level of an LR (``level_of``: an RMS difference in fixed units)
from its pixels alone, whatever generator it trained beside, so a trained one can be embedded beside
another generator (``load_estimator``; ``enhance-edge export --estimator-from``).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from enhance_edge.errors import CheckpointError, ModelError
from enhance_edge.core.model import BUNDLED_MODELS, ESTIMATOR_PREFIX, resolve_model

from .checkpoint import load_generator, run_config
from .config import EstimatorConfig, GeneratorConfig
from .networks import DegradationEstimator, Generator, RepConv

# A source's estimator: its config and weights (None where the source has none).
SourceEstimator = tuple[EstimatorConfig | None, dict[str, torch.Tensor] | None]


def _onnx_weights(path: Path, action: str) -> tuple[GeneratorConfig, dict[str, torch.Tensor], SourceEstimator]:
    """The generator config, generator weights and (if embedded) estimator config and weights of an
    fp32 model file; ``action`` ('start from') is what its errors say could not be done."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's decode errors are untyped for our purpose
        raise CheckpointError(f"cannot {action} {str(path)!r}: not a readable ONNX file ({exc})") from None
    metadata = {p.key: p.value for p in model.metadata_props}
    if "generator_config" not in metadata:
        raise CheckpointError(f"cannot {action} {str(path)!r}: no enhance-edge generator config in its metadata")
    try:
        config = GeneratorConfig.from_dict(json.loads(metadata["generator_config"]))
    except (ValueError, TypeError) as exc:  # JSON's errors are ValueErrors; a number or null is a TypeError
        raise CheckpointError(f"cannot {action} {str(path)!r}: its metadata holds an unusable generator config: "
                              f"{exc}") from None
    if metadata.get("precision", "fp32") != "fp32":
        raise CheckpointError(f"cannot {action} {str(path)!r}: it is an {metadata['precision']} model; "
                              f"{action} its fp32 file")

    def initializers(graph) -> dict[str, torch.Tensor]:
        """The graph's initializers and its branches' (the estimator's are its If branch's own; files
        before this held them in the outer graph)."""
        found = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    found.update(initializers(attribute.g))
        return found

    weights = initializers(model.graph)
    estimator = {name[len(ESTIMATOR_PREFIX):]: weights.pop(name) for name in list(weights)
                 if name.startswith(ESTIMATOR_PREFIX)}
    try:
        estimator_config = (EstimatorConfig.from_dict(json.loads(metadata["estimator_config"]))
                            if "estimator_config" in metadata else None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot {action} {str(path)!r}: its metadata holds an unusable estimator config: "
                              f"{exc}") from None
    return config, _unfolded(weights, Generator(config)), (estimator_config, estimator or None)


def _unfolded(weights: dict[str, torch.Tensor], generator: Generator) -> dict[str, torch.Tensor]:
    """A released "rep" generator's weights in its training form: the file holds each RepConv folded
    into one 3x3 convolution, which becomes the 3x3 branch (less the identity, which the branch adds
    back) beside a zero 1x1 branch, so the network computes what the file did."""
    weights = dict(weights)
    for name, module in generator.named_modules():
        if not isinstance(module, RepConv) or f"{name}.weight" not in weights:
            continue
        kernel, bias = weights.pop(f"{name}.weight"), weights.pop(f"{name}.bias")
        if module.identity:
            kernel = kernel - torch.nn.functional.pad(torch.eye(kernel.shape[0])[:, :, None, None], (1, 1, 1, 1))
        weights.update({f"{name}.conv3.weight": kernel, f"{name}.conv3.bias": bias,
                        f"{name}.conv1.weight": torch.zeros_like(module.conv1.weight),
                        f"{name}.conv1.bias": torch.zeros_like(module.conv1.bias)})
    return weights


def _source_weights(source: str, action: str) -> tuple[GeneratorConfig, dict[str, torch.Tensor], SourceEstimator]:
    if source in BUNDLED_MODELS or source.endswith(".onnx"):
        try:
            path = resolve_model(source, "fp32" if source in BUNDLED_MODELS else "auto")
        except ModelError as exc:
            raise CheckpointError(f"cannot {action} {source!r}: {exc}") from None
        return _onnx_weights(path, action)
    generator, state = load_generator(source)
    return generator.config, generator.state_dict(), (run_config(source, state).estimator, state.get("estimator"))


def load_warm_start(source: str | Path, generator_config: GeneratorConfig) -> tuple[Generator, dict[str, Any] | None]:
    """The float generator to start from (with ``generator_config``'s design) and, where the source
    has one, its degradation estimator's weights; refused unless the source's design is this run's.

    Two designs can share every weight name and shape (``skip`` adds no weights), so loading the
    weights alone would silently start from a network that computes something else. The
    differences allowed are adding the degradation condition to an unconditioned generator and
    another scale (the tail then starts afresh).
    """
    source = str(source)
    config, weights, (_, estimator) = _source_weights(source, "start from")
    adding_condition = config.condition == "none" and generator_config.condition == "degradation"
    rescaling = config.scale != generator_config.scale
    deepening = config.body == "rep" and config.rep_convs < generator_config.rep_convs
    compared = replace(config, condition=generator_config.condition if adding_condition else config.condition,
                       scale=generator_config.scale,
                       rep_convs=generator_config.rep_convs if deepening else config.rep_convs)
    differences = [f"{f.name}: {getattr(compared, f.name)!r} -> {getattr(generator_config, f.name)!r}"
                   for f in fields(GeneratorConfig) if getattr(compared, f.name) != getattr(generator_config, f.name)]
    if differences:
        raise CheckpointError(f"cannot start from {source!r}: its generator differs from this run's "
                              f"({'; '.join(differences)}); give the same generator options")
    generator = Generator(generator_config)
    own = generator.state_dict()
    if adding_condition and config.body == "rep":  # the level plane is the head's last input channel
        for key in ("head.conv3.weight", "head.conv1.weight"):
            weights[key] = torch.cat([weights[key], torch.zeros_like(weights[key][:, :1])], dim=1)
    fresh = [key for key in own if key not in weights or weights[key].shape != own[key].shape]
    grown = {key for key in fresh if key.startswith("body.") and int(key.split(".")[1]) >= config.rep_convs
             } if deepening else set()
    allowed = [key for key in fresh if (adding_condition and "level_bias" in key)
               or (rescaling and key.startswith("tail.")) or key in grown]
    if fresh != allowed:
        raise CheckpointError(f"cannot start from {source!r}: it lacks the weights "
                              f"{[key for key in fresh if key not in allowed][:3]}")
    own.update({key: value for key, value in weights.items() if key in own and key not in fresh})
    own.update({key: torch.zeros_like(own[key]) for key in grown})
    generator.load_state_dict(own)
    return generator, estimator if not adding_condition else None


def load_estimator(source: str | Path) -> DegradationEstimator:
    """The degradation estimator (in eval mode) of a bundled model, an fp32 model file or a run's
    checkpoint; a source without one is a CheckpointError."""
    source = str(source)
    _, _, (config, weights) = _source_weights(source, "take the estimator of")
    return estimator_of(source, config, weights)


def estimator_of(source: str, config: EstimatorConfig | None,
                 weights: dict[str, torch.Tensor] | None) -> DegradationEstimator:
    """The degradation estimator (in eval mode) of ``config`` with ``weights``, which ``source`` holds;
    a CheckpointError naming the source where either is missing or they do not fit."""
    if weights is None:
        raise CheckpointError(f"{source!r} holds no degradation estimator (only a model conditioned on the "
                              f"degradation level has one)")
    if config is None:
        raise CheckpointError(f"{source!r} holds estimator weights but not their config (metadata "
                              f"'estimator_config')")
    estimator = DegradationEstimator(config)
    try:
        estimator.load_state_dict(weights)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{source!r} holds estimator weights that do not fit its estimator config "
                              f"{config.to_dict()}: {reason}") from None
    return estimator.eval()
