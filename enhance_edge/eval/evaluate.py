"""docs/evaluation.md scores of a model against classical interpolation on any folder of faces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import check_hr_size, face_pair, image_files, split_files
from .degradation import condition_lr, condition_steps
from ..errors import DataError, MissingExtraError
from ..core.processing import from_unit_float
from .protocol import REPORT_HR_SIZE, interpolate, score
from ..core.upscaler import Upscaler

BASELINES = ("bicubic", "lanczos", "skimage-order3")


def skimage_order3(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """scikit-image ``transform.resize(order=3)``, one of docs/evaluation.md's baselines."""
    try:
        from skimage.transform import resize
    except ImportError as exc:
        raise MissingExtraError("evaluation", "eval", "scikit-image") from exc
    return from_unit_float(resize(lr, shape, order=3))


def upscale_with(method: str, lr: np.ndarray, upscaler: Upscaler) -> np.ndarray:
    """``lr`` upscaled by the model or a baseline."""
    if method == "model":
        return upscaler.upscale(lr)
    if method == "skimage-order3":
        return skimage_order3(lr, (lr.shape[0] * upscaler.scale, lr.shape[1] * upscaler.scale))
    return np.asarray(interpolate(Image.fromarray(lr), method, upscaler.scale))


def repeats_to_scale(other: Upscaler, scale: int) -> int:
    """How many runs of ``other`` make a x``scale`` upscale (x2 twice for x4); DataError when none do."""
    runs, reached = 1, other.scale
    while reached < scale:
        runs, reached = runs + 1, reached * other.scale
    if reached != scale:
        raise DataError(f"a x{other.scale} model cannot be compared with a x{scale} one: no number of runs of it "
                        f"upscales x{scale}")
    return runs


def upscale_repeatedly(other: Upscaler, runs: int, lr: np.ndarray) -> np.ndarray:
    """``lr`` through ``other`` ``runs`` times."""
    for _ in range(runs):
        lr = other.upscale(lr)
    return lr


def folder_splits(folder: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Images by split: the subject-disjoint split where the folder has one, else all as 'all'.

    ``seed`` must be the training run's for a folder other than the Yale faces, or training
    subjects land in the other splits."""
    files = image_files(folder)
    try:
        by_split = split_files(folder, files, seed)
    except DataError:  # too few subjects to split: score everything together
        return {"all": files}
    return {name: paths for name, paths in by_split.items() if paths}


def condition_pair(path: Path, index: int, condition: str, hr_size: tuple[int, int] | None,
                   scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) of one face under one of docs/evaluation.md's conditions; the noise of image ``index`` (its
    place in its sorted split) is drawn from ``numpy.random.default_rng(index)``."""
    hr, lr = face_pair(path, hr_size, scale, colour=True)
    if condition != "clean":
        lr = np.asarray(condition_lr(Image.fromarray(hr), condition, np.random.default_rng(index), scale))
    return hr, lr


def evaluate_folder(folder: str | Path, upscaler: Upscaler, hr_size: tuple[int, int] | None = REPORT_HR_SIZE,
                    splits: tuple[str, ...] | None = None, seed: int = 0, condition: str = "clean",
                    compare: dict[str, Upscaler] | None = None) -> dict[str, dict]:
    """{split: {method: {"psnr", "ssim"}, "images": n}} for the model and each baseline.

    Colour faces are upscaled in colour and scored on their luma, with "rgb_psnr" beside
    (docs/evaluation.md). ``seed`` picks the subject split of folders other than the Yale faces.
    ``condition``: the LR is made by that docs/evaluation.md condition ("clean", "jpeg75", "noise3",
    "blur", "camera", or a chain such as "noise=5>jpeg=50": :func:`condition_steps`) and every method,
    baselines included, upscales the same degraded LR;
    all are scored against the clean HR. ``compare``: other models by label, each run as many
    times as reach the model's scale (a x2 model twice beside a x4 one), scored as "LABEL xS^N".
    """
    condition_steps(condition)  # a bad condition is refused before any image is read
    folder = Path(folder)
    check_hr_size(hr_size, upscaler.scale)
    others = {f"{label} x{other.scale}^{runs}" if runs > 1 else label: (other, runs)
              for label, other in (compare or {}).items() for runs in [repeats_to_scale(other, upscaler.scale)]}
    results = {}
    for name, paths in folder_splits(folder, seed).items():
        if splits and name not in splits:
            continue
        hrs: list[np.ndarray] = []
        outputs: dict[str, list[np.ndarray]] = {m: [] for m in ("model", *BASELINES, *others)}
        for index, path in enumerate(paths):
            hr, lr = condition_pair(path, index, condition, hr_size, upscaler.scale)
            hrs.append(hr)
            for method, outs in outputs.items():
                outs.append(upscale_repeatedly(*others[method], lr) if method in others
                            else upscale_with(method, lr, upscaler))
        results[name] = {"images": len(paths), **{m: score(hrs, outs) for m, outs in outputs.items()}}
    if not results:
        raise DataError(f"none of the splits {list(splits or [])} exist under {str(folder)!r}")
    return results


def finite_or_none(value):
    """Scores as strict JSON can hold them: a non-finite number (the PSNR of an exact output
    is infinite) becomes None, in nested dicts and lists too."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
