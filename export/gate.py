"""The int8 gate's records and limits: per set of images, an int8 model against its fp32 model.

Two limits (issue 27), both computed as exact int8 arithmetic computes the int8 model, so that
every machine gates the same:

- against the fp32 model's output, every gate image's int8 output keeps a PSNR of at least
  ``MIN_PSNR_VS_FP32_DB`` (45 dB: an rms difference of 1.4 levels or less, invisible);
- against the ground truth, on the natural sets (faces, photos), int8 loses at most
  ``MAX_MEAN_LOSS_DB`` of fp32's PSNR on average (what a user loses).

`quantize` refuses every recipe whose table breaks a limit (``gate_failures``) and stores the kept
recipe's table in the int8 model's metadata; `enhance-edge bench` measures an installed int8
model the same way (``GateResult``). The benchmark report reads both back from their JSON. The
limits live in the runtime package (enhance_edge.core.gates), like the other quality bars, so that
the command line shows them as its defaults on a runtime-only install.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from enhance_edge.core.gates import MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB

IDENTICAL_PSNR_DB = 100.0  # what the PSNR of two identical 8-bit outputs is recorded as (not infinity)


@dataclass(frozen=True)
class GateRow:
    """int8 against fp32 on one set, in two rows: against fp32's output, the lowest PSNR of any image
    (and the set's PSNR, of its mean squared difference) and that image; against the ground truth,
    fp32's mean PSNR, int8's mean and worst loss and the image that lost the most. ``natural``: a set
    of natural content (faces, photos), whose mean loss is gated; the others' is reported.

    Tables written before the vs-fp32 row (with the per-image routing's shares) read back with it
    None."""

    images: int
    fp32_psnr: float
    mean_loss_db: float
    worst_loss_db: float
    worst_image: str
    vs_fp32_psnr: float | None = None
    vs_fp32_min_psnr: float | None = None
    vs_fp32_worst_image: str | None = None
    natural: bool = False

    to_dict = asdict

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateRow:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


GateTable = dict[str, GateRow]  # by set name


def table_from_dict(values: dict[str, dict[str, Any]]) -> GateTable:
    """A gate table read back from JSON."""
    return {name: GateRow.from_dict(row) for name, row in values.items()}


def as_json(value: Any) -> dict[str, Any]:
    """``json.dumps``'s ``default`` for JSON that holds gate rows (the quantization summary)."""
    if isinstance(value, GateRow):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class GateResult:
    """One int8 model's gate table, with the figures the benchmark's goals read from it."""

    sets: GateTable

    @property
    def worst_loss_db(self) -> float:
        return max(row.worst_loss_db for row in self.sets.values())

    @property
    def max_mean_loss_db(self) -> float:
        """The largest mean loss against the ground truth of a natural set (of any set, in an older table)."""
        natural = [row.mean_loss_db for row in self.sets.values() if row.natural]
        return max(natural or [row.mean_loss_db for row in self.sets.values()])

    @property
    def min_psnr_vs_fp32(self) -> float | None:
        """The lowest PSNR of an int8 output against its fp32 output (None in an older table)."""
        found = [row.vs_fp32_min_psnr for row in self.sets.values() if row.vs_fp32_min_psnr is not None]
        return min(found) if found else None

    def to_dict(self) -> dict[str, Any]:
        return {"sets": {name: row.to_dict() for name, row in self.sets.items()}, "worst_loss_db": self.worst_loss_db,
                "max_mean_loss_db": self.max_mean_loss_db, "min_psnr_vs_fp32": self.min_psnr_vs_fp32}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateResult:
        return cls(table_from_dict(values["sets"]))


def gate_failures(table: GateTable, min_psnr_vs_fp32_db: float = MIN_PSNR_VS_FP32_DB,
                  max_mean_loss_db: float = MAX_MEAN_LOSS_DB) -> list[str]:
    """What a gate table breaks, one phrase each; empty when it passes."""
    failures = []
    for name, row in table.items():
        if row.vs_fp32_min_psnr is not None and row.vs_fp32_min_psnr < min_psnr_vs_fp32_db:
            failures.append(f"{row.vs_fp32_worst_image}'s int8 output is {row.vs_fp32_min_psnr:.2f} dB from fp32's "
                            f"(limit >= {min_psnr_vs_fp32_db:g})")
        if row.natural and row.mean_loss_db > max_mean_loss_db:
            failures.append(f"{name} loses {row.mean_loss_db:.3f} dB on average against the truth "
                            f"(limit {max_mean_loss_db:g})")
    return failures


def describe_table(table: GateTable) -> list[str]:
    """The table, as lines: per set, int8 against fp32's output (set PSNR, lowest image PSNR, that
    image), then against the ground truth (fp32's PSNR, int8's mean and worst loss, that image;
    "gated" on the natural sets)."""
    lines = [f"  {'gate set':<18} {'images':>6}  {'int8 against':<22} {'set':>8} {'worst':>8}  worst image"]
    for name, row in table.items():
        if row.vs_fp32_min_psnr is not None:
            lines.append(f"  {name:<18} {row.images:>6}  {'fp32 output (PSNR dB)':<22} {row.vs_fp32_psnr:>8.2f} "
                         f"{row.vs_fp32_min_psnr:>8.2f}  {row.vs_fp32_worst_image}")
            name = ""
        truth = f"truth ({'gated' if row.natural else 'shown'}, loss dB)"
        lines.append(f"  {name:<18} {'' if not name else row.images:>6}  {truth:<22} {row.mean_loss_db:>8.3f} "
                     f"{row.worst_loss_db:>8.3f}  {row.worst_image} (fp32 {row.fp32_psnr:.2f} dB)")
    return lines
