"""Checkpoints: config, weights, optimiser state and progress in one file, written atomically.

Keys: format, config, epoch (epochs completed), data, generator, optimizer_g and, with an
adversary, discriminator and optimizer_d; validation (PSNR/SSIM of the epoch just completed,
None in a checkpoint taken mid-epoch). Training checkpoints add what resuming needs: step
(optimiser steps done in the epoch after ``epoch``), schedule (the cosine learning-rate
schedule's state, if any), best_psnr, history (every metrics.jsonl record so far), partial
(the running epoch's loss sums and seconds) and rng (PyTorch's generator states); with a
teacher, teacher (the file its name resolved to and that file's sha256).
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from enhance_edge.errors import CheckpointError
from enhance_edge.io.fileio import atomic_output

from . import qat
from .config import RunConfig
from .networks import Discriminator, Generator

FORMAT = "enhance-edge-checkpoint/1"
RESUME_KEYS = ("config", "epoch", "step", "data", "generator", "optimizer_g", "best_psnr", "history", "partial", "rng")
# TrainConfig fields that change how a run is carried out but not what it computes.
OPERATIONAL_FIELDS = ("threads", "checkpoint_every")


def save(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file beside ``path`` and rename, so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as handle:  # which syncs the data to disk before the rename
        torch.save({"format": FORMAT, **state}, handle)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{str(path)!r} is an empty file, not a checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files, some without a message
        reason = (str(exc).strip().splitlines() or [f"{type(exc).__name__} (cut short?)"])[0]
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint: {reason}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an enhance-edge checkpoint (expected format {FORMAT})")
    return state


def load_generator(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """The trained generator (in eval mode) and the checkpoint it came from.

    It is channels_last, the memory format training uses, so its outputs equal those of the
    training run bit for bit (another format sums in another order: differences ~1e-9).
    """
    state = load(path)
    config = run_config(path, state)
    check_weights_fit(path, state, config, ("generator",))
    generator = _generator(config).to(memory_format=torch.channels_last)
    _load_weights(path, state, "generator", generator)
    if config.train.qat:
        generator = qat.strip(generator)  # the float network is the model
    return generator.eval(), state


def _generator(config: RunConfig) -> Generator:
    """The generator a run of ``config`` trains, untrained."""
    generator = Generator(config.generator)
    if config.train.qat:  # its state also holds the int8 simulation's ranges (qat.py)
        qat.prepare(generator, config.train.qat_weight_bits)
    return generator


def _load_weights(path: str | Path, state: dict[str, Any], name: str, network: torch.nn.Module) -> None:
    """Load ``state[name]`` into ``network``; a CheckpointError naming what does not fit otherwise."""
    try:
        network.load_state_dict(state[name])
    except KeyError as exc:
        raise CheckpointError(f"{str(path)!r} holds no {name} weights") from exc
    except (RuntimeError, TypeError) as exc:  # torch lists each missing, unexpected or misshapen weight
        problems = [line.strip().rstrip(".") for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{str(path)!r} holds {name} weights that do not fit its config: "
                              f"{problems[0]}{more}") from exc


def check_weights_fit(path: str | Path, state: dict[str, Any], config: RunConfig, names: tuple[str, ...]) -> None:
    """CheckpointError unless the networks ``names`` of ``state`` fit ``config``; checked on the
    meta device (shapes only, no memory), so that a config asking for a huge network, such as
    10^6 channels (a 36 TB allocation), is an error before anything is allocated."""
    networks = {"generator": lambda: _generator(config), "discriminator": lambda: Discriminator(config.discriminator)}
    # Copies onto the meta device do nothing, as torch warns: the shapes are checked all the same.
    # (assign=True, which would not warn, made a resumed run differ from the uninterrupted one.)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
        for name in names:
            _load_weights(path, state, name, networks[name]())


def run_config(path: str | Path, state: dict[str, Any]) -> RunConfig:
    """The run config a loaded checkpoint holds; a missing, foreign or newer one is a CheckpointError."""
    try:
        return RunConfig.from_dict(state["config"])
    except KeyError as exc:
        raise CheckpointError(f"{str(path)!r} holds an unusable config: no {exc} entry") from exc
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{str(path)!r} holds an unusable config: {exc}") from exc


def config_differences(saved: RunConfig, asked: RunConfig) -> list[str]:
    """'section.field: saved -> asked' for every setting that changes what a run computes."""
    found = [difference for section in ("generator", "discriminator", "train", "estimator")
             for difference in _field_differences(section, getattr(saved, section), getattr(asked, section),
                                                  OPERATIONAL_FIELDS if section == "train" else ())]
    if saved.degradation is not None and asked.degradation is not None:
        found += _field_differences("degradation", saved.degradation, asked.degradation)
    elif saved.degradation != asked.degradation:
        found.append(f"degradation: {saved.degradation!r} -> {asked.degradation!r}")
    return found


def _field_differences(section: str, before: Any, after: Any, ignored: tuple[str, ...] = ()) -> list[str]:
    """'section.field: before -> after' for each field of two configs of one dataclass that differs."""
    return [f"{section}.{field.name}: {getattr(before, field.name)!r} -> {getattr(after, field.name)!r}"
            for field in fields(before)
            if field.name not in ignored and getattr(before, field.name) != getattr(after, field.name)]


def load_for_resume(path: Path, config: RunConfig, data_facts: dict[str, Any],
                    teacher: dict[str, str] | None = None) -> dict[str, Any]:
    """A checkpoint to continue from, checked to be a run of this config on this data, distilled
    from the same teacher file (``teacher``: ``data.teacher_file``'s facts) if any."""
    state = load(path)
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{str(path)!r} cannot be resumed: it lacks {', '.join(missing)} "
                              f"(written by an older enhance-edge, or not by training)")
    differences = config_differences(run_config(path, state), config)
    if differences:
        raise CheckpointError(f"{str(path)!r} is a run with other settings ({'; '.join(differences)}); "
                              f"resume with the same options, or train into another folder")
    check_weights_fit(path, state, config, ("generator", "discriminator") if "discriminator" in state
                      else ("generator",))
    if state["data"] != data_facts:
        raise CheckpointError(f"{str(path)!r} was trained on other data ({state['data']} -> {data_facts})")
    if teacher is not None:  # the name is in the config; what it stands for may have changed since
        saved_sha256 = (state.get("teacher") or {}).get("sha256", "not recorded")
        if saved_sha256 != teacher["sha256"]:
            raise CheckpointError(f"{str(path)!r} was distilled from a teacher file with sha256 {saved_sha256}; "
                                  f"teacher {teacher['name']!r} ({teacher['path']}) now has sha256 "
                                  f"{teacher['sha256']}: resume with the file it was distilled from, or train "
                                  f"into another folder")
    return state


def remove_partial_writes(folder: Path) -> None:
    """Delete the temporary files of checkpoint writes that a kill interrupted."""
    for name in ("last.pt", "best.pt"):
        for leftover in folder.glob(f".{name}.*.part"):  # atomic_output's temporary names
            leftover.unlink(missing_ok=True)
