"""The export commands, `enhance-edge export` and `enhance-edge quantize`, loaded by the enhance-edge
group (enhance_edge/apps/cli.py) when they run or a help lists them. Their defaults come from the runtime's
enhance_edge.core.gates, so this module imports neither PyTorch nor onnx at start.
"""

from __future__ import annotations

from pathlib import Path

import click

from enhance_edge.apps.cli_support import reports_errors, require_extra
from enhance_edge.core.gates import PARITY_TOLERANCE

from ..train.config import INT8_WEIGHT_BITS
from .gate import MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write (only written once the parity check passes).")
@click.option("--tolerance", type=float, default=PARITY_TOLERANCE, show_default=True,
              help="Largest allowed |ONNX - PyTorch| on [0, 1] values.")
@click.option("--score-on", "score_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Face folder whose test split is scored (docs/evaluation.md; split with the "
                                 "checkpoint's own seed, at its HR size); the scores go into the model's "
                                 "metadata (key 'test'). If scoring fails, nothing is written.")
@click.option("--calibrate-on", "calibration_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="For a model conditioned on the degradation level: face folder whose validation "
                                 "split (the run's own) chooses how 'auto' turns the estimator's reading into a "
                                 "strength (a reading below a threshold is a clean image; a gain above it).")
@click.option("--estimator-from", default=None, metavar="NAME|PATH",
              help="For a model conditioned on the degradation level: embed the estimator of this bundled model, "
                   "fp32 model file or checkpoint instead of the checkpoint's own. A reading depends on the image "
                   "alone, so an estimator trained beside another generator of the same scale serves; choose its "
                   "calibration with --calibrate-on.")
@reports_errors
def export(checkpoint, output, tolerance, score_dir, calibration_dir, estimator_from):
    """Export a training checkpoint's generator to one self-contained ONNX file.

    The model gets dynamic batch, height and width, its re-parameterized convolutions
    folded into plain 3x3 ones, is simplified with onnxsim and carries its scale, channels,
    value range, layout, config and training facts as metadata. A generator conditioned on
    the degradation level carries its estimator inside the graph: fed only `input`, the
    file estimates the strength itself (docs/onnx-contract.md). onnxruntime and PyTorch are
    then compared on two input sizes (one odd, one batch of 2), at given and estimated
    strengths; a difference above --tolerance is an error and nothing is written.
    """
    require_extra("export", "train")
    from .onnx_export import export_checkpoint

    target = output
    if score_dir is not None:  # exported and scored in scratch space first: a failed scoring leaves no OUTPUT
        import tempfile

        scratch = click.get_current_context().with_resource(tempfile.TemporaryDirectory(prefix="enhance-edge-"))
        target = Path(scratch) / output.name
    results = export_checkpoint(checkpoint, target, tolerance, calibration_dir, click.echo, estimator_from)
    for result in results:
        strength = "" if result["strength"] == "none" else f" at strength {result['strength']}"
        click.echo(f"parity {'x'.join(map(str, result['shape']))}{strength}: "
                   f"max |onnx - torch| = {result['max_abs_diff']:.2e}")
    if score_dir is not None:
        from .onnx_export import record_test_scores

        scores = record_test_scores(target, score_dir, output)
        click.echo(f"test split ({scores['images']} images): model {scores['model']['psnr']:.2f} dB, "
                   f"lanczos {scores['lanczos']['psnr']:.2f} dB, bicubic {scores['bicubic']['psnr']:.2f} dB")
    click.echo(f"wrote {output} ({output.stat().st_size / 1024:.0f} KiB)")


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="int8 model to write (default: MODEL-int8.onnx beside MODEL, where `upscale --precision` "
                   "looks for it). Only written once it passes the PSNR check.")
@click.option("--calibration", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Face folder; its validation split (docs/evaluation.md: yaleB29..33 for the Yale faces) "
                   "calibrates the model and checks its PSNR.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["minmax", "entropy", "percentile"]),
              help="Calibration methods to try (repeatable; default: all).")
@click.option("--activations", multiple=True, type=click.Choice(["uint8", "int8", "uint16"]),
              help="Activation types to try (repeatable; default: all). uint16 is measured for reference only "
                   "(no 16-bit kernels: it runs in float) and never kept, so give uint8 or int8 too.")
@click.option("--weights", multiple=True, type=click.Choice(["int8", "uint8"]),
              help="Weight types to try (repeatable; default: all). Weights are always per channel.")
@click.option("--silu", multiple=True, type=click.Choice(["int8", "float"]),
              help="Quantize SiLU's Sigmoid and Mul (int8) or leave them in float (repeatable).")
@click.option("--output-layers", "output", multiple=True, type=click.Choice(["float", "int8"]),
              help="Keep the image-space output layers (<= scale^2 channels: last conv, bicubic skip, "
                   "pixel shuffle) in float, or quantize them too (repeatable).")
@click.option("--calibration-set", "calibration_sets", multiple=True, type=click.Choice(["faces", "mix"]),
              help="Calibrate on the validation faces alone, or on them plus natural images, gradients, high-key, "
                   "low-key and text (mix) (repeatable).")
@click.option("--residual", multiple=True, type=click.Choice(["int8", "float"]),
              help="Quantize the residual blocks' adds (int8) or keep them in float (repeatable).")
@click.option("--output-convs", multiple=True, type=click.IntRange(min=1),
              help="How many convolutions, counted back from the output, float output layers keep in float "
                   "(repeatable; default 1: the last one on each path; 2 adds the body's last convolution, "
                   "one layer's multiply-adds in float for less rounding in the output).")
@click.option("--weight-bits", multiple=True, type=click.Choice([str(bits) for bits in INT8_WEIGHT_BITS]),
              help="Bits of the int8 weights to try (repeatable; default 8). 7 (-64..64) is what x86 CPUs without "
                   "VNNI (AVX2) compute exactly, so `--precision auto` runs the file there too; best on a model "
                   "trained with `train --qat --qat-weight-bits 7`.")
@click.option("--min-psnr-vs-fp32", "min_psnr_vs_fp32_db", type=float, default=MIN_PSNR_VS_FP32_DB,
              show_default=True,
              help="Least PSNR (dB) of the int8 output against the fp32 output on every gate image (45: an rms "
                   "difference of 1.4 levels); below it nothing is written.")
@click.option("--max-loss-db", type=click.FloatRange(min=0), default=MAX_MEAN_LOSS_DB, show_default=True,
              help="Largest mean PSNR loss of int8 against fp32, both scored against the ground truth, on each "
                   "natural gate set (validation faces, the astronaut photo, LFW faces); above it nothing is "
                   "written.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads for timing recipes.")
@reports_errors
def quantize(model, output_path, data_dir, methods, activations, weights, silu, output, calibration_sets, residual,
             output_convs, weight_bits, min_psnr_vs_fp32_db, max_loss_db, threads):
    """Quantize an fp32 model to int8 (onnxruntime static quantization, QDQ, per-channel weights).

    With no recipe option, every calibration method and activation/weight type is tried
    (SiLU int8, output layers float), plus SiLU in float, output layers in int8, and the
    recipes meant for every kind of content (calibrated on the mix, SiLU in float, residual
    adds int8 or float, output layers one or two convolutions deep); with some, every
    combination of them (unset ones: all types and methods, SiLU int8, output layers float,
    one convolution deep). Each recipe is scored on validation PSNR and latency (256x256), and
    the graph onnxruntime runs is checked for ops left in float. Kept: among recipes that pass
    the gate, those within 10% of the fastest, then the best validation PSNR (the fastest of those
    within 0.01 dB of it). The comparison
    is stored in the int8 model's metadata (`enhance-edge bench` prints it).
    The gate, printed as a table for every recipe: on every gate image (faces of the
    validation subjects, a photo, LFW faces, gradients, high-key, low-key and text images, and for
    a conditioned model degraded copies of each; none used to calibrate) the int8 output within
    --min-psnr-vs-fp32 of the fp32 output, and on the natural sets a mean loss against the ground
    truth within --max-loss-db. int8 is computed there as exact int8 arithmetic computes it (the
    QDQ model in float), so every machine gates the same. The kept file runs every image in int8
    wherever `--precision auto` chooses int8.
    """
    require_extra("quantization", "train")
    from enhance_edge.core.model import int8_model_path

    from .quantize import default_search, describe_gate, quantize_model, require_keepable, search_space

    chosen = {"calibrations": methods, "activations": activations, "weights": weights, "silu": silu, "output": output,
              "calibration_sets": calibration_sets, "residual": residual, "output_convs": output_convs,
              "weight_bits": tuple(int(bits) for bits in weight_bits)}
    recipes = (search_space(**{key: values for key, values in chosen.items() if values})
               if any(chosen.values()) else default_search())
    if not recipes and weight_bits and "8" not in weight_bits and weights and "int8" not in weights:
        raise click.BadParameter(f"7 needs --weights int8 (given: {', '.join(weights)})", param_hint="--weight-bits")
    if not recipes:
        raise click.BadParameter(f"{', '.join(map(str, output_convs))}: more than 1 needs --output-layers float",
                                 param_hint="--output-convs")
    try:
        require_keepable(recipes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--activations") from None
    output_path = output_path or int8_model_path(model)
    summary = quantize_model(model, output_path, data_dir, recipes, max_loss_db=max_loss_db,
                             min_psnr_vs_fp32_db=min_psnr_vs_fp32_db, threads=threads, report=click.echo)
    validation, test = summary["validation"], summary["test"]
    click.echo(f"kept {' '.join(f'{k}={v}' for k, v in summary['recipe'].items())}: validation PSNR "
               f"{validation['int8']['psnr']:.3f} dB (fp32 {validation['fp32']['psnr']:.3f}), "
               f"{summary['speedup_at_256']:.2f}x fp32's speed at 256x256")
    if test["int8"]:
        click.echo(f"test split (reported, not used to choose): int8 {test['int8']['psnr']:.3f} dB, "
                   f"fp32 {test['fp32']['psnr']:.3f} dB")
    click.echo(f"gate of the kept recipe ({summary['scored_as']}):")
    for line in describe_gate(summary):
        click.echo(line)
    click.echo(f"wrote {output_path} ({output_path.stat().st_size / 1024:.0f} KiB)")
