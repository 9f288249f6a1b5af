"""Training data as torch tensors; reading and splitting face folders is enhance_edge.eval.dataset's.

With a degradation config every training LR is drawn afresh from its HR in each epoch
(enhance_edge.eval.degradation), from a random generator seeded by (seed, epoch, image): the same
run gives the same pairs whichever process or batch an image lands in, and after a resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enhance_edge.eval.dataset import PairSet, image_files, read_face
from enhance_edge.eval.degradation import DegradationConfig, degrade
from enhance_edge.errors import DataError, ModelError
from enhance_edge.core.model import BUNDLED_MODELS, INPUT_NAME, OUTPUT_NAME, STRENGTH_NAME, open_session, resolve_model
from enhance_edge.core.processing import to_unit_float
from enhance_edge.eval.protocol import luma_image

TEACHER_BATCH = 64
# Extra photos are shrunk by a random factor in this range before a crop is taken: more of a
# scene fits in one crop, and a photo's own noise and compression shrink with it.
EXTRA_RESCALE = (0.5, 1.0)
# Random streams beside the epochs' (which are numbered from 1): the fixed degraded validation set.
VALIDATION_STREAM = 0


def pair_tensors(pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) of a split as float32 NCHW tensors in [0, 1]."""
    lr, hr = pairs.unit_arrays()
    return torch.from_numpy(lr), torch.from_numpy(hr)


def extra_images(folders: tuple[str, ...], hr_size: tuple[int, int]) -> tuple[list[np.ndarray], dict[str, int]]:
    """Every image under ``folders`` as 8-bit luma, and how many each folder gave; images smaller
    than an HR crop (``hr_size``: width, height) are left out."""
    images, counts = [], {}
    for folder in folders:
        found = [np.asarray(luma_image(read_face(path))) for path in image_files(Path(folder))]
        usable = [image for image in found if image.shape[1] >= hr_size[0] and image.shape[0] >= hr_size[1]]
        if not usable:
            raise DataError(f"no image under {folder!r} is at least {hr_size[0]}x{hr_size[1]} (the HR crop size)")
        images += usable
        counts[Path(folder).resolve().name] = len(usable)
    return images, counts


def random_crop(image: np.ndarray, hr_size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An HR-sized crop of a luma image shrunk by a random factor (never below the crop size)."""
    width, height = hr_size
    least = max(width / image.shape[1], height / image.shape[0])
    factor = rng.uniform(max(EXTRA_RESCALE[0], least), max(EXTRA_RESCALE[1], least))
    size = (max(width, round(image.shape[1] * factor)), max(height, round(image.shape[0] * factor)))
    shrunk = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    top, left = rng.integers(size[1] - height + 1), rng.integers(size[0] - width + 1)
    return shrunk[top:top + height, left:left + width]


class TrainingImages:
    """The HR images of one epoch: the face folder's train split, then ``crops`` random crops of
    the extra images, drawn anew each epoch from (seed, epoch)."""

    def __init__(self, faces: np.ndarray, extra: list[np.ndarray], crops: int, seed: int):
        self.faces, self.extra, self.seed = faces, extra, seed
        self.crops = crops if extra else 0

    def __len__(self) -> int:
        return len(self.faces) + self.crops

    def epoch(self, epoch: int) -> np.ndarray:
        """(len(self), H, W) uint8 HR images for ``epoch``."""
        if not self.crops:
            return self.faces
        rng = np.random.default_rng([self.seed, epoch, len(self.faces)])
        hr_size = (self.faces.shape[2], self.faces.shape[1])
        crops = [random_crop(self.extra[rng.integers(len(self.extra))], hr_size, rng) for _ in range(self.crops)]
        return np.concatenate([self.faces, np.stack(crops)])


def degraded_lrs(hrs: np.ndarray, indices: np.ndarray, config: DegradationConfig, seed: int, stream: int,
                 scale: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 LR images (N, h, w) and their float32 levels (N,) of uint8 HR images (N, H, W), each
    drawn from a generator seeded by (seed, stream, its index)."""
    lrs, levels = [], []
    for hr, index in zip(hrs, indices):
        lr, level = degrade(Image.fromarray(hr), config, np.random.default_rng([seed, stream, int(index)]), scale)
        lrs.append(np.asarray(lr))
        levels.append(level)
    return np.stack(lrs), np.asarray(levels, np.float32)


def as_tensors(lrs: np.ndarray, levels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 LRs (N, h, w) and levels (N,) as the networks take them: (N, 1, h, w) in [0, 1], (N, 1, 1, 1)."""
    return torch.from_numpy(to_unit_float(lrs)[:, None]), torch.from_numpy(levels).view(-1, 1, 1, 1)


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


class Teacher:
    """A trained model whose outputs, clipped to [0, 1] as the runtime clips them, are the
    distillation targets. It runs in onnxruntime, so any enhance-edge ONNX model (a bundled name
    or a path) can teach: once before training for fixed pairs, per batch for degraded ones."""

    def __init__(self, teacher: str, scale: int, threads: int | None = None):
        self.session, info = open_session(teacher_path(teacher), "cpu", threads)
        if info.scale != scale:
            raise ModelError(f"teacher {teacher!r} upscales x{info.scale}, the generator trained x{scale}")
        self.conditioned = info.conditioned

    def __call__(self, lr: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs for (N, 1, h, w) LR tensors; a conditioned teacher also hears their levels
        (0, clean, where none are given)."""
        x = lr.numpy()
        levels = (np.zeros((len(x), 1, 1, 1), np.float32) if level is None else level.numpy()).astype(np.float32)
        outputs = []
        for i in range(0, len(x), TEACHER_BATCH):
            if self.conditioned:  # a model file takes one strength a run: each face at its own
                outputs += [self.session.run([OUTPUT_NAME], {INPUT_NAME: x[j:j + 1],
                                                             STRENGTH_NAME: levels[j].reshape(1)})[0]
                            for j in range(i, min(i + TEACHER_BATCH, len(x)))]
            else:
                outputs.append(self.session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + TEACHER_BATCH]})[0])
        return torch.from_numpy(np.clip(np.concatenate(outputs), 0.0, 1.0))
