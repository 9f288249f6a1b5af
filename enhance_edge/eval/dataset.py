"""Face folders to in-memory HR/LR pairs, split by subject (numpy only, no torch).

A folder is read once, recursively, in any format Pillow reads, through the runtime's own
image reading (EXIF orientation applied, 16-bit scaled to 8-bit), as luma. Pairs are made
exactly as docs/evaluation.md says (enhance_edge.eval.protocol); `evaluate` makes its pairs here too.
With one sub-folder per subject the split is subject-disjoint: docs/evaluation.md's own for the
Yale faces, a seeded one otherwise (the training seed, which models record in their metadata).
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, ImageError
from ..io.imageio import flatten_on_white, read_image, to_eight_bit
from ..core.processing import to_unit_float
from .protocol import (MIN_HR_SIDE, REPORT_HR_SIZE, SSIM_WINDOW, YALE_TEST_SUBJECTS, YALE_VALIDATION_SUBJECTS,
                       luma_image, make_hr, make_lr)

SPLITS = ("train", "validation", "test")
# A Yale subject's name, and a face named as the Yale archive names it (yaleBNN_P00A+000E+00.png).
_YALE_SUBJECT = re.compile(r"yaleB\d\d")
_YALE_FACE = re.compile(r"(yaleB\d\d)_")


@dataclass
class PairSet:
    """HR/LR pairs of one split, as uint8 arrays (for scoring) and unit floats (for the model)."""

    names: list[str]
    hr: np.ndarray  # (N, H, W) uint8
    lr: np.ndarray  # (N, H/2, W/2) uint8

    def __len__(self) -> int:
        return len(self.names)

    def unit_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(lr, hr) as float32 NCHW arrays in [0, 1], the model's convention."""
        return to_unit_float(self.lr)[:, None], to_unit_float(self.hr)[:, None]


def image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` that Pillow can identify, sorted."""
    if not folder.is_dir():
        raise DataError(f"data folder {str(folder)!r} does not exist or is not a folder")
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            with warnings.catch_warnings():
                # Pillow's (a bomb-sized header's, say) would land beside the one-line error read_face gives
                warnings.simplefilter("ignore")
                with Image.open(path):
                    found.append(path)
        except (UnidentifiedImageError, OSError):
            continue  # READMEs, licences and other non-images sit beside data sets
    if not found:
        raise DataError(f"no images Pillow can read under {str(folder)!r}")
    return found


def subject_of(path: Path, folder: Path) -> str:
    """The first sub-folder below the data folder names the subject; a flat file is its own, unless it
    is named as a Yale face, whose name begins with its subject."""
    relative = path.relative_to(folder)
    if len(relative.parts) > 1:
        return relative.parts[0]
    yale = _YALE_FACE.match(relative.name)
    return yale.group(1) if yale else relative.stem


def split_subjects(subjects: list[str], seed: int) -> dict[str, str]:
    """subject -> split. docs/evaluation.md's split when the Yale subjects are there (all its validation
    and test subjects, or Yale subjects alone), else seeded ~70/15/15."""
    if set(YALE_VALIDATION_SUBJECTS + YALE_TEST_SUBJECTS) <= set(subjects) \
            or all(_YALE_SUBJECT.fullmatch(subject) for subject in subjects):  # e.g. the test faces alone
        return {s: "validation" if s in YALE_VALIDATION_SUBJECTS else "test" if s in YALE_TEST_SUBJECTS
                else "train" for s in subjects}
    if len(subjects) < 3:
        raise DataError(f"need at least 3 subjects (sub-folders or images) to split, found {len(subjects)}")
    shuffled = sorted(subjects)
    random.Random(seed).shuffle(shuffled)
    n_held = max(1, round(0.15 * len(shuffled)))
    split = {s: "validation" for s in shuffled[:n_held]}
    split.update({s: "test" for s in shuffled[n_held:2 * n_held]})
    split.update({s: "train" for s in shuffled[2 * n_held:]})
    return split


def split_files(folder: Path, files: list[Path], seed: int) -> dict[str, list[Path]]:
    """The files of ``folder`` by split (train, validation, test), split by subject."""
    split = split_subjects(sorted({subject_of(p, folder) for p in files}), seed)
    by_split: dict[str, list[Path]] = {name: [] for name in SPLITS}
    for path in files:
        by_split[split[subject_of(path, folder)]].append(path)
    return by_split


def _training_fact(info, key: str):
    try:
        return info.json_field(key)
    except ValueError:  # a hand-written, non-JSON value
        return None


def trained_seed(info) -> int:
    """The seed of the subject split the model was trained on (its ``train_config`` metadata),
    else 0. ``info`` is the model's ModelInfo."""
    config = _training_fact(info, "train_config")
    seed = config.get("seed") if isinstance(config, dict) else None
    return seed if isinstance(seed, int) else 0


def trained_hr_size(info) -> tuple[int, int] | None:
    """The HR size the model was trained and validated at (its ``train_config`` or ``trained_on``
    metadata; None: native size), else the report's."""
    for key in ("train_config", "trained_on"):
        facts = _training_fact(info, key)
        if isinstance(facts, dict) and "hr_size" in facts:
            return tuple(facts["hr_size"]) if facts["hr_size"] else None
    return REPORT_HR_SIZE


def check_hr_size(hr_size: tuple[int, int] | None, scale: int) -> None:
    """An HR size the model's scale divides and SSIM can score (None, native size, is checked per image)."""
    if hr_size is None:
        return
    width, height = hr_size
    if width % scale or height % scale or min(width, height) < MIN_HR_SIDE:
        raise DataError(f"HR size {width}x{height} does not fit a x{scale} model: width and height must be "
                        f"multiples of {scale} and at least {MIN_HR_SIDE} (SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window)")


def read_face(path: Path) -> Image.Image:
    """A face file as the runtime reads it (EXIF orientation applied), in 8 bits: "L" or "RGB".

    16-bit gray is scaled by 1/257 (not clipped), alpha is composited over white. A file that
    cannot be decoded is a DataError naming it.
    """
    try:
        image, _ = read_image(path)
    except ImageError as exc:
        raise DataError(str(exc)) from None
    if image.mode == "I;16":
        return to_eight_bit(image)
    return flatten_on_white(image) if image.mode in ("LA", "RGBA") else image


def face_pair(path: Path, hr_size: tuple[int, int] | None, scale: int = 2,
              colour: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) uint8 arrays of one face file, made as docs/evaluation.md says: luma (H, W), or with
    ``colour`` a colour face stays RGB (H, W, 3)."""
    face = read_face(path)
    if not colour:
        face = luma_image(face)
    hr = make_hr(face, hr_size, scale)
    if min(hr.size) < MIN_HR_SIDE:
        raise DataError(f"{path}: {hr.width}x{hr.height} is too small to score; HR faces need at least "
                        f"{MIN_HR_SIDE}x{MIN_HR_SIDE} pixels (SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window)")
    return np.asarray(hr), np.asarray(make_lr(hr, scale))


def load_pairs(folder: str | Path, hr_size: tuple[int, int] | None, seed: int = 0,
               max_images: int | None = None, scale: int = 2) -> dict[str, PairSet]:
    """Read a face folder once into memory and return its splits as HR/LR pairs (luma)."""
    folder = Path(folder)
    check_hr_size(hr_size, scale)
    pairs = {}
    for name, paths in split_files(folder, image_files(folder), seed).items():
        paths = paths[:max_images] if max_images else paths
        made = [face_pair(path, hr_size, scale) for path in paths]
        hrs, lrs = [hr for hr, _ in made], [lr for _, lr in made]
        if len({h.shape for h in hrs}) > 1:
            raise DataError(f"images under {str(folder)!r} differ in size; pass an HR size to resize them")
        rel = [str(p.relative_to(folder)) for p in paths]
        empty = np.zeros((0, 0, 0), np.uint8)
        pairs[name] = PairSet(rel, np.stack(hrs) if hrs else empty, np.stack(lrs) if lrs else empty)
    for name in ("train", "validation"):
        if not len(pairs[name]):
            raise DataError(f"the {name} split of {str(folder)!r} is empty")
    return pairs
