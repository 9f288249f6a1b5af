"""The strength a conditioned model takes (0: a clean image, sharpen; 1: heavy noise or blocking,
clean up): parsing it from an option, a form field or the API. The level it stands for is defined
by the degradations a model trains on (enhance_edge.eval.degradation, LEVEL_UNIT)."""

from __future__ import annotations

from ..errors import EnhanceEdgeError, ModelError


def parse_strength(value: float | str | None) -> float | str:
    """"auto" (also for None or "") or a number from 0 to 1, from an option, a form field or the API;
    EnhanceEdgeError with the bad value otherwise."""
    if value is None or value == "" or value == "auto":
        return "auto"
    try:
        strength = float(value)
    except (TypeError, ValueError):
        strength = -1.0
    if not 0.0 <= strength <= 1.0:
        raise EnhanceEdgeError(f"expected auto or a number from 0 to 1, got {value!r}")
    return strength


def checked_strength(value: float | str | None, conditioned: bool, model: str) -> float | str:
    """parse_strength's "auto" or number, for a model that takes it: a number is refused (ModelError
    naming ``model``) for one without the strength input (not conditioned on the degradation level)."""
    strength = parse_strength(value)
    if strength != "auto" and not conditioned:
        raise ModelError(f"model {model!r} has no strength control (it is not conditioned on the degradation "
                         f"level); leave strength at 'auto'")
    return strength

