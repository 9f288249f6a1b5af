"""Choosing how "auto" maps the estimator's reading to a strength (graph.StrengthCalibration), on
the validation faces of the run's own split: clean, and a fixed degraded draw of the run's
degradations (half of its faces clean, CALIBRATION_CLEAN_SHARE).

Each face is upscaled at a grid of strengths once; a candidate calibration's score is then the
PSNR each face would get at the strength the calibration gives its reading (interpolated on the
grid), averaged per set, and the two sets' means averaged. The test faces are never read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from enhance_edge.errors import DataError
from enhance_edge.eval.dataset import load_pairs
from enhance_edge.eval.protocol import psnr

from ..train.config import RunConfig
from ..train.data import VALIDATION_STREAM, degraded_lrs
from ..train.networks import DegradationEstimator, Generator
from .graph import StrengthCalibration

STRENGTHS = np.linspace(0.0, 1.0, 21)
# The share of clean faces in the degraded draw a calibration is scored on, whatever share the run
# trained on: drawn at the run's own, the choice followed it (one network chose a gain of 1.0 from a
# draw at 85% clean, 1.1 at 50%). 0.5 is what the bundled files' runs calibrated on.
CALIBRATION_CLEAN_SHARE = 0.5
ZERO_BELOW = np.round(np.arange(0.0, 0.405, 0.02), 2)
GAINS = np.round(np.arange(0.8, 1.85, 0.1), 2)
BATCH = 64


@torch.no_grad()
def _psnr_at_strengths(generator: Generator, lrs: np.ndarray, hrs: np.ndarray) -> np.ndarray:
    """(faces, strengths) PSNR of 8-bit outputs at each of STRENGTHS."""
    x = torch.from_numpy(lrs.astype(np.float32) / 255)[:, None]
    table = np.empty((len(lrs), len(STRENGTHS)))
    for column, strength in enumerate(STRENGTHS):
        for start in range(0, len(x), BATCH):
            batch = x[start:start + BATCH]
            out = generator(batch, torch.full((len(batch), 1, 1, 1), float(strength))).numpy()[:, 0]
            pixels = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
            table[start:start + len(batch), column] = [psnr(hr, p) for hr, p in zip(hrs[start:], pixels)]
    return table


def _score(readings: np.ndarray, table: np.ndarray, calibration: StrengthCalibration) -> float:
    strengths = calibration.apply(readings)
    return float(np.mean([np.interp(s, STRENGTHS, row) for s, row in zip(strengths, table)]))


def choose_calibration(generator: Generator, estimator: DegradationEstimator, config: RunConfig,
                       data_dir: str | Path) -> tuple[StrengthCalibration, dict]:
    """The calibration with the best mean of the clean and degraded validation PSNR, and the
    figures it was chosen on."""
    if config.degradation is None:
        raise DataError("a strength calibration needs the run's degradations (a conditioned model)")
    train = config.train
    validation = load_pairs(data_dir, train.hr_size, train.seed, scale=config.generator.scale).get("validation")
    if validation is None or not len(validation.hr):
        raise DataError(f"{str(data_dir)!r} has no validation faces to calibrate the strength on")
    hrs = np.stack(validation.hr)
    clean = np.stack(validation.lr)
    degradation = dataclasses.replace(config.degradation, clean_share=CALIBRATION_CLEAN_SHARE)
    degraded, _ = degraded_lrs(hrs, np.arange(len(hrs)), degradation, train.seed, VALIDATION_STREAM,
                               config.generator.scale)
    generator = generator.eval()
    sets = []
    for lrs in (clean, degraded):
        with torch.no_grad():
            readings = torch.cat([estimator(torch.from_numpy(lrs[i:i + BATCH].astype(np.float32) / 255)[:, None])
                                  for i in range(0, len(lrs), BATCH)]).numpy().reshape(-1)
        sets.append((readings, _psnr_at_strengths(generator, lrs, hrs)))
    scores = {(t, k): np.mean([_score(r, table, StrengthCalibration(t, k)) for r, table in sets])
              for t in ZERO_BELOW for k in GAINS}
    best = max(scores, key=scores.get)
    return StrengthCalibration(float(best[0]), float(best[1])), {
        "chosen": float(scores[best]), "uncalibrated": float(scores[(0.0, 1.0)]),
        "clean_psnr": _score(sets[0][0], sets[0][1], StrengthCalibration(*best)),
        "degraded_psnr": _score(sets[1][0], sets[1][1], StrengthCalibration(*best)),
        "faces": len(hrs)}
