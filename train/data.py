"""Training data as torch tensors; reading and splitting face folders is enhance_edge.dataset's."""

from __future__ import annotations

import numpy as np
import torch

from enhance_edge.dataset import PairSet
from enhance_edge.errors import ModelError
from enhance_edge.model import INPUT_NAME, open_session, resolve_model

TEACHER_BATCH = 64


def pair_tensors(pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) of a split as float32 NCHW tensors in [0, 1]."""
    lr, hr = pairs.unit_arrays()
    return torch.from_numpy(lr), torch.from_numpy(hr)


def teacher_outputs(teacher: str, lr: torch.Tensor, scale: int, threads: int | None = None) -> torch.Tensor:
    """A trained model's outputs for LR tensors, clipped to [0, 1] as the runtime clips them: the
    distillation targets. It runs in onnxruntime, once before training, so any enhance-edge ONNX
    model (a bundled name or a path) can teach and the training steps pay nothing for it."""
    session, info = open_session(resolve_model(teacher), "cpu", threads)
    if info.scale != scale:
        raise ModelError(f"teacher {teacher!r} upscales x{info.scale}, the generator trained x{scale}")
    x = lr.numpy()
    outputs = [session.run(None, {INPUT_NAME: x[i:i + TEACHER_BATCH]})[0] for i in range(0, len(x), TEACHER_BATCH)]
    return torch.from_numpy(np.clip(np.concatenate(outputs), 0.0, 1.0))
