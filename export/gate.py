"""The int8 gate's records: per set of images, an int8 model's PSNR loss against its fp32 model.

`quantize` refuses every recipe whose table breaks a limit (``gate_failures``) and stores the kept
recipe's table in the int8 model's metadata; `enhance-edge bench` measures an installed int8
model the same way (``GateResult``). The benchmark report reads both back from their JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateRow:
    """int8 against fp32 on one set: its images, fp32's mean PSNR, int8's mean and worst loss,
    the image that lost the most, the share of images whose int8 output is kept (precision "auto" runs
    the others in fp32, losing nothing on them: the INT8_MIN_DETAIL_KEY of enhance_edge.core.model), and
    the share it runs twice, int8 then fp32 (those that INT8_MIN_INPUT_DETAIL_KEY does not send to
    fp32 at once)."""

    images: int
    fp32_psnr: float
    mean_loss_db: float
    worst_loss_db: float
    worst_image: str
    int8_share: float = 1.0
    twice_share: float = 0.0

    to_dict = asdict

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateRow:
        return cls(**values)


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
    """One int8 model's gate table, with the two figures the benchmark's goals read from it."""

    sets: GateTable

    @property
    def worst_loss_db(self) -> float:
        return max(row.worst_loss_db for row in self.sets.values())

    @property
    def max_mean_loss_db(self) -> float:
        return max(row.mean_loss_db for row in self.sets.values())

    def to_dict(self) -> dict[str, Any]:
        return {"sets": {name: row.to_dict() for name, row in self.sets.items()}, "worst_loss_db": self.worst_loss_db,
                "max_mean_loss_db": self.max_mean_loss_db}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateResult:
        return cls(table_from_dict(values["sets"]))


def gate_failures(table: GateTable, max_loss_db: float, max_image_loss_db: float) -> list[str]:
    """What a gate table breaks, one phrase each; empty when it passes."""
    failures = []
    for name, row in table.items():
        if row.mean_loss_db > max_loss_db:
            failures.append(f"{name} loses {row.mean_loss_db:.3f} dB on average (limit {max_loss_db})")
        if row.worst_loss_db > max_image_loss_db:
            failures.append(f"{row.worst_image} loses {row.worst_loss_db:.3f} dB (limit {max_image_loss_db})")
    return failures


def describe_table(table: GateTable) -> list[str]:
    """The per-set and worst-image table, as lines."""
    lines = [f"  {'gate set':<20} {'images':>6} {'in int8':>7} {'twice':>6} {'fp32 dB':>8} {'mean loss':>9} "
             f"{'worst':>7}  worst image"]
    for name, row in table.items():
        lines.append(f"  {name:<20} {row.images:>6} {row.int8_share:>7.0%} {row.twice_share:>6.0%} "
                     f"{row.fp32_psnr:>8.2f} {row.mean_loss_db:>9.3f} {row.worst_loss_db:>7.3f}  {row.worst_image}")
    return lines
