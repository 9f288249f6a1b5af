"""The per-tensor attribution of int8's loss (benchmarks/int8_loss.py) on the tiny fixture model."""

import numpy as np
import onnx

from enhance_edge.benchmarks.int8_loss import activation_pairs, keep_only, simulated, tensor_range
from enhance_edge.core.model import INPUT_NAME, open_session


def test_bypassing_pairs_leaves_only_the_kept_activations_quantized(models):
    fp32_path, int8_path = models
    model = onnx.load(str(int8_path))
    pairs = activation_pairs(model)
    assert "input" in pairs and all(name not in {t.name for t in model.graph.initializer} for name in pairs)
    low, high, step = tensor_range(model, pairs["input"][0])
    assert low <= 0 < high and step > 0
    head = next(name for name in pairs if name.endswith("Conv_output_0"))
    assert set(activation_pairs(keep_only(model, {head}))) == {head}
    x = np.random.default_rng(0).random((1, 1, 12, 10), dtype=np.float32)
    fp32 = open_session(fp32_path)[0].run(None, {INPUT_NAME: x})[0]
    error = {kept: np.abs(simulated(keep_only(model, kept), []).run(None, {INPUT_NAME: x})[0] - fp32).mean()
             for kept in (frozenset(), frozenset(pairs))}
    # weights alone cost less than weights and every activation
    assert error[frozenset()] < error[frozenset(pairs)]
