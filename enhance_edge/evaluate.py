"""PROTOCOL.md scores of a model against classical interpolation on any folder of faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import image_files, split_subjects, subject_of
from .errors import DataError, MissingExtraError
from .processing import from_unit_float
from .protocol import REPORT_HR_SIZE, interpolate, make_hr, make_lr, score
from .upscaler import Upscaler

BASELINES = ("bicubic", "lanczos", "skimage-order3")


def skimage_order3(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """scikit-image ``transform.resize(order=3)``, one of PROTOCOL.md's baselines."""
    try:
        from skimage.transform import resize
    except ImportError as exc:
        raise MissingExtraError("evaluation", "eval", "scikit-image") from exc
    return from_unit_float(resize(lr, shape, order=3))


def upscale_with(method: str, lr: np.ndarray, upscaler: Upscaler) -> np.ndarray:
    if method == "model":
        return upscaler.upscale(lr)
    if method == "skimage-order3":
        return skimage_order3(lr, (lr.shape[0] * upscaler.scale, lr.shape[1] * upscaler.scale))
    return np.asarray(interpolate(Image.fromarray(lr), method, upscaler.scale))


def folder_splits(folder: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Images by split: the subject-disjoint split where the folder has one, else all as 'all'."""
    files = image_files(folder)
    subjects = sorted({subject_of(p, folder) for p in files})
    try:
        split = split_subjects(subjects, seed)
    except DataError:  # too few subjects to split: score everything together
        return {"all": files}
    by_split: dict[str, list[Path]] = {}
    for path in files:
        by_split.setdefault(split[subject_of(path, folder)], []).append(path)
    return {name: by_split[name] for name in ("train", "validation", "test") if name in by_split}


def evaluate_folder(folder: str | Path, upscaler: Upscaler, hr_size: tuple[int, int] | None = REPORT_HR_SIZE,
                    splits: tuple[str, ...] | None = None, seed: int = 0) -> dict[str, dict]:
    """{split: {method: {"psnr", "ssim"}, "images": n}} for the model and each baseline."""
    folder = Path(folder)
    results = {}
    for name, paths in folder_splits(folder, seed).items():
        if splits and name not in splits:
            continue
        hrs, outputs = [], {m: [] for m in ("model", *BASELINES)}
        for path in paths:
            with Image.open(path) as image:
                hr = make_hr(image.convert("L"), hr_size)
            lr = np.asarray(make_lr(hr, upscaler.scale))
            hrs.append(np.asarray(hr))
            for method, outs in outputs.items():
                outs.append(upscale_with(method, lr, upscaler))
        results[name] = {"images": len(paths), **{m: score(hrs, outs) for m, outs in outputs.items()}}
    if not results:
        raise DataError(f"none of the splits {list(splits or [])} exist under {str(folder)!r}")
    return results
