"""The GAN training loop: ``train_in`` reads top to bottom (set-up, restore, steps, end of epoch).

Losses are the report's: D = BCE(D(hr), 1) + BCE(D(G(lr)), 0) and
G = content(G(lr), hr) + adversarial_weight * BCE(D(G(lr)), 1), plus, with a teacher,
distill_weight * content(G(lr), teacher(lr)). Training and validation log the same terms under
the same names (content, distill, adversarial: unweighted; g_loss: their weighted sum), and the
discriminator's losses and scores only in epochs where it trains. Each epoch appends one JSON line
to OUT/metrics.jsonl and rewrites OUT/last.pt (so does every ``checkpoint_every``-th step);
OUT/best.pt keeps the epoch with the best validation PSNR — of the simulated int8 network
with ``qat`` (the test split is never looked at here). ``resume`` continues from OUT/last.pt
as if the run had never stopped; without it a folder that holds a run is refused unless
``overwrite``.

Under torchrun every process trains on its shard of each global batch through
DistributedDataParallel, and rank 0 alone evaluates, logs and writes.

Determinism: on CPU, one process with the same seed, data, thread count and torch build gives
identical weights, also across a kill and ``resume`` (the batch order and flips are functions
of (seed, epoch); optimiser, schedule and RNG states are checkpointed). It ends where float
sums are reordered: another thread count or torch/oneDNN version, cuDNN's algorithm choice on
GPUs, and gradients averaged over several processes, which with batch norm on CPUs also
normalise each process's share of the batch; those runs are close, not bit-identical.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from enhance_edge.eval.dataset import PairSet, load_pairs
from enhance_edge.eval.degradation import DegradationConfig
from enhance_edge.errors import CheckpointError, DataError
from enhance_edge.core.processing import from_unit_float, to_unit_float
from enhance_edge.eval.protocol import interpolate, score

from . import checkpoint, distributed, qat
from .config import RunConfig, TrainConfig
from .data import (VALIDATION_STREAM, Teacher, TrainingImages, as_tensors, degraded_lrs, extra_images, pair_tensors,
                   teacher_file)
from .distributed import Processes
from .networks import DegradationEstimator, Discriminator, Generator
from .warm_start import load_warm_start

EVAL_BATCH = 64
LOSS_SUMS = ("g_loss", "content", "distill", "adversarial", "d_loss", "estimator")
# The estimator learns from scratch while a warm-started generator fine-tunes: its own, larger rate
# (3e-3 took its level error from 0.23 to 0.06 in 800 steps).
ESTIMATOR_LR = 3e-3
# Training pairs without a degradation config: docs/evaluation.md's clean bicubic halves.
CLEAN = DegradationConfig(clean_share=1.0)
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")  # what a training run writes into OUT


def interpolation_scores(pairs: PairSet, scale: int) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of the classical baselines on a split (constant, so computed once)."""
    hrs = list(pairs.hr)
    return {method: score(hrs, [np.asarray(interpolate(Image.fromarray(lr), method, scale)) for lr in pairs.lr])
            for method in ("bicubic", "lanczos")}


def classifier_metrics(real_prob: torch.Tensor, fake_prob: torch.Tensor) -> dict[str, float]:
    """The discriminator as a binary classifier, "real" being the positive class."""
    tp = int((real_prob >= 0.5).sum())
    fn = len(real_prob) - tp
    tn = int((fake_prob < 0.5).sum())
    fp = len(fake_prob) - tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
    }


# An 8-bit image's rounding error, as MSE on [0, 1] pixels: the floor under "psnr"'s logarithm.
ROUNDING_MSE = (1 / 255) ** 2 / 12


def content_loss(kind: str, fake: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(fake, hr)
    if kind == "l1":
        return F.l1_loss(fake, hr)
    # "psnr": the mean over images of 10 log10(MSE), which is minus the mean per-image PSNR that
    # evaluation reports (plus a constant). Its gradient weighs each image by 1 / its MSE, so a clean
    # pair, whose error is several times smaller than a noisy or compressed one's, counts as much:
    # under plain MSE the degraded pairs dominate and strength 0 falls behind a clean-only network.
    per_image = (fake - hr).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(per_image + ROUNDING_MSE).mean()


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def generator_loss(config: TrainConfig, fake: torch.Tensor, hr: torch.Tensor, taught: torch.Tensor | None,
                   fake_logits: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's loss and its unweighted terms by their logged names, the same in training and validation:
    content, distill (given the teacher's outputs) and adversarial (given D's logits for ``fake``)."""
    terms = {"content": content_loss(config.content_loss, fake, hr)}
    g_loss = terms["content"]
    if taught is not None:
        terms["distill"] = content_loss(config.content_loss, fake, taught)
        g_loss = g_loss + config.distill_weight * terms["distill"]
    if fake_logits is not None:
        terms["adversarial"] = bce(fake_logits, 1.0)
        g_loss = g_loss + config.adversarial_weight * terms["adversarial"]
    return g_loss, terms


@torch.no_grad()
def evaluate(generator: Generator, discriminator: Discriminator | None, pairs: PairSet,
             config: RunConfig, teacher: torch.Tensor | None = None,
             estimator: DegradationEstimator | None = None) -> dict:
    """Validation losses, PSNR/SSIM of the generator and the discriminator's classifier metrics.

    The losses are training's: pass the discriminator while it trains and, when distilling, the
    teacher's outputs for ``pairs``; each adds its term to g_loss (and D its losses and scores).
    A conditioned generator runs at the levels ``estimator`` reads from each LR, as the runtime's
    "auto" strength does.
    """
    for network in (generator, discriminator, estimator):
        if network is not None:
            network.eval()
    device = next(generator.parameters()).device
    lr_all, hr_all = pair_tensors(pairs)
    outputs, sums, real_probs, fake_probs = [], {}, [], []
    for start in range(0, len(pairs), EVAL_BATCH):
        batch = slice(start, start + EVAL_BATCH)
        lr, hr = lr_all[batch].to(device), hr_all[batch].to(device)
        fake = generator(lr, estimator(lr)) if estimator is not None else generator(lr)
        outputs.append(fake.cpu())
        fake_logits = discriminator(fake) if discriminator is not None else None
        g_loss, terms = generator_loss(config.train, fake, hr, None if teacher is None else teacher[batch].to(device),
                                       fake_logits)
        losses = {"g_loss": g_loss, **terms}
        if discriminator is not None:
            real_logits = discriminator(hr)
            losses["d_loss"] = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
            real_probs.append(torch.sigmoid(real_logits).cpu())
            fake_probs.append(torch.sigmoid(fake_logits).cpu())
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(lr)
    generated = from_unit_float(torch.cat(outputs)[:, 0].numpy())
    metrics = {**{key: total / len(pairs) for key, total in sums.items()}, **score(list(pairs.hr), list(generated))}
    if discriminator is not None:
        metrics["discriminator"] = classifier_metrics(torch.cat(real_probs), torch.cat(fake_probs))
    return metrics


@torch.no_grad()
def degraded_scores(generator: Generator, estimator: DegradationEstimator | None, pairs: PairSet,
                    levels: torch.Tensor, config: RunConfig) -> dict[str, float]:
    """PSNR/SSIM on a fixed degraded draw of the validation faces (the generator at the levels its
    estimator reads, as the runtime runs it) and the estimator's mean absolute level error."""
    scores = evaluate(generator, None, pairs, config, estimator=estimator)
    result = {"psnr": scores["psnr"], "ssim": scores["ssim"]}
    if estimator is not None:
        device = next(estimator.parameters()).device
        lr_all = pair_tensors(pairs)[0]
        estimated = torch.cat([estimator(lr_all[i:i + EVAL_BATCH].to(device)).cpu().flatten()
                               for i in range(0, len(pairs), EVAL_BATCH)])
        result["level_error"] = float((estimated - levels).abs().mean())
    return result


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def train(data_dir: str | Path, out_dir: str | Path, config: RunConfig = RunConfig(),
          report: Callable[[str], None] = print, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Train on a face folder; returns the path of the best checkpoint (validation PSNR).

    Launched by torchrun (RANK, WORLD_SIZE, ... in the environment), this process joins the
    others in one DistributedDataParallel run; only rank 0 gets the path, the others None.
    With ``resume``, continue from OUT/last.pt when there is one (else start afresh). A folder
    that already holds a run (any of RUN_FILES) is otherwise refused, or with ``overwrite``
    replaced by the new run.
    """
    if resume and overwrite:
        raise ValueError("resume continues the run in the output folder and overwrite replaces it: not both")
    with distributed.processes_from_environment() as procs:
        return train_in(procs, Path(data_dir), Path(out_dir), config, report, resume, overwrite)


def train_in(procs: Processes, data_dir: Path, out_dir: Path, config: RunConfig,
             report: Callable[[str], None], resume: bool, overwrite: bool) -> Path | None:
    """The loop itself, as one of ``procs``: set up, restore, then epochs of steps, each epoch
    ended by validation, the checkpoints and its metrics line (rank 0 alone does the last three)."""
    cfg = config.train
    run = set_up(procs, data_dir, out_dir, config, Reporter(report, procs, cfg.epochs), resume, overwrite)
    progress = restore(run, resume, overwrite)
    steps_per_epoch = run.data.steps_per_epoch
    global_step = (progress.start_epoch - 1) * steps_per_epoch + progress.start_step
    for epoch in range(progress.start_epoch, cfg.epochs + 1):
        first_step = progress.start_step if epoch == progress.start_epoch else 0
        # The running epoch's sums: rank 0 continues those of a resumed epoch's checkpoint.
        tally = EpochTally.start(progress.partial if first_step and procs.is_main else None)
        adversarial_now = run.nets.discriminator is not None and epoch > cfg.warmup_epochs
        run.nets.train()
        for step, batch in run.data.batches(epoch, first_step):
            g_loss = train_step(run.nets, batch, adversarial_now, tally)
            global_step += 1
            run.reporter.step(epoch, step, steps_per_epoch, g_loss)
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                so_far = tally.summed(procs)
                if procs.is_main:
                    checkpoint.save(run.files.last, snapshot(run, progress, epoch - 1, step + 1, None, so_far))
        run.reporter.steps_done()
        end_of_epoch(run, progress, epoch, adversarial_now, tally)
    return run.files.best if procs.is_main else None


@dataclass(frozen=True)
class RunFiles:
    """What a training run writes into its output folder (RUN_FILES)."""

    folder: Path

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl"

    def refuse_existing_run(self, resume: bool, overwrite: bool) -> None:
        existing = [name for name in RUN_FILES if (self.folder / name).exists()]
        if existing and not resume and not overwrite:
            raise CheckpointError(f"{self.folder} already holds a run ({', '.join(existing)}): resume it (--resume), "
                                  f"replace it (--overwrite) or train into another folder")

    def start(self, history: list[dict], overwrite: bool) -> None:
        """The folder, metrics.jsonl with one line per completed epoch (also after a kill between a
        line and its checkpoint) and, with ``overwrite``, no checkpoint of the replaced run."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"{self.folder}: cannot create the output folder ({exc.strerror or exc})") from None
        if overwrite:  # the replaced run's checkpoints go with its metrics
            for path in (self.last, self.best):
                path.unlink(missing_ok=True)
        self.metrics.write_text("".join(json.dumps(record) + "\n" for record in history))

    def append_metrics(self, record: dict) -> None:
        with self.metrics.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


class TrainingData:
    """The face folder (and extra images) in memory, this process's share of each batch and, on
    rank 0, the validation sets and their interpolation baselines.

    Every process reads the folder once. Training pairs are fixed, made once, unless LRs are
    drawn per epoch (a degradation config) or extra crops join in.
    """

    def __init__(self, data_dir: Path, config: RunConfig, procs: Processes):
        cfg = self.cfg = config.train
        self.scale, self.degradation = config.generator.scale, config.degradation
        self.batch = distributed.local_batch_size(cfg.batch_size, procs)  # this process's share of a step
        self.pairs = load_pairs(data_dir, cfg.hr_size, cfg.seed, cfg.max_images, self.scale)
        if cfg.extra_data and cfg.hr_size is None:
            raise DataError("extra training images are cropped to the HR size: give one (not native size)")
        extra, self.extra_counts = extra_images(cfg.extra_data, cfg.hr_size) if cfg.extra_data else ([], {})
        self.fixed = self.degradation is None and not extra
        self.lr_train, self.hr_train = pair_tensors(self.pairs["train"])
        self.images = TrainingImages(self.pairs["train"].hr, extra, cfg.extra_crops, cfg.seed)
        self.facts = {"folder": data_dir.resolve().name, "hr_size": cfg.hr_size,
                      "images": {name: len(p) for name, p in self.pairs.items()},
                      **({"extra": self.extra_counts, "extra_crops_per_epoch": self.images.crops} if extra else {})}
        if distributed.from_main(self.facts, procs) != self.facts:  # e.g. a machine with a partial copy
            raise DataError(f"rank {procs.rank} reads other data than rank 0: {self.facts}")
        self._load_teacher(procs.is_main)
        self.order = distributed.epoch_order(len(self.images), procs, cfg.seed)
        self.steps_per_epoch = math.ceil(self.order.num_samples / self.batch)
        self.baselines, self.degraded_validation = {}, None
        if procs.is_main:
            self._load_validation()

    @property
    def validation(self) -> PairSet:
        return self.pairs["validation"]

    def _load_teacher(self, main: bool) -> None:
        """The teacher's facts (kept in the checkpoints), the model and, made once, its targets for
        fixed pairs as they are and, with hflip, mirrored, and on rank 0 for validation, whose
        g_loss has the distillation term too."""
        cfg = self.cfg
        self.teacher = self.teacher_model = self.teacher_validation = None
        self.teacher_train = self.teacher_mirrored = None
        if not cfg.teacher:
            return
        self.teacher = teacher_file(cfg.teacher)  # what the name stands for now
        self.teacher_model = Teacher(cfg.teacher, self.scale, cfg.threads)
        if self.fixed:
            self.teacher_train = self.teacher_model(self.lr_train)
            self.teacher_mirrored = self.teacher_model(self.lr_train.flip(-1)) if cfg.hflip else None
        if main:
            self.teacher_validation = self.teacher_model(pair_tensors(self.validation)[0])

    def _load_validation(self) -> None:
        """The classical baselines and, with degradations, one fixed draw of degraded validation
        faces, scored each epoch."""
        self.baselines = interpolation_scores(self.validation, self.scale)
        if self.degradation is not None:
            hrs = self.validation.hr
            lrs, levels = degraded_lrs(hrs, np.arange(len(hrs)), self.degradation, self.cfg.seed, VALIDATION_STREAM,
                                       self.scale)
            self.degraded_validation = (PairSet(self.validation.names, hrs, lrs), torch.from_numpy(levels))
            lanczos = interpolation_scores(self.degraded_validation[0], self.scale)["lanczos"]
            self.baselines["degraded_lanczos"] = lanczos

    def batches(self, epoch: int, first_step: int) -> Iterator[tuple[int, Batch]]:
        """(step, this process's share of the step's batch) for the steps of ``epoch`` from ``first_step``."""
        self.order.set_epoch(epoch)
        indices = torch.tensor(list(self.order))
        flips = None
        if self.cfg.hflip:  # one coin per image and epoch, whichever process gets the image
            flips = torch.from_numpy(np.random.default_rng([self.cfg.seed % 2**64, epoch]).random(len(self.images))
                                     < 0.5)
        hr_epoch = None if self.fixed else self.images.epoch(epoch)
        for step in range(first_step, self.steps_per_epoch):
            index = indices[step * self.batch:(step + 1) * self.batch]
            yield step, (self._fixed_batch(index, flips) if self.fixed else
                         self._drawn_batch(index, flips, hr_epoch, epoch))

    def _fixed_batch(self, index: torch.Tensor, flips: torch.Tensor | None) -> Batch:
        lr, hr = self.lr_train[index], self.hr_train[index]
        taught = self.teacher_train[index] if self.teacher else None
        if flips is not None:
            flip = flips[index][:, None, None, None]
            lr, hr = torch.where(flip, lr.flip(-1), lr), torch.where(flip, hr.flip(-1), hr)
            if self.teacher:
                taught = torch.where(flip, self.teacher_mirrored[index], taught)
        return Batch(lr, hr, None, taught)

    def _drawn_batch(self, index: torch.Tensor, flips: torch.Tensor | None, hr_epoch: np.ndarray,
                     epoch: int) -> Batch:
        """LRs drawn from the (flipped) HRs for this epoch, with their levels."""
        hr_pixels = hr_epoch[index.numpy()]
        if flips is not None:
            hr_pixels = np.where(flips[index].numpy()[:, None, None], hr_pixels[..., ::-1], hr_pixels)
        lr_pixels, levels = degraded_lrs(hr_pixels, index.numpy(), self.degradation or CLEAN, self.cfg.seed, epoch,
                                         self.scale)
        lr, level = as_tensors(lr_pixels, levels)
        hr = torch.from_numpy(to_unit_float(hr_pixels)[:, None])
        aligned = None
        if self.cfg.keep_readings:  # the same draws, the blocks on the grid: what the start estimator reads
            aligned_pixels, _ = degraded_lrs(hr_pixels, index.numpy(), replace(self.degradation, jpeg_grid_shift=False),
                                             self.cfg.seed, epoch, self.scale)
            aligned = torch.from_numpy(to_unit_float(aligned_pixels)[:, None])
        return Batch(lr, hr, level, self.teacher_model(lr, level) if self.teacher else None, aligned)


@dataclass(frozen=True)
class Batch:
    """One step's training pairs: LRs, HRs, the LRs' degradation levels (drawn pairs only),
    the teacher's outputs (when distilling) and the LRs with their JPEG blocks on the grid
    (keep_readings)."""

    lr: torch.Tensor
    hr: torch.Tensor
    level: torch.Tensor | None
    taught: torch.Tensor | None
    aligned: torch.Tensor | None = None


def _fits(network: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` has exactly ``network``'s weight names and shapes."""
    own = network.state_dict()
    return own.keys() == state.keys() and all(own[key].shape == state[key].shape for key in own)


class Networks:
    """The generator, with an adversary the discriminator and, conditioned, the level estimator, with
    their optimisers and the learning-rate schedule: identical in every process."""

    def __init__(self, config: RunConfig, procs: Processes, steps_per_epoch: int):
        cfg = self.cfg = config.train
        self.device = procs.device
        # channels_last lets oneDNN pick its fast CPU convolutions: a batch-32 training step of
        # the report's generator on 1 thread went from 2.0 s to 1.05 s.
        torch.manual_seed(cfg.seed)
        generator = Generator(config.generator)
        estimator = DegradationEstimator(config.estimator) if config.generator.condition == "degradation" else None
        if cfg.init_from:  # SRGAN's warm start: begin from a generator trained on the content loss
            warm, estimator_state = load_warm_start(cfg.init_from, config.generator)
            generator.load_state_dict(warm.state_dict())
            if estimator is not None and estimator_state is not None and _fits(estimator, estimator_state):
                # (A source estimator of another width, --estimator-channels, does not fit: this run's
                # learns from scratch beside the warm-started generator, as for a newly conditioned one.)
                estimator.load_state_dict(estimator_state)
        if estimator is not None:
            estimator = estimator.to(self.device, memory_format=torch.channels_last)
        # What the start estimator reads, held still: the target of a keep_readings run.
        self.reading_teacher = copy.deepcopy(estimator).eval().requires_grad_(False) if cfg.keep_readings else None
        if cfg.qat:
            qat.prepare(generator, cfg.qat_weight_bits)
        self.generator = generator.to(self.device, memory_format=torch.channels_last)
        self.estimator = estimator
        self.discriminator = (distributed.sync_batch_norm(Discriminator(config.discriminator), procs)
                              .to(self.device, memory_format=torch.channels_last) if cfg.adversarial else None)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.parts = {"generator": self.generator, "optimizer_g": self.opt_g}  # what a checkpoint keeps the state of
        self.opt_d = self.opt_e = self.schedule = None
        if self.discriminator is not None:
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=cfg.betas)
            self.parts.update(discriminator=self.discriminator, optimizer_d=self.opt_d)
        if estimator is not None:  # when it trains alone, at the run's --lr
            self.opt_e = torch.optim.Adam(estimator.parameters(), lr=cfg.lr if cfg.estimator_only else ESTIMATOR_LR)
            self.parts.update(estimator=estimator, optimizer_e=self.opt_e)
        if cfg.lr_schedule == "cosine":  # one clock for G and D, ticking also while D waits out the warm-up epochs
            self.schedule = self.parts["schedule"] = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.opt_e if cfg.estimator_only else self.opt_g, cfg.epochs * steps_per_epoch)

    def wrap(self, procs: Processes) -> None:
        """DistributedDataParallel averages gradients over processes in backward (the bare networks
        in a single process); wrapped once the weights are restored, as it broadcasts rank 0's."""
        self.parallel_g = distributed.data_parallel(self.generator, procs)
        self.parallel_d = (distributed.data_parallel(self.discriminator, procs)
                           if self.discriminator is not None else None)
        self.parallel_e = distributed.data_parallel(self.estimator, procs) if self.estimator is not None else None

    def train(self) -> None:
        for network in (self.generator, self.discriminator, self.estimator):
            if network is not None:
                network.train()

    def schedule_step(self) -> None:
        """One tick of the cosine schedule, which D follows and E follows from its own rate (or which
        drives E's optimiser when E trains alone)."""
        self.schedule.step()
        if self.cfg.estimator_only:
            return
        lr = self.opt_g.param_groups[0]["lr"]
        for group in self.opt_d.param_groups if self.opt_d else ():
            group["lr"] = lr
        for group in self.opt_e.param_groups if self.opt_e else ():
            group["lr"] = ESTIMATOR_LR * lr / self.cfg.lr


@dataclass
class Progress:
    """Where this process starts (its first epoch, the steps of it already done and, on rank 0, their
    loss sums so far) and what the run has achieved (the best validation score, every metrics
    record), which each epoch's end brings up to date."""

    start_epoch: int = 1
    start_step: int = 0
    partial: dict | None = None
    best_psnr: float = -math.inf
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingRun:
    """What the loop works with, made once by ``set_up``."""

    config: RunConfig
    procs: Processes
    files: RunFiles
    reporter: Reporter
    data: TrainingData
    nets: Networks


def set_up(procs: Processes, data_dir: Path, out_dir: Path, config: RunConfig, reporter: Reporter,
           resume: bool, overwrite: bool) -> TrainingRun:
    """Refuse an output folder that holds another run, then the data and networks."""
    files = RunFiles(out_dir)
    if procs.is_main:
        files.refuse_existing_run(resume, overwrite)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    data = TrainingData(data_dir, config, procs)
    reporter.data(data)
    return TrainingRun(config, procs, files, reporter, data, Networks(config, procs, data.steps_per_epoch))


def restore(run: TrainingRun, resume: bool, overwrite: bool) -> Progress:
    """The progress to continue from: OUT/last.pt's with ``resume`` (rank 0 reads it and sends it
    to the others), else a fresh start; its weights, optimiser and RNG states are loaded."""
    main, device = run.procs.is_main, run.procs.device
    state = None
    if resume:
        if main:
            checkpoint.remove_partial_writes(run.files.folder)
            state = (checkpoint.load_for_resume(run.files.last, run.config, run.data.facts, run.data.teacher)
                     if run.files.last.is_file() else None)
        state = distributed.from_main(state, run.procs)
    progress = Progress()
    if state is not None:
        for key, part in run.nets.parts.items():
            part.load_state_dict(state[key])
        progress = Progress(state["epoch"] + 1, state["step"], state["partial"], state["best_psnr"], state["history"])
        # Nothing after initialisation draws from these today; restored so that any random op
        # added later (dropout, noise) resumes exactly too.
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if main:
        run.files.start(progress.history, overwrite)
        if state is not None:
            run.reporter.resumed(run.files.last, progress)
    run.nets.wrap(run.procs)
    return progress


@dataclass
class EpochTally:
    """An epoch's loss sums (each loss times its batch's images), images and start time."""

    sums: dict[str, float]
    images: int
    started: float

    @classmethod
    def start(cls, so_far: dict | None) -> EpochTally:
        """A new epoch's tally, or one continuing ``so_far`` (``summed``'s result in a checkpoint)."""
        so_far = so_far or {"sums": {}, "images": 0, "seconds": 0.0}
        # Sums a resumed partial epoch lacks (a loss added since it was written) start at zero.
        return cls({**dict.fromkeys(LOSS_SUMS, 0.0), **so_far["sums"]}, so_far["images"],
                   time.perf_counter() - so_far["seconds"])

    def add(self, losses: dict[str, torch.Tensor], images: int) -> None:
        for key, value in losses.items():
            self.sums[key] += value.item() * images

    def summed(self, procs: Processes) -> dict:
        """The sums and images of all processes so far (each must call this at the same point) and
        the seconds: what a checkpoint's ``partial`` keeps."""
        *totals, images = distributed.sum_over_processes([*self.sums.values(), self.images], procs)
        return {"sums": dict(zip(self.sums, totals)), "images": int(images),
                "seconds": time.perf_counter() - self.started}


def train_step(nets: Networks, batch: Batch, adversarial_now: bool, tally: EpochTally) -> torch.Tensor:
    """One optimiser step of the estimator (conditioned), the discriminator (adversarial epochs)
    and the generator, their losses added to ``tally``; returns G's loss (the estimator's when it
    trains alone)."""
    lr, hr, images = batch.lr.to(nets.device), batch.hr.to(nets.device), len(batch.lr)
    level = None
    if nets.estimator is not None:  # learns to read the level that the generator is told
        level = batch.level.to(nets.device)
        target = level
        if nets.reading_teacher is not None:
            with torch.no_grad():
                target = nets.reading_teacher(batch.aligned.to(nets.device))
        e_loss = F.mse_loss(nets.parallel_e(lr), target)
        nets.opt_e.zero_grad(set_to_none=True)
        e_loss.backward()
        nets.opt_e.step()
        tally.add({"estimator": e_loss}, images)
    # Held still, the generator has nothing to compute.
    loss = e_loss if nets.cfg.estimator_only else generator_step(nets, batch, lr, hr, level, adversarial_now, tally)
    if nets.schedule is not None:
        nets.schedule_step()
    tally.images += images
    return loss


def generator_step(nets: Networks, batch: Batch, lr: torch.Tensor, hr: torch.Tensor, level: torch.Tensor | None,
                   adversarial_now: bool, tally: EpochTally) -> torch.Tensor:
    """The discriminator's step (adversarial epochs) and the generator's, their losses added to
    ``tally``; returns G's loss."""
    images = len(lr)
    fake = nets.parallel_g(lr, level) if nets.estimator is not None else nets.parallel_g(lr)

    fake_logits = None
    if adversarial_now:  # discriminator step: real -> 1, generated -> 0
        d_loss = bce(nets.parallel_d(hr), 1.0) + bce(nets.parallel_d(fake.detach()), 0.0)
        nets.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        nets.opt_d.step()
        tally.add({"d_loss": d_loss}, images)
        # D only passes gradients through to G here: frozen, and bypassing its DDP
        # wrapper, so no D weight gradient is computed or averaged for nothing.
        nets.discriminator.requires_grad_(False)
        fake_logits = nets.discriminator(fake)
        nets.discriminator.requires_grad_(True)
    taught = batch.taught.to(nets.device) if batch.taught is not None else None
    g_loss, terms = generator_loss(nets.cfg, fake, hr, taught, fake_logits)
    nets.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    nets.opt_g.step()
    tally.add({"g_loss": g_loss, **terms}, images)
    return g_loss


def snapshot(run: TrainingRun, progress: Progress, epoch: int, step: int, validation: dict | None,
             partial: dict | None) -> dict:
    """Everything a resumed run needs to go on exactly from ``step`` steps after epoch ``epoch``."""
    teacher = run.data.teacher
    return {"config": run.config.to_dict(), "epoch": epoch, "step": step, "data": run.data.facts,
            **({"teacher": teacher} if teacher else {}),
            **{key: part.state_dict() for key, part in run.nets.parts.items()},
            "validation": validation, "best_psnr": progress.best_psnr, "history": progress.history,
            "partial": partial, "rng": rng_states(run.procs.device)}


def end_of_epoch(run: TrainingRun, progress: Progress, epoch: int, adversarial_now: bool, tally: EpochTally) -> None:
    """Sum the epoch's losses over processes; then on rank 0: validate, append the metrics line,
    write the checkpoints and report."""
    totals = tally.summed(run.procs)
    if not run.procs.is_main:
        return
    cfg, nets = run.config.train, run.nets
    validation, simulated = validate(run, adversarial_now)
    if cfg.estimator_only:  # the generator had no training loss
        logged, training = {"estimator"}, nets.opt_e
    else:
        logged = {"g_loss", "content", *(("distill",) if cfg.teacher else ()),
                  *(("adversarial", "d_loss") if adversarial_now else ()),
                  *(("estimator",) if nets.estimator is not None else ())}
        training = nets.opt_g
    record = {"epoch": epoch, "adversarial": adversarial_now, "lr": training.param_groups[0]["lr"],
              "train": {key: total / totals["images"] for key, total in totals["sums"].items() if key in logged},
              "validation": validation,
              **({"validation_int8_simulated": {k: simulated[k] for k in ("psnr", "ssim")}} if cfg.qat else {}),
              "baselines": run.data.baselines, "seconds": round(time.perf_counter() - tally.started, 2)}
    progress.history.append(record)
    run.files.append_metrics(record)
    save_epoch_checkpoints(run, progress, epoch, validation, simulated)
    run.reporter.epoch(record)


def validate(run: TrainingRun, adversarial_now: bool) -> tuple[dict, dict | None]:
    """``evaluate``'s scores of the float network on the validation faces (and their degraded draw)
    and, with qat, those of the simulated int8 network."""
    data, nets = run.data, run.nets
    float_generator = qat.strip(nets.generator) if run.config.train.qat else nets.generator
    validation = evaluate(float_generator, nets.discriminator if adversarial_now else None, data.validation,
                          run.config, data.teacher_validation, nets.estimator)
    if data.degraded_validation is not None:
        validation["degraded"] = degraded_scores(float_generator, nets.estimator, *data.degraded_validation,
                                                 run.config)
    simulated = (evaluate(nets.generator, None, data.validation, run.config, estimator=nets.estimator)
                 if run.config.train.qat else None)
    return validation, simulated


def save_epoch_checkpoints(run: TrainingRun, progress: Progress, epoch: int, validation: dict,
                           simulated: dict | None) -> None:
    """OUT/last.pt, and OUT/best.pt when the score best.pt is chosen on improved: the simulated int8
    network's PSNR with qat, else the float one's; robust models average clean and degraded faces."""
    chosen_on = simulated["psnr"] if simulated is not None else validation["psnr"]
    if "degraded" in validation:
        chosen_on = (chosen_on + validation["degraded"]["psnr"]) / 2
    improved = chosen_on > progress.best_psnr
    progress.best_psnr = max(progress.best_psnr, chosen_on)
    latest = snapshot(run, progress, epoch, 0, {"psnr": validation["psnr"], "ssim": validation["ssim"]}, None)
    if improved:  # best.pt before last.pt: a kill between them redoes this epoch and both writes
        checkpoint.save(run.files.best, latest)
    checkpoint.save(run.files.last, latest)


class Reporter:
    """Everything a run tells its user, from rank 0 alone: lines through ``report`` and, on a
    terminal, a step counter on stderr."""

    def __init__(self, report: Callable[[str], None], procs: Processes, epochs: int):
        self.report, self.procs, self.epochs = report, procs, epochs
        self.show_steps = procs.is_main and sys.stderr.isatty()

    def data(self, data: TrainingData) -> None:
        """The splits, extra images and validation baselines, and the processes training."""
        if not self.procs.is_main:
            return
        baselines, facts = data.baselines, data.facts
        self.report(f"data {facts['folder']}: " + ", ".join(f"{n} {k}" for k, n in facts["images"].items())
                    + (f" + {data.images.crops} crops of {sum(data.extra_counts.values())} extra images per epoch"
                       if data.extra_counts else "")
                    + f"; validation bicubic {baselines['bicubic']['psnr']:.2f} dB, "
                    f"lanczos {baselines['lanczos']['psnr']:.2f} dB"
                    + (f", degraded lanczos {baselines['degraded_lanczos']['psnr']:.2f} dB" if data.degradation else "")
                    + (f"; {self.procs.world_size} processes on {self.procs.device.type}"
                       if self.procs.distributed else ""))

    def resumed(self, path: Path, progress: Progress) -> None:
        done = progress.start_epoch - 1
        self.report(f"resumed from {path}: epoch {done} complete"
                    + (f", {progress.start_step} steps into epoch {done + 1}" if progress.start_step else ""))

    def step(self, epoch: int, step: int, steps_per_epoch: int, g_loss: torch.Tensor) -> None:
        if self.show_steps:
            print(f"\repoch {epoch}/{self.epochs} step {step + 1}/{steps_per_epoch} g_loss {g_loss.item():.5f}",
                  end="", file=sys.stderr, flush=True)

    def steps_done(self) -> None:
        if self.show_steps:
            print("\r", end="", file=sys.stderr)

    def epoch(self, record: dict) -> None:
        """The epoch's metrics line, from its record."""
        validation = record["validation"]
        d_text = f" D acc {validation['discriminator']['accuracy']:.2f}" if "discriminator" in validation else ""
        degraded = validation.get("degraded", {})
        simulated = record.get("validation_int8_simulated")
        loss, value = next((key, record["train"][key]) for key in ("g_loss", "estimator") if key in record["train"])
        self.report(f"epoch {record['epoch']}/{self.epochs}  train {loss} {value:.5f}  "
                    f"val g_loss {validation['g_loss']:.5f}  val PSNR {validation['psnr']:.2f} dB "
                    f"SSIM {validation['ssim']:.4f}{d_text}"
                    + (f"  degraded {degraded['psnr']:.2f} dB" if degraded else "")
                    + (f" (level error {degraded['level_error']:.3f})" if "level_error" in degraded else "")
                    + (f"  simulated int8 {simulated['psnr']:.2f} dB" if simulated else "")
                    + f"  ({record['seconds']:.0f}s)")
