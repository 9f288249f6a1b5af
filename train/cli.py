"""The training commands, `enhance-edge train` and `enhance-edge plots`, loaded by the enhance-edge
group (enhance_edge/apps/cli.py) when they run or a help lists them. Importing this module needs no
PyTorch: a runtime-only install lists the commands and, when one runs, says which extra to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click

from enhance_edge.apps.cli_support import parse_range, reports_errors, require_extra
from enhance_edge.eval.degradation import DegradationConfig

from .config import (INT8_WEIGHT_BITS, BodyKind, Condition, ContentLoss, EstimatorConfig, GeneratorConfig,
                     LrSchedule, SkipPath, TrainConfig)

# The options' defaults are the configs' own: the numbers live once, in train/config.py and
# enhance_edge/eval/degradation.py (neither imports PyTorch).
GENERATOR, TRAIN, DEGRADATION, ESTIMATOR = GeneratorConfig(), TrainConfig(), DegradationConfig(), EstimatorConfig()


def _range_text(pair: tuple[float, float]) -> str:
    """(0.5, 6.0) -> "0.5,6", as --noise-sigma takes it."""
    return ",".join(f"{value:g}" for value in pair)


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of face images (recursive; one sub-folder per subject gives a subject-disjoint split).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.jsonl, last.pt and best.pt; one that already holds a run needs --resume "
                   "or --overwrite.")
@click.option("--epochs", type=int, default=TRAIN.epochs, show_default=True)
@click.option("--batch-size", type=int, default=TRAIN.batch_size, show_default=True)
@click.option("--lr", type=float, default=TRAIN.lr, show_default=True, help="Adam learning rate (G and D).")
@click.option("--lr-schedule", type=click.Choice(get_args(LrSchedule)), default=TRAIN.lr_schedule, show_default=True)
@click.option("--adversarial-weight", type=float, default=TRAIN.adversarial_weight, show_default=True,
              help="Weight of BCE(1, D(G(lr))) in the generator loss; 0 trains on the content loss alone.")
@click.option("--warmup-epochs", type=int, default=TRAIN.warmup_epochs, show_default=True,
              help="Content-loss-only epochs before the adversarial phase.")
@click.option("--init-from", default=TRAIN.init_from, metavar="NAME|PATH",
              help="Start the generator from trained weights: a checkpoint (e.g. an MSE-only run's best.pt), a "
                   "bundled model's name or an fp32 enhance-edge ONNX file. Its design must be this run's, except "
                   "that it may lack the degradation condition, have another --scale (the tail starts afresh) "
                   "or, for the 'rep' body, fewer --rep-convs (the new layers start as the identity).")
@click.option("--content-loss", type=click.Choice(get_args(ContentLoss)), default=TRAIN.content_loss, show_default=True,
              help="mse: the report's; l1; psnr: minus the mean per-image PSNR, so that clean pairs count as much "
                   "as noisy or compressed ones (the bundled models').")
@click.option("--teacher", default=TRAIN.teacher, metavar="NAME|PATH",
              help="Distil from this trained model (a bundled name such as 'default', or an ONNX file): its "
                   "outputs are a second target beside the HR faces.")
@click.option("--distill-weight", type=float, default=TRAIN.distill_weight, show_default=True,
              help="Weight of content(G(lr), teacher(lr)) in the generator loss (with --teacher).")
@click.option("--qat", is_flag=True,
              help="Quantization-aware: simulate the int8 model's rounding while training (use with --init-from "
                   "a float run, then `export` and `quantize`); best.pt is the best simulated-int8 epoch.")
@click.option("--qat-weight-bits", type=click.Choice([str(bits) for bits in INT8_WEIGHT_BITS]),
              default=str(TRAIN.qat_weight_bits),
              show_default=True,
              help="With --qat: the int8 weights' bits. 7 (-64..64) keeps every sum of two uint8 x int8 products "
                   "in 16 bits, so CPUs without VNNI (AVX2) run the int8 file exactly and `quantize "
                   "--weight-bits 7` writes it.")
@click.option("--estimator-only", is_flag=True,
              help="Train only the level estimator of the --init-from model, its generator held still, at --lr: "
                   "a new estimator for a trained conditioned model (with --degrade --condition degradation).")
@click.option("--keep-readings", is_flag=True,
              help="With --estimator-only: learn what the --init-from estimator reads from each LR with its JPEG "
                   "blocks on the image's own grid, instead of the true level, so that the estimator finds blocks "
                   "wherever they fall (a crop of a JPEG) and reads everything else as the model was calibrated on.")
@click.option("--skip", type=click.Choice(get_args(SkipPath)), default=GENERATOR.skip, show_default=True,
              help="'bicubic' adds a fixed bicubic upsampling of the input to the generator's output.")
@click.option("--channels", type=int, default=GENERATOR.channels, show_default=True, help="Generator width.")
@click.option("--blocks", type=int, default=GENERATOR.residual_blocks, show_default=True,
              help="Generator residual blocks.")
@click.option("--body", type=click.Choice(get_args(BodyKind)), default=GENERATOR.body, show_default=True,
              help="'residual': the report's residual blocks (swish). 'rep': a plain chain of --rep-convs 3x3 "
                   "convolutions with ReLU, trained with 1x1 and identity branches that fold into each 3x3 at "
                   "export: the fast family's body.")
@click.option("--rep-convs", type=click.IntRange(min=0), default=GENERATOR.rep_convs, show_default=True,
              help="3x3 convolutions of the 'rep' body (with --body rep; --blocks 0).")
@click.option("--estimator-stride", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="Stride of the level estimator's first layer (with --condition degradation); 2 costs a "
                   "quarter, for models that run it inside every call.")
@click.option("--estimator-channels", type=click.IntRange(min=1), default=ESTIMATOR.channels, show_default=True,
              help="Width of the level estimator's first layer (its inner layers are twice as wide). Another "
                   "width than --init-from's estimator starts it from scratch beside the warm-started generator.")
@click.option("--scale", type=click.IntRange(min=2), default=GENERATOR.scale, show_default=True,
              help="Upscaling factor.")
@click.option("--hflip/--no-hflip", default=TRAIN.hflip, show_default=True, help="Random horizontal flips.")
@click.option("--degrade", is_flag=True,
              help="Draw each training LR through random blur, down-scaling kernel, noise and JPEG (ranges below; "
                   "defaults cover docs/evaluation.md's range) instead of the clean bicubic half.")
@click.option("--clean-share", type=float, default=None,
              help=f"With --degrade: share of clean pairs [default: {DEGRADATION.clean_share:g}].")
@click.option("--blur-sigma", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: parse_range(c, p, v, float),
              help=f"With --degrade: Gaussian blur sigma range, HR pixels "
                   f"[default: {_range_text(DEGRADATION.blur_sigma)}].")
@click.option("--noise-sigma", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: parse_range(c, p, v, float),
              help=f"With --degrade: noise sigma range, 8-bit levels "
                   f"[default: {_range_text(DEGRADATION.noise_sigma)}].")
@click.option("--jpeg-quality", default=None, metavar="LOW,HIGH", callback=lambda c, p, v: parse_range(c, p, v, int),
              help=f"With --degrade: JPEG quality range [default: {_range_text(DEGRADATION.jpeg_quality)}].")
@click.option("--condition", type=click.Choice(get_args(Condition)), default=GENERATOR.condition, show_default=True,
              help="'degradation': the generator also takes the degradation level (the runtime's --strength) "
                   "and an estimator learns to read it from the image (needs --degrade).")
@click.option("--extra-data", "extra_data", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="More training images (repeatable): folders of photos, read as luma, cropped to the HR size. "
                   "Validation and test stay --data's.")
@click.option("--extra-crops", type=click.IntRange(min=0), default=TRAIN.extra_crops, show_default=True,
              help="Random crops of the --extra-data images per epoch.")
@click.option("--max-images", type=click.IntRange(min=1), default=TRAIN.max_images,
              help="Use at most N images per split (quick runs).")
@click.option("--seed", type=int, default=TRAIN.seed, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=TRAIN.threads,
              help="PyTorch intra-op threads (default: all cores).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=TRAIN.checkpoint_every, show_default=True,
              help="Also write OUT/last.pt every K optimiser steps (0: only at epoch ends).")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/last.pt (with the same options) if it exists, else start afresh.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run OUT holds (its last.pt, best.pt and metrics.jsonl) with a new one.")
@reports_errors
def train(data_dir, out_dir, epochs, batch_size, lr, lr_schedule, adversarial_weight, warmup_epochs, init_from,
          content_loss, teacher, distill_weight, qat, qat_weight_bits, estimator_only, keep_readings, skip, channels,
          blocks, body, rep_convs, estimator_stride, estimator_channels, scale, hflip, degrade, clean_share, blur_sigma,
          noise_sigma, jpeg_quality, condition, extra_data, extra_crops, max_images, seed, threads, checkpoint_every,
          resume, overwrite):
    """Train the generator (and discriminator) on a folder of faces.

    Defaults are the report's: 50 epochs, batch 64, Adam 2e-4 with betas (0.5, 0.9),
    G loss = MSE + 1e-3 * BCE. Each epoch appends a line to OUT/metrics.jsonl and
    writes OUT/last.pt; OUT/best.pt is the epoch with the best validation PSNR.

    \b
    A small model distilled from the bundled one, then made int8-friendly (MODEL_CARD.md, "fast"):
      enhance-edge train --data faces/ --out run/fast --channels 16 --blocks 4 --skip bicubic \\
          --adversarial-weight 0 --teacher default --lr 1e-3 --lr-schedule cosine \\
          --batch-size 32 --hflip --epochs 60
      enhance-edge train --data faces/ --out run/fast-qat --init-from run/fast/best.pt --qat \\
          --channels 16 --blocks 4 --skip bicubic --adversarial-weight 0 --teacher default \\
          --lr 1e-4 --lr-schedule cosine --batch-size 32 --hflip --epochs 10

    \b
    Several processes or machines (--batch-size stays the global batch):
      torchrun --nproc-per-node 4 --no-python enhance-edge train --data faces/ --out run/ --resume
    """
    if resume and overwrite:
        raise click.UsageError("--resume continues the run in --out and --overwrite replaces it: give one")
    require_extra("training", "train")
    from .config import RunConfig
    from .loop import train as run_training

    ranges = {"clean_share": clean_share, "blur_sigma": blur_sigma, "noise_sigma": noise_sigma,
              "jpeg_quality": jpeg_quality}
    given = {name: value for name, value in ranges.items() if value is not None}
    if given and not degrade:
        raise click.UsageError(f"--{next(iter(given)).replace('_', '-')} sets a range of --degrade: add --degrade")
    try:
        config = RunConfig(
            generator=GeneratorConfig(channels=channels, residual_blocks=blocks, skip=skip, scale=scale,
                                      condition=condition, body=body, rep_convs=rep_convs),
            train=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
                              adversarial_weight=adversarial_weight, warmup_epochs=warmup_epochs,
                              init_from=init_from, content_loss=content_loss, teacher=teacher,
                              distill_weight=distill_weight, qat=qat, qat_weight_bits=int(qat_weight_bits),
                              estimator_only=estimator_only,
                              keep_readings=keep_readings, hflip=hflip, max_images=max_images,
                              extra_data=tuple(str(folder) for folder in extra_data), extra_crops=extra_crops,
                              seed=seed, threads=threads, checkpoint_every=checkpoint_every),
            degradation=DegradationConfig(**given) if degrade else None,
            estimator=EstimatorConfig(channels=estimator_channels, first_stride=int(estimator_stride)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    best = run_training(data_dir, out_dir, config, report=lambda line: click.echo(line, err=True), resume=resume,
                        overwrite=overwrite)
    if best is not None:  # None in torchrun's other processes: rank 0 alone reports
        click.echo(f"best checkpoint: {best}")


@click.command()
@click.option("--metrics", "runs", multiple=True, required=True, metavar="LABEL=PATH",
              help="A run's metrics.jsonl with its legend label (repeatable), e.g. report=runs/report/metrics.jsonl.")
@click.option("--out", "out_dir", default="docs", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default="default", show_default=True, metavar="NAME|PATH",
              help="Model for the LR | generated | Lanczos | HR grid: a bundled name or an ONNX file.")
@click.option("--face", "faces", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A face for the grid (repeatable); skimage's astronaut is added as a face unlike Yale.")
@click.option("--before", default=None, metavar="NAME|PATH",
              help="Also draw real-photos.png: real JPEGs upscaled by Lanczos, this model and --model "
                   "(a bundled name or an ONNX file; e.g. --before fast --model default).")
@reports_errors
def plots(runs, out_dir, model, faces, before):
    """Draw the report's figures: losses, validation PSNR, discriminator scores, the face grid and,
    with --before, the real-photo comparison."""
    require_extra("plotting", "train")
    from enhance_edge.core.model import BUNDLED_MODELS, resolve_model
    from enhance_edge.core.upscaler import Upscaler

    from .plots import draw_all, plot_real_photos

    metrics = {}
    for run in runs:
        label, sep, path = run.partition("=")
        if not sep or not Path(path).is_file():
            raise click.BadParameter(f"expected LABEL=PATH to a metrics.jsonl, got {run!r}", param_hint="--metrics")
        metrics[label] = Path(path)
    # Checked before any figure is drawn. fp32 for bundled names: the figure shows the models, not one
    # CPU's int8 choice.
    compared = None if before is None else [Upscaler(name, precision="fp32" if name in BUNDLED_MODELS else "auto")
                                            for name in (before, model)]
    if compared is not None and compared[0].scale != compared[1].scale:
        raise click.BadParameter(f"{before!r} upscales x{compared[0].scale}, --model {model!r} "
                                 f"x{compared[1].scale}: compare models of one scale", param_hint="--before")
    for path in draw_all(metrics, out_dir, Upscaler(resolve_model(model)) if faces else None, list(faces)):
        click.echo(f"wrote {path}")
    if compared is not None:
        labels = [Path(name).stem for name in (before, model)]  # as evaluate --compare labels them
        click.echo(f"wrote {plot_real_photos(*compared, Path(out_dir), *labels)}")
