"""Training data as torch tensors; reading and splitting face folders is enhance_edge.dataset's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from enhance_edge.dataset import PairSet
from enhance_edge.errors import ModelError
from enhance_edge.model import BUNDLED_MODELS, INPUT_NAME, open_session, resolve_model

TEACHER_BATCH = 64


def pair_tensors(pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) of a split as float32 NCHW tensors in [0, 1]."""
    lr, hr = pairs.unit_arrays()
    return torch.from_numpy(lr), torch.from_numpy(hr)


def teacher_path(teacher: str) -> Path:
    """The file a teacher name or path stands for: a bundled model's fp32 file (its most accurate
    outputs, on every CPU; "auto" would pick int8 on some), or the ONNX file itself."""
    return resolve_model(teacher, "fp32" if teacher in BUNDLED_MODELS else "auto")


def teacher_file(teacher: str) -> dict[str, str]:
    """What a teacher name or path stands for now: the file it resolves to and that file's sha256.

    A bundled name such as "default" can come to mean another model (a newer release): checkpoints
    keep these facts so that a resumed run can tell it would be taught by another file."""
    path = teacher_path(teacher)
    return {"name": teacher, "path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def teacher_outputs(teacher: str, lr: torch.Tensor, scale: int, threads: int | None = None) -> torch.Tensor:
    """A trained model's outputs for LR tensors, clipped to [0, 1] as the runtime clips them: the
    distillation targets. It runs in onnxruntime, once before training, so any enhance-edge ONNX
    model (a bundled name or a path) can teach and the training steps pay nothing for it."""
    session, info = open_session(teacher_path(teacher), "cpu", threads)
    if info.scale != scale:
        raise ModelError(f"teacher {teacher!r} upscales x{info.scale}, the generator trained x{scale}")
    x = lr.numpy()
    outputs = [session.run(None, {INPUT_NAME: x[i:i + TEACHER_BATCH]})[0] for i in range(0, len(x), TEACHER_BATCH)]
    return torch.from_numpy(np.clip(np.concatenate(outputs), 0.0, 1.0))
