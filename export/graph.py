"""One ONNX file is the whole model: the generator and, for a conditioned one, its degradation
estimator, joined in one graph that plain onnxruntime runs with only ``input`` fed.

The joined graph (names from enhance_edge's model contract):

    inputs   input          (N, 1, H, W) float32 in [0, 1]
             strength       (1,) optional, default -1: below 0 "auto" (estimate), else the level
                            to run at, clipped to [0, 1]
    outputs  output         (N, 1, sH, sW)
             strength_used  (N, 1, 1, 1): the level each image ran at

The estimator sits in the "auto" branch of an If node, so it costs nothing when a strength is
given: the runtime estimates once per image and gives every tile of a large one the same level.
Its weights are the branch's own initializers: onnxruntime lays a branch's convolutions out in
blocks (NCHWc) only when their weights are there, not read from the outer graph, which took the
estimator twice the time (40 against 22 ms at 1024x1024, 2 threads, AVX2).
Its reading is calibrated there (StrengthCalibration): below ``zero_below`` it is 0, a clean image,
else ``gain`` times the reading, at most 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from enhance_edge.core.model import ESTIMATOR_PREFIX

# The generator's second input, renamed inside the joined graph: "strength" is the optional
# override the user feeds, the level is what the generator hears.
LEVEL = "level"


@dataclass(frozen=True)
class StrengthCalibration:
    """How "auto" turns the estimator's reading into the strength the generator runs at. A network
    trained with 30% of its pairs at exactly level 0 sharpens only there: on validation faces `fast`
    lost 2 dB between strength 0 and 0.1, and the estimator reads 0.02-0.1 on clean faces. It also
    reads JPEG below its true level. Chosen on a run's validation faces (export --calibrate-on)."""

    zero_below: float = 0.0
    gain: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.zero_below <= 1.0 or not 0.0 < self.gain <= 4.0:
            raise ValueError(f"a strength calibration needs zero_below in [0, 1] and gain in (0, 4], got "
                             f"{self.zero_below} and {self.gain}")

    def apply(self, reading: np.ndarray) -> np.ndarray:
        """The calibrated strengths of estimator readings, as the graph computes them."""
        return np.where(reading >= self.zero_below, np.minimum(reading * np.float32(self.gain), 1.0), 0.0)

    to_dict = asdict


def _renamed(name: str, keep: set[str]) -> str:
    return name if not name or name in keep else ESTIMATOR_PREFIX + name


def _estimator_branch(estimator: onnx.ModelProto, input_name: str, out: str,
                      calibration: StrengthCalibration) -> onnx.GraphProto:
    """The estimator's nodes as an If branch reading the outer ``input_name``, its reading calibrated,
    with its initializers, renamed, inside the branch."""
    graph = estimator.graph
    (est_input,), (est_output,) = graph.input, graph.output
    keep = {input_name}
    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = _renamed(node.name, set())
        del copy.input[:], copy.output[:]
        copy.input.extend(input_name if name == est_input.name else _renamed(name, keep) for name in node.input)
        copy.output.extend(_renamed(name, keep) for name in node.output)
        nodes.append(copy)
    initializers = []
    for tensor in graph.initializer:
        renamed = TensorProto()
        renamed.CopyFrom(tensor)
        renamed.name = _renamed(tensor.name, keep)
        initializers.append(renamed)
    reading = _renamed(est_output.name, keep)
    nodes += [helper.make_node("Mul", [reading, "calibration/gain"], ["calibration/scaled"]),
              helper.make_node("Min", ["calibration/scaled", "calibration/one"], ["calibration/capped"]),
              helper.make_node("GreaterOrEqual", [reading, "calibration/zero_below"], ["calibration/above"]),
              helper.make_node("Cast", ["calibration/above"], ["calibration/kept"], to=TensorProto.FLOAT),
              helper.make_node("Mul", ["calibration/capped", "calibration/kept"], [out])]
    initializers += [numpy_helper.from_array(np.array(value, np.float32), f"calibration/{name}")
                     for name, value in (("gain", calibration.gain), ("one", 1.0),
                                         ("zero_below", calibration.zero_below))]
    return helper.make_graph(nodes, "estimate", [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                             initializer=initializers)


def _given_branch(input_name: str, strength: str, out: str) -> onnx.GraphProto:
    """The strength given, clipped to the trained range and repeated for each image of the batch."""
    nodes = [
        helper.make_node("Clip", [strength, "given/zero", "given/one"], ["given/clipped"]),
        helper.make_node("Reshape", ["given/clipped", "given/one_by_four"], ["given/level"]),
        helper.make_node("Shape", [input_name], ["given/input_shape"], end=1),
        helper.make_node("Concat", ["given/input_shape", "given/ones3"], ["given/batch_shape"], axis=0),
        helper.make_node("Expand", ["given/level", "given/batch_shape"], [out]),
    ]
    constants = [numpy_helper.from_array(np.array(0.0, np.float32), "given/zero"),
                 numpy_helper.from_array(np.array(1.0, np.float32), "given/one"),
                 numpy_helper.from_array(np.array([1, 1, 1, 1], np.int64), "given/one_by_four"),
                 numpy_helper.from_array(np.array([1, 1, 1], np.int64), "given/ones3")]
    return helper.make_graph(nodes, "given", [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                             initializer=constants)


def joined_model(generator: onnx.ModelProto, estimator: onnx.ModelProto, input_name: str, output_name: str,
                 strength_name: str, used_name: str,
                 calibration: StrengthCalibration = StrengthCalibration()) -> onnx.ModelProto:
    """The conditioned ``generator`` (inputs ``input_name`` and the level, output ``output_name``)
    and its ``estimator`` (one input, one (N, 1, 1, 1) output) as one model (module docstring)."""
    graph = generator.graph
    level_input = next(i for i in graph.input if i.name != input_name)
    then_branch = _estimator_branch(estimator, input_name, "auto/level", calibration)
    else_branch = _given_branch(input_name, strength_name, "given/out")
    choose = [helper.make_node("Less", [strength_name, "auto_below"], ["strength_is_auto"]),
              helper.make_node("If", ["strength_is_auto"], [used_name], name="estimate_or_given",
                               then_branch=then_branch, else_branch=else_branch)]
    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(used_name if name == level_input.name else name for name in node.input)
        nodes.append(copy)
    default = numpy_helper.from_array(np.array([-1.0], np.float32), strength_name)
    inputs = [next(i for i in graph.input if i.name == input_name),
              helper.make_tensor_value_info(strength_name, TensorProto.FLOAT, [1])]
    outputs = [*graph.output, helper.make_tensor_value_info(used_name, TensorProto.FLOAT, ["batch", 1, 1, 1])]
    joined = helper.make_graph(
        choose + nodes, graph.name, inputs, outputs,
        initializer=[*graph.initializer, default,
                     numpy_helper.from_array(np.array([0.0], np.float32), "auto_below")])
    model = helper.make_model(joined, opset_imports=generator.opset_import, ir_version=generator.ir_version)
    onnx.checker.check_model(model, full_check=True)
    return model
