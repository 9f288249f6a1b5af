"""The benchmark commands: `enhance-edge bench`, loaded by the enhance-edge group (enhance_edge/apps/cli.py)
when it runs or a help lists it, and the Pareto search of generator sizes
(`python -m enhance_edge.benchmarks.pareto`). Nothing measured is imported at start: a help needs
no onnxruntime. Both write into the current folder unless told where (--out): an installed
package's own folder is no place for results.
"""

from __future__ import annotations

from pathlib import Path

import click

from enhance_edge.apps.cli_support import CONTEXT_SETTINGS, parse_sizes, parse_threads, reports_errors, require_extra

from ..export.cli import quantize
from ..export.gate import MAX_MEAN_LOSS_DB
from . import SECTIONS
from .goals import FSRCNN_GOAL_SIZE, FSRCNN_GOAL_THREADS


@click.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="fp32 enhance-edge model (default: the bundled one).")
@click.option("--int8", "int8_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Its int8 model (default: MODEL-int8.onnx beside it).")
@click.option("--calibration", "calibration_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="First (re)make the int8 model with `quantize`'s full recipe search on this "
                                 "face folder, then benchmark it (name it with --int8 when the model is a "
                                 "bundled one: the bundled int8 file is not overwritten).")
@click.option("--max-loss-db", type=click.FloatRange(min=0), default=MAX_MEAN_LOSS_DB, show_default=True,
              help="With --calibration: the quantization's largest mean loss on a natural gate set (see `quantize`).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Face folder whose Yale test subjects (yaleB34..39) give quality and inputs "
                   "(default: data/yale_b_cropped, as `enhance-edge data yale --to data/yale_b_cropped` makes it).")
@click.option("--peers", "peers_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of OpenCV's FSRCNN/ESPCN x2 weights (default: peers; docs/benchmarks.md says where they "
                   "come from); peers that are not there are skipped and listed.")
@click.option("--sizes", default="56x46,256x256,512x512,1024x1024", show_default=True, callback=parse_sizes,
              help="Input sizes, HEIGHTxWIDTH, comma-separated (56x46: the report's faces; 512x512 at 2 threads: "
                   "where other models' latency is checked against FSRCNN x2).")
@click.option("--threads", "thread_counts", default="1,2", show_default=True, callback=parse_threads,
              help="Thread counts, comma-separated.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Faces per batch for the throughput measurement.")
@click.option("--min-time", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds of repetitions per measurement, at least.")
@click.option("--min-reps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Repetitions per measurement, at least (after 2 warm-up runs).")
@click.option("--peak-size", type=click.IntRange(min=16), default=2048, show_default=True,
              help="Side of the square matrix products that measure this machine's fp32 and int8 peaks.")
@click.option("--section", "sections", multiple=True,
              type=click.Choice(SECTIONS),
              help="Only these sections (repeatable; default: all).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Folder for results.json, RESULTS.md and latency.png (default: the current one; the published "
                   "run writes the repository's benchmarks/: --out benchmarks).")
@click.option("--compare", multiple=True, metavar="NAME|PATH",
              help="Also time and score this model with onnxruntime, as ort-LABEL (repeatable): a bundled name "
                   "gives each precision installed (LABEL NAME-fp32, NAME-int8), a file its stem. Default: the "
                   "bundled 'fast' model's installed files, if any.")
@reports_errors
def bench(model_path, int8_path, calibration_dir, max_loss_db, data_dir, peers_dir, sizes, thread_counts, batch,
          min_time, min_reps, peak_size, sections, out_dir, compare):
    """Benchmark PyTorch eager, onnxruntime fp32/int8, OpenCV DNN, OpenCV's FSRCNN/ESPCN and Pillow side by side.

    \b
    The run the project publishes (bundled models, ~15 min on 2 idle cores), from the repository:
      enhance-edge bench --min-reps 5 --min-time 1 --out benchmarks
    A fresh quantization of the bundled model, benchmarked:
      enhance-edge bench --calibration data/yale_b_cropped --int8 new-int8.onnx
    Prints a table and writes results.json, RESULTS.md and latency.png. Figures vary
    between runs and machines: compare ratios. Needs:  pip install "enhance-edge[bench]"
    """
    require_extra("benchmarking", "bench", ("onnx", "skimage"))
    from enhance_edge.core.model import bundled_model_path, int8_model_path

    from .report import screen_table, write_all
    from .run import DEFAULT_DATA_DIR, DEFAULT_PEERS_DIR, BenchConfig, compare_models, run_benchmark

    model_path = model_path or bundled_model_path(precision="fp32")
    if int8_path is None:
        int8_path = int8_model_path(model_path)
        if calibration_dir is not None and int8_path.parent.resolve() == bundled_model_path().parent.resolve():
            raise click.UsageError(f"--calibration would overwrite the bundled {str(int8_path)!r}; "
                                   "name the new int8 model with --int8 FILE")
    if calibration_dir is not None:
        ctx = click.get_current_context()
        ctx.invoke(quantize, model=model_path, output_path=int8_path, data_dir=calibration_dir, max_loss_db=max_loss_db)
    config = BenchConfig(model_path, int8_path, data_dir=data_dir or DEFAULT_DATA_DIR,
                         peers_dir=peers_dir or DEFAULT_PEERS_DIR, sizes=sizes, threads=thread_counts,
                         batch=batch, min_time_s=min_time, min_reps=min_reps, peak_n=peak_size,
                         sections=sections or SECTIONS, extra_models=compare_models(compare))
    results = run_benchmark(config, report=lambda line: click.echo(line, err=True))
    click.echo(screen_table(results))
    for path in write_all(results, out_dir):
        click.echo(f"wrote {path}")


def _one_size(ctx, param, value):
    sizes = parse_sizes(ctx, param, value)
    if len(sizes) != 1:
        raise click.BadParameter(f"expected one HEIGHTxWIDTH, got {value!r}")
    return sizes[0]


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Face folder whose validation subjects score the peers (default: data/yale_b_cropped); "
                   "without it the peers are timed but not plotted.")
@click.option("--peers", "peers_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of OpenCV's FSRCNN/ESPCN x2 weights; peers that are not there are skipped and listed.")
@click.option("--size", default="x".join(map(str, FSRCNN_GOAL_SIZE)), show_default=True, callback=_one_size,
              help="Input size, HEIGHTxWIDTH.")
@click.option("--threads", type=click.IntRange(min=1), default=FSRCNN_GOAL_THREADS, show_default=True)
@click.option("--min-time", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds of repetitions per measurement, at least.")
@click.option("--min-reps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Repetitions per measurement, at least (after 2 warm-up runs).")
@click.option("--out", "png", type=click.Path(dir_okay=False, path_type=Path), default=Path("pareto.png"),
              show_default=True, help="The plot (PNG).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The rows (default: the plot's path with .json).")
@reports_errors
def pareto(models, data_dir, peers_dir, size, threads, min_time, min_reps, png, json_path):
    """Time candidate models (fp32 and int8 of several generator sizes) and OpenCV's FSRCNN/ESPCN x2 in
    one process, and plot validation PSNR against latency with the Pareto front."""
    from .pareto import ParetoConfig, measure_candidates, write_pareto
    from .run import DEFAULT_DATA_DIR, DEFAULT_PEERS_DIR

    config = ParetoConfig(tuple(models), data_dir or DEFAULT_DATA_DIR, peers_dir or DEFAULT_PEERS_DIR, size, threads,
                          min_reps=min_reps, min_time_s=min_time)
    results = measure_candidates(config, report=lambda line: click.echo(line, err=True))
    for name, reason in results["skipped"].items():
        click.echo(f"skipped {name}: {reason}")
    for path in write_pareto(results, png, json_path or png.with_suffix(".json")):
        click.echo(f"wrote {path}")
