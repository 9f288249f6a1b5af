"""What the command modules share: the group that loads them lazily, error reporting, the check
for an optional extra, and the parsers of sizes, counts and ranges.

The runtime's commands live in ``enhance_edge/apps/cli.py``; training's, export's and the benchmarks'
beside their code (``train/cli.py``, ``export/cli.py``, ``benchmarks/cli.py``). This module imports
click and the runtime's errors only, so that every one of them can import it at start.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from ..errors import EnhanceEdgeError, MissingExtraError

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The modules training, export and plotting import (the 'train' extra).
TRAIN_EXTRA_MODULES = ("torch", "onnx", "skimage")

Number = TypeVar("Number", int, float)


class LazyGroup(click.Group):
    """A group whose commands named in ``lazy_subcommands`` ({name: "module.attribute"}) are imported
    only when they run or a help lists them (click's "Lazily loading subcommands" pattern): the
    commands of train/, export/ and benchmarks/ stay out of `enhance-edge upscale`'s start."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = self.lazy_subcommands[cmd_name].rpartition(".")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_subcommands[cmd_name]} is not a click command")
        return command


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and exit status 1, no traceback."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EnhanceEdgeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    return wrapper


def require_extra(feature: str, extra: str, modules: Iterable[str] = TRAIN_EXTRA_MODULES) -> None:
    """Fail in one line, naming the extra to install, when one of ``modules`` is missing."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(feature, extra, module) from None


class Quantity(click.ParamType):
    """A count with an optional K, M or G suffix ("800M", "1.5G"); memory sizes may add "B" or "iB".
    ``minimum`` is written the same way: a memory budget of "1M" refuses "512", which is 512 bytes."""

    def __init__(self, name: str, multiplier: int, minimum: str = "1"):
        self.name, self.multiplier, self.minimum_text = name, multiplier, minimum
        parsed = self._parse(minimum)
        if parsed is None:
            raise ValueError(f"minimum must be a number with an optional K, M or G suffix, got {minimum!r}")
        self.minimum = parsed[0]

    def _parse(self, value: str) -> tuple[float, bool] | None:
        """The number ``value`` stands for and whether it had a suffix; None if it is not one."""
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        power = "KMG".find(text[-1:]) + 1 if text[-1:] in ("K", "M", "G") else 0
        try:
            return float(text[:-1] if power else text) * self.multiplier**power, power > 0
        except ValueError:
            return None

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        parsed = self._parse(str(value))
        if parsed is None:
            self.fail(f"expected a number with an optional K, M or G suffix, got {value!r}", param, ctx)
        number, has_suffix = parsed
        if not self.minimum <= number < 2**63:
            plain_bytes = not has_suffix and 1 <= number < self.minimum
            hint = f" (a plain number counts bytes: {value}M is {value} MiB)" if plain_bytes else ""
            self.fail(f"must be at least {self.minimum_text}, got {value!r}{hint}", param, ctx)
        return int(number)


def parse_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[tuple[int, ...], ...]:
    """"HEIGHTxWIDTH[,HEIGHTxWIDTH...]" -> ((height, width), ...)."""
    try:
        sizes = tuple(tuple(int(v) for v in item.lower().split("x")) for item in value.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(len(s) != 2 or min(s) < 1 for s in sizes):
        raise click.BadParameter(f"expected HEIGHTxWIDTH[,HEIGHTxWIDTH...], got {value!r}")
    return sizes


def parse_threads(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """"1,2" -> (1, 2)."""
    try:
        counts = tuple(int(v) for v in value.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"expected thread counts like 1,2, got {value!r}")
    return counts


def parse_range(ctx: click.Context, param: click.Parameter, value: str | None,
                kind: type[Number]) -> tuple[Number, Number] | None:
    """"LOW,HIGH" -> (low, high) of ``kind``; None stays None (the config's default)."""
    if value is None:
        return None
    try:
        low, high = (kind(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH (two {kind.__name__} numbers), got {value!r}") from None
    return low, high
