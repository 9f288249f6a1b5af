"""The GAN training loop, top to bottom: processes, data, networks, resume, epochs, evaluation.

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

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from enhance_edge.dataset import PairSet, load_pairs
from enhance_edge.degradation import DegradationConfig
from enhance_edge.errors import CheckpointError, DataError
from enhance_edge.processing import from_unit_float, to_unit_float
from enhance_edge.protocol import interpolate, score

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
# Training pairs without a degradation config: PROTOCOL.md's clean bicubic halves.
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


def content_loss(kind: str, fake: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fake, hr) if kind == "mse" else F.l1_loss(fake, hr)


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
    """The loop itself, as one of ``procs``."""
    cfg = config.train
    device, main = procs.device, procs.is_main  # rank 0 alone logs, evaluates and writes
    last_path, best_path, metrics_path = (out_dir / name for name in RUN_FILES)
    if main:
        existing = [name for name in RUN_FILES if (out_dir / name).exists()]
        if existing and not resume and not overwrite:
            raise CheckpointError(f"{out_dir} already holds a run ({', '.join(existing)}): resume it (--resume), "
                                  f"replace it (--overwrite) or train into another folder")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    batch = distributed.local_batch_size(cfg.batch_size, procs)  # this process's share of a step

    # Data: every process reads the folder once into memory and trains on its shard of each batch.
    scale, degradation = config.generator.scale, config.degradation
    pairs = load_pairs(data_dir, cfg.hr_size, cfg.seed, cfg.max_images, scale)
    if cfg.extra_data and cfg.hr_size is None:
        raise DataError("extra training images are cropped to the HR size: give one (not native size)")
    extra, extra_counts = extra_images(cfg.extra_data, cfg.hr_size) if cfg.extra_data else ([], {})
    # Fixed pairs, made once, unless LRs are drawn per epoch (degraded) or extra crops join in.
    fixed = degradation is None and not extra
    lr_train, hr_train = pair_tensors(pairs["train"])
    training_images = TrainingImages(pairs["train"].hr, extra, cfg.extra_crops, cfg.seed)
    data_facts = {"folder": data_dir.resolve().name, "hr_size": cfg.hr_size,
                  "images": {name: len(p) for name, p in pairs.items()},
                  **({"extra": extra_counts, "extra_crops_per_epoch": training_images.crops} if extra else {})}
    if distributed.from_main(data_facts, procs) != data_facts:  # e.g. a machine with a partial copy
        raise DataError(f"rank {procs.rank} reads other data than rank 0: {data_facts}")
    teacher = teacher_validation = teacher_model = None
    if cfg.teacher:  # fixed pairs: targets for each image as it is and, with hflip, mirrored, made once
        teacher = teacher_file(cfg.teacher)  # what the name stands for now, kept in the checkpoints
        teacher_model = Teacher(cfg.teacher, scale, cfg.threads)
        if fixed:
            teacher_train = teacher_model(lr_train)
            teacher_mirrored = teacher_model(lr_train.flip(-1)) if cfg.hflip else None
        if main:  # validation's g_loss has the distillation term too
            teacher_validation = teacher_model(pair_tensors(pairs["validation"])[0])
    order = distributed.epoch_order(len(training_images), procs, cfg.seed)
    steps_per_epoch = math.ceil(order.num_samples / batch)
    baselines = interpolation_scores(pairs["validation"], scale) if main else {}
    degraded_validation = None
    if main and degradation is not None:  # one fixed draw of the validation faces, scored each epoch
        hrs = pairs["validation"].hr
        lrs, levels = degraded_lrs(hrs, np.arange(len(hrs)), degradation, cfg.seed, VALIDATION_STREAM, scale)
        degraded_validation = (PairSet(pairs["validation"].names, hrs, lrs), torch.from_numpy(levels))
        baselines["degraded_lanczos"] = interpolation_scores(degraded_validation[0], scale)["lanczos"]
    if main:
        report(f"data {data_facts['folder']}: " + ", ".join(f"{n} {k}" for k, n in data_facts["images"].items())
               + (f" + {training_images.crops} crops of {sum(extra_counts.values())} extra images per epoch" if extra else "")
               + f"; validation bicubic {baselines['bicubic']['psnr']:.2f} dB, "
               f"lanczos {baselines['lanczos']['psnr']:.2f} dB"
               + (f", degraded lanczos {baselines['degraded_lanczos']['psnr']:.2f} dB" if degradation else "")
               + (f"; {procs.world_size} processes on {device.type}" if procs.distributed else ""))

    # Networks, optimisers and schedules, identical in every process.
    # channels_last lets oneDNN pick its fast CPU convolutions: a batch-32 training step of
    # the report's generator on 1 thread went from 2.0 s to 1.05 s.
    torch.manual_seed(cfg.seed)
    generator = Generator(config.generator)
    estimator = DegradationEstimator(config.estimator) if config.generator.condition == "degradation" else None
    if cfg.init_from:  # SRGAN's warm start: begin from a generator trained on the content loss
        warm, estimator_state = load_warm_start(cfg.init_from, config.generator)
        generator.load_state_dict(warm.state_dict())
        if estimator is not None and estimator_state is not None:
            estimator.load_state_dict(estimator_state)
    if estimator is not None:
        estimator = estimator.to(device, memory_format=torch.channels_last)
    if cfg.qat:
        qat.prepare(generator)
    generator = generator.to(device, memory_format=torch.channels_last)
    discriminator = (distributed.sync_batch_norm(Discriminator(config.discriminator), procs)
                     .to(device, memory_format=torch.channels_last) if cfg.adversarial else None)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas) if discriminator else None
    opt_e = torch.optim.Adam(estimator.parameters(), lr=ESTIMATOR_LR) if estimator is not None else None
    parts = {"generator": generator, "optimizer_g": opt_g}  # what a checkpoint keeps the state of
    if discriminator is not None:
        parts.update(discriminator=discriminator, optimizer_d=opt_d)
    if estimator is not None:
        parts.update(estimator=estimator, optimizer_e=opt_e)
    schedule = None  # one clock for G and D, ticking also while D waits out the warm-up epochs
    if cfg.lr_schedule == "cosine":
        schedule = parts["schedule"] = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, cfg.epochs * steps_per_epoch)

    # Progress, continued from OUT/last.pt with resume; rank 0 reads it and sends it to the others.
    epoch_done, step_done, best_psnr, history, partial = 0, 0, -math.inf, [], None
    state = None
    if resume:
        if main:
            checkpoint.remove_partial_writes(out_dir)
            state = (checkpoint.load_for_resume(last_path, config, data_facts, teacher) if last_path.is_file()
                     else None)
        state = distributed.from_main(state, procs)
    if state is not None:
        for key, part in parts.items():
            part.load_state_dict(state[key])
        epoch_done, step_done, best_psnr = state["epoch"], state["step"], state["best_psnr"]
        history, partial = state["history"], state["partial"]  # partial: the running epoch's sums so far
        # Nothing after initialisation draws from these today; restored so that any random op
        # added later (dropout, noise) resumes exactly too.
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if main:  # one line per completed epoch, also after a kill between a line and its checkpoint
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
        if overwrite:  # the replaced run's checkpoints go with its metrics
            for path in (last_path, best_path):
                path.unlink(missing_ok=True)
        metrics_path.write_text("".join(json.dumps(record) + "\n" for record in history))
        if state is not None:
            report(f"resumed from {last_path}: epoch {epoch_done} complete"
                   + (f", {step_done} steps into epoch {epoch_done + 1}" if step_done else ""))

    def snapshot(epoch: int, step: int, validation: dict | None, epoch_so_far: dict | None) -> dict:
        """Everything a resumed run needs to go on exactly from here."""
        return {"config": config.to_dict(), "epoch": epoch, "step": step, "data": data_facts,
                **({"teacher": teacher} if teacher else {}), **{key: part.state_dict() for key, part in parts.items()},
                "validation": validation, "best_psnr": best_psnr, "history": history, "partial": epoch_so_far,
                "rng": rng_states(device)}

    # DistributedDataParallel averages gradients over processes in backward (the bare
    # networks in a single process).
    parallel_g = distributed.data_parallel(generator, procs)
    parallel_d = distributed.data_parallel(discriminator, procs) if discriminator is not None else None
    parallel_e = distributed.data_parallel(estimator, procs) if estimator is not None else None
    show_steps = main and sys.stderr.isatty()
    global_step = epoch_done * steps_per_epoch + step_done

    for epoch in range(epoch_done + 1, cfg.epochs + 1):
        first_step = step_done if epoch == epoch_done + 1 else 0
        so_far = partial if first_step and main else {"sums": {}, "images": 0, "seconds": 0.0}
        # Sums a resumed partial epoch lacks (a loss added since it was written) start at zero.
        sums, images = {**dict.fromkeys(LOSS_SUMS, 0.0), **so_far["sums"]}, so_far["images"]
        started = time.perf_counter() - so_far["seconds"]
        adversarial_now = discriminator is not None and epoch > cfg.warmup_epochs
        for network in (generator, discriminator, estimator):
            if network is not None:
                network.train()
        order.set_epoch(epoch)
        indices = torch.tensor(list(order))
        if cfg.hflip:  # one coin per image and epoch, whichever process gets the image
            flips = torch.from_numpy(np.random.default_rng([cfg.seed % 2**64, epoch]).random(len(training_images)) < 0.5)
        hr_epoch = None if fixed else training_images.epoch(epoch)
        for step in range(first_step, steps_per_epoch):
            index = indices[step * batch:(step + 1) * batch]
            level = None
            if fixed:
                lr, hr = lr_train[index], hr_train[index]
                taught = teacher_train[index] if cfg.teacher else None
                if cfg.hflip:
                    flip = flips[index][:, None, None, None]
                    lr, hr = torch.where(flip, lr.flip(-1), lr), torch.where(flip, hr.flip(-1), hr)
                    if cfg.teacher:
                        taught = torch.where(flip, teacher_mirrored[index], taught)
            else:  # LRs drawn from the (flipped) HRs for this epoch
                hr_pixels = hr_epoch[index.numpy()]
                if cfg.hflip:
                    hr_pixels = np.where(flips[index].numpy()[:, None, None], hr_pixels[..., ::-1], hr_pixels)
                lr_pixels, levels = degraded_lrs(hr_pixels, index.numpy(), degradation or CLEAN, cfg.seed, epoch, scale)
                lr, level = as_tensors(lr_pixels, levels)
                hr = torch.from_numpy(to_unit_float(hr_pixels)[:, None])
                taught = teacher_model(lr, level) if cfg.teacher else None
            lr, hr = lr.to(device), hr.to(device)
            if estimator is not None:  # learns to read the level that the generator is told
                level = level.to(device)
                e_loss = F.mse_loss(parallel_e(lr), level)
                opt_e.zero_grad(set_to_none=True)
                e_loss.backward()
                opt_e.step()
                sums["estimator"] += e_loss.item() * len(index)
            fake = parallel_g(lr, level) if estimator is not None else parallel_g(lr)

            if adversarial_now:  # discriminator step: real -> 1, generated -> 0
                d_loss = bce(parallel_d(hr), 1.0) + bce(parallel_d(fake.detach()), 0.0)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                sums["d_loss"] += d_loss.item() * len(index)

            fake_logits = None
            if adversarial_now:
                # D only passes gradients through to G here: frozen, and bypassing its DDP
                # wrapper, so no D weight gradient is computed or averaged for nothing.
                discriminator.requires_grad_(False)
                fake_logits = discriminator(fake)
                discriminator.requires_grad_(True)
            g_loss, terms = generator_loss(cfg, fake, hr, taught.to(device) if cfg.teacher else None, fake_logits)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if schedule is not None:
                schedule.step()
                for group in opt_d.param_groups if opt_d else ():
                    group["lr"] = opt_g.param_groups[0]["lr"]
                for group in opt_e.param_groups if opt_e else ():  # the same cosine, from its own rate
                    group["lr"] = ESTIMATOR_LR * opt_g.param_groups[0]["lr"] / cfg.lr
            for key, value in {"g_loss": g_loss, **terms}.items():
                sums[key] += value.item() * len(index)
            images += len(index)
            global_step += 1
            if show_steps:
                print(f"\repoch {epoch}/{cfg.epochs} step {step + 1}/{steps_per_epoch} g_loss {g_loss.item():.5f}",
                      end="", file=sys.stderr, flush=True)
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                *totals, total_images = distributed.sum_over_processes([*sums.values(), images], procs)
                if main:
                    checkpoint.save(last_path, snapshot(epoch - 1, step + 1, None, {
                        "sums": dict(zip(sums, totals)), "images": int(total_images),
                        "seconds": time.perf_counter() - started}))
        if show_steps:
            print("\r", end="", file=sys.stderr)

        *totals, total_images = distributed.sum_over_processes([*sums.values(), images], procs)
        if not main:
            continue
        # Validation scores are always the float network's; with qat the simulated int8 network
        # is scored too, and it is what best.pt is chosen on.
        float_generator = qat.strip(generator) if cfg.qat else generator
        validation = evaluate(float_generator, discriminator if adversarial_now else None, pairs["validation"],
                              config, teacher_validation, estimator)
        if degraded_validation is not None:
            validation["degraded"] = degraded_scores(float_generator, estimator, *degraded_validation, config)
        simulated = evaluate(generator, None, pairs["validation"], config, estimator=estimator) if cfg.qat else None
        logged = {"g_loss", "content", *(("distill",) if cfg.teacher else ()),
                  *(("adversarial", "d_loss") if adversarial_now else ()), *(("estimator",) if estimator else ())}
        train_metrics = {key: total / total_images for key, total in zip(sums, totals) if key in logged}
        record = {"epoch": epoch, "adversarial": adversarial_now, "lr": opt_g.param_groups[0]["lr"],
                  "train": train_metrics, "validation": validation,
                  **({"validation_int8_simulated": {k: simulated[k] for k in ("psnr", "ssim")}} if cfg.qat else {}),
                  "baselines": baselines, "seconds": round(time.perf_counter() - started, 2)}
        history.append(record)
        with metrics_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

        # Robust models are chosen on clean and degraded faces alike.
        chosen_on = simulated["psnr"] if cfg.qat else validation["psnr"]
        if degraded_validation is not None:
            chosen_on = (chosen_on + validation["degraded"]["psnr"]) / 2
        improved = chosen_on > best_psnr
        best_psnr = max(best_psnr, chosen_on)
        latest = snapshot(epoch, 0, {"psnr": validation["psnr"], "ssim": validation["ssim"]}, None)
        if improved:  # best.pt before last.pt: a kill between them redoes this epoch and both writes
            checkpoint.save(best_path, latest)
        checkpoint.save(last_path, latest)
        d_text = (f" D acc {validation['discriminator']['accuracy']:.2f}" if "discriminator" in validation else "")
        report(f"epoch {epoch}/{cfg.epochs}  train g_loss {train_metrics['g_loss']:.5f}  "
               f"val g_loss {validation['g_loss']:.5f}  val PSNR {validation['psnr']:.2f} dB "
               f"SSIM {validation['ssim']:.4f}{d_text}"
               + (f"  degraded {validation['degraded']['psnr']:.2f} dB" if degraded_validation is not None else "")
               + (f" (level error "
                  f"{validation['degraded']['level_error']:.3f})" if estimator is not None else "")
               + (f"  simulated int8 {simulated['psnr']:.2f} dB" if cfg.qat else "") + f"  ({record['seconds']:.0f}s)")
    return best_path if main else None
