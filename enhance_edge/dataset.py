"""Face folders to in-memory HR/LR pairs, split by subject (numpy only, no torch).

A folder is read once, recursively, in any format Pillow reads, as grayscale. Pairs are
made exactly as PROTOCOL.md says (enhance_edge.protocol). With one sub-folder per subject
the split is subject-disjoint: PROTOCOL.md's own for the Yale faces, a seeded one otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .processing import to_unit_float
from .protocol import YALE_TEST_SUBJECTS, YALE_VALIDATION_SUBJECTS, make_hr, make_lr

SPLITS = ("train", "validation", "test")


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
            with Image.open(path):
                found.append(path)
        except (UnidentifiedImageError, OSError):
            continue  # READMEs, licences and other non-images sit beside data sets
    if not found:
        raise DataError(f"no images Pillow can read under {str(folder)!r}")
    return found


def subject_of(path: Path, folder: Path) -> str:
    """The first sub-folder below the data folder names the subject; flat files are their own."""
    relative = path.relative_to(folder)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def split_subjects(subjects: list[str], seed: int) -> dict[str, str]:
    """subject -> split. PROTOCOL.md's split when the Yale subjects are there, else seeded ~70/15/15."""
    if set(YALE_VALIDATION_SUBJECTS + YALE_TEST_SUBJECTS) <= set(subjects):
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


def load_pairs(folder: str | Path, hr_size: tuple[int, int] | None, seed: int = 0,
               max_images: int | None = None, scale: int = 2) -> dict[str, PairSet]:
    """Read a face folder once into memory and return its splits as HR/LR pairs."""
    folder = Path(folder)
    files = image_files(folder)
    split = split_subjects(sorted({subject_of(p, folder) for p in files}), seed)
    by_split: dict[str, list[Path]] = {name: [] for name in SPLITS}
    for path in files:
        by_split[split[subject_of(path, folder)]].append(path)
    pairs = {}
    for name, paths in by_split.items():
        paths = paths[:max_images] if max_images else paths
        hrs, lrs = [], []
        for path in paths:
            with Image.open(path) as image:
                hr = make_hr(image.convert("L"), hr_size)
            hrs.append(np.asarray(hr))
            lrs.append(np.asarray(make_lr(hr, scale)))
        if len({h.shape for h in hrs}) > 1:
            raise DataError(f"images under {str(folder)!r} differ in size; pass an HR size to resize them")
        rel = [str(p.relative_to(folder)) for p in paths]
        empty = np.zeros((0, 0, 0), np.uint8)
        pairs[name] = PairSet(rel, np.stack(hrs) if hrs else empty, np.stack(lrs) if lrs else empty)
    for name in ("train", "validation"):
        if not len(pairs[name]):
            raise DataError(f"the {name} split of {str(folder)!r} is empty")
    return pairs
