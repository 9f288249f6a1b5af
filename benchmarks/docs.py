"""The measured tables of README.md, docs/evaluation.md, MODEL_CARD.md and benchmarks/RESULTS.md, rendered from the
files that hold the measurements, so that a rerun that changes a number changes the docs with it.

The sources, all in the repository:

- ``docs/results/evaluate-MODEL.json``: what ``enhance-edge evaluate --data
  data/yale_b_cropped --split test --condition all --model MODEL --json`` prints, for
  MODEL ``default`` and ``fast``, ``default-x4`` (``--model default-x4 --compare default``), and the
  release 0.1 models as they scored (``release-0.1-default``, ``release-0.1-fast``,
  ``release-0.1-default-x4``; ``default-clean``, its clean-trained `default`);
- ``benchmarks/results.json``: what ``enhance-edge bench`` writes; RESULTS.md above its
  hand-written part is ``report.markdown`` of it; so for every published run in BENCH_RUNS
  (``benchmarks/avx2``: a CPU without VNNI);
- ``docs/results/bench-clean-trained.json``: the ``enhance-edge bench`` run of 2026-11-26 (AMD EPYC
  Zen 4, AVX-512 VNNI) that measured the clean-trained `default` and `fast` and their int8 files
  (now `default-clean.onnx` and `fast-clean.onnx`; those int8 files no longer ship), kept as it was
  for MODEL_CARD.md's sections on them;
- ``docs/runs/*.metrics.jsonl``: the training runs' validation scores, a line per epoch;
- the bundled model files, for their sizes.

In README.md, docs/evaluation.md and MODEL_CARD.md a table sits between the lines ``<!-- generated: NAME -->`` and
``<!-- /generated -->`` (NAME one of TABLES), a blank line from each.
``python -m enhance_edge.benchmarks.docs`` rewrites every such table and RESULTS.md from the
sources; ``--check`` only lists what differs (tests/benchmarks/test_docs.py runs that check on
the committed docs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from enhance_edge.errors import DocsError
from enhance_edge.io.fileio import atomic_output

from . import report

MARKED_DOCUMENTS = ("README.md", "docs/evaluation.md", "MODEL_CARD.md")
# The published `enhance-edge bench` runs, each a folder of results.json, RESULTS.md and latency.png:
# the main one, and one on an x86 CPU with AVX2 and no VNNI (where `--precision auto` runs only 7-bit int8).
BENCH_RUNS = ("benchmarks", "benchmarks/avx2")
START = re.compile(r"<!-- generated: ([\w-]+) -->\n")
MARKED = re.compile(r"(?P<start><!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<end><!-- /generated -->)",
                    re.DOTALL)

# The condensed family's goals (issue 26) on the Yale test split: every condition at least the
# previous release's model of the same name (docs/results/evaluate-release-0.1-NAME.json), and for
# `fast` every degraded condition at least FAST_LEAST_GAIN_DB over Lanczos.
PREVIOUS = "release-0.1"
FAST_LEAST_GAIN_DB = 0.35
# Issue 17's goals for `default-x4` on the Yale test split: the clean PSNR itself, and under `camera`
# the gain over the x2 `default` run twice (evaluate's X4_TWICE method, from --compare default).
X4_CLEAN_GOAL_DB, X4_CAMERA_GAIN_GOAL_DB, X4_TWICE = 33.2, 0.3, "default x2^2"
# The speed table's input size and threads: where issue 7 checks a model against FSRCNN x2.
SPEED_SIZE, SPEED_THREADS = [*report.FSRCNN_GOAL_SIZE], report.FSRCNN_GOAL_THREADS
# The 10-epoch ablation runs (docs/runs/ablation/NAME.metrics.jsonl), each the shipped recipe
# with one option changed (MODEL_CARD.md gives the command).
ABLATIONS = {"no-skip": "without the bicubic skip path",
             "report-optimiser": "the report's optimiser setting, Adam 2e-4 constant",
             "batch-64": "the report's batch size, 64",
             "no-hflip": "without horizontal flips",
             "constant-lr": "constant lr 1e-3 instead of cosine"}


@dataclass(frozen=True)
class Sources:
    """The measurement files under a repository root."""

    root: Path

    def read(self, relative: str) -> str:
        try:
            return (self.root / relative).read_text()
        except OSError as error:
            raise DocsError(f"cannot read {relative!r} under {str(self.root)!r}: {error.strerror}") from None

    def evaluation(self, model: str, condition: str) -> dict:
        """The test split's scores by method (``model``, baselines, compared models) under ``condition``."""
        relative = f"docs/results/evaluate-{model}.json"
        results = json.loads(self.read(relative))
        if condition not in results or "test" not in results[condition]:
            raise DocsError(f"{relative} has no test scores for condition {condition!r}: it holds {list(results)}")
        return results[condition]["test"]

    def conditions(self, model: str) -> list[str]:
        return list(json.loads(self.read(f"docs/results/evaluate-{model}.json")))

    def bench(self) -> dict:
        return json.loads(self.read("benchmarks/results.json"))

    def clean_trained_bench(self) -> dict:
        return json.loads(self.read("docs/results/bench-clean-trained.json"))

    def validation(self, run: str) -> list[dict]:
        """A training run's validation scores ({"psnr", "ssim"}), one per epoch."""
        lines = self.read(f"docs/runs/{run}.metrics.jsonl").splitlines()
        return [json.loads(line)["validation"] for line in lines if line.strip()]

    def bicubic_psnr(self, run: str) -> float:
        """Bicubic interpolation's validation PSNR, as a training run's metrics record it beside the model's."""
        first = self.read(f"docs/runs/{run}.metrics.jsonl").splitlines()[0]
        return json.loads(first)["baselines"]["bicubic"]["psnr"]

    def model_kib(self, name: str) -> str:
        path = self.root / "enhance_edge" / "models" / f"{name}.onnx"
        try:
            return f"{path.stat().st_size / 1024:.0f}"
        except OSError as error:
            raise DocsError(f"cannot read the size of the model {str(path)!r}: {error.strerror}") from None


def signed(value: float) -> str:
    """A difference in dB as the docs print it: +0.25, −0.68 (a minus sign), ±0.00."""
    text = f"{value:+.2f}"
    return "±0.00" if text in ("+0.00", "-0.00") else text.replace("-", "−")


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def bench_score(results: dict, backend: str) -> dict:
    scores = results.get("quality", {}).get("scores", {})
    if backend not in scores:
        raise DocsError(f"benchmarks/results.json has no test score for {backend!r}: it has {list(scores)}")
    return scores[backend]


def score_row(label: str, *scores: dict, bold: bool = False) -> list[str]:
    """A table row of PSNR and SSIM, several methods' in one cell as "37.32 / 37.25"."""
    cells = [" / ".join(f"{s['psnr']:.2f}" for s in scores), " / ".join(f"{s['ssim']:.4f}" for s in scores)]
    return [label, *(f"**{cell}**" if bold else cell for cell in cells)]


def score_with_gain(scores: dict) -> str:
    return f"{scores['model']['psnr']:.2f} ({signed(scores['model']['psnr'] - scores['lanczos']['psnr'])})"


def goal_cell(condition: str, scores: dict[str, dict], previous: dict[str, dict]) -> str:
    """Whether ``default`` and ``fast`` (``scores`` by model) score at least the previous release's
    model of their name under ``condition``, and `fast` a degraded one FAST_LEAST_GAIN_DB over Lanczos."""
    missed = [f"`{model}`" for model in scores if scores[model]["model"]["psnr"] < previous[model]["model"]["psnr"]]
    text = "≥ 0.1's"
    if condition != "clean":
        text += f"; `fast` ≥ +{FAST_LEAST_GAIN_DB:.2f}"
        gain = scores["fast"]["model"]["psnr"] - scores["fast"]["lanczos"]["psnr"]
        if gain < FAST_LEAST_GAIN_DB and "`fast`" not in missed:
            missed.append("`fast`")
    return f"{text}: " + ("met" if not missed else "not met by " + " and ".join(missed))


def results_by_condition(sources: Sources) -> str:
    """README's and MODEL_CARD.md's table: the bundled models on the Yale test faces per condition,
    beside the previous release's."""
    rows = []
    for condition in sources.conditions("default"):
        scores = {model: sources.evaluation(model, condition) for model in ("default", "fast")}
        previous = {model: sources.evaluation(f"{PREVIOUS}-{model}", condition) for model in ("default", "fast")}
        rows.append([f"`{condition}`", f"{scores['default']['lanczos']['psnr']:.2f}",
                     f"**{score_with_gain(scores['default'])}**", score_with_gain(previous["default"]),
                     f"**{score_with_gain(scores['fast'])}**", score_with_gain(previous["fast"]),
                     goal_cell(condition, scores, previous)])
    return table(["condition", "Lanczos", "**`default`**", "0.1's `default`", "**`fast`**", "0.1's `fast`",
                  "goal"], rows)


def clean_faces(sources: Sources) -> str:
    """docs/evaluation.md's table: the bundled models and their peers on the clean Yale test faces."""
    default, fast = sources.evaluation("default", "clean"), sources.evaluation("fast", "clean")
    bench = sources.bench()
    return table(["method", "PSNR (dB)", "SSIM"], [
        *(score_row(f"**enhance-edge `{name}` (fp32, {sources.model_kib(name)} KiB)**", scores["model"], bold=True)
          for name, scores in (("default", default), ("fast", fast))),
        score_row("Pillow Lanczos", default["lanczos"]),
        score_row("OpenCV FSRCNN ×2 / ESPCN ×2", bench_score(bench, "fsrcnn"), bench_score(bench, "espcn")),
        score_row("scikit-image `resize(order=3)`", default["skimage-order3"]),
        score_row("Pillow bicubic", default["bicubic"])])


def clean_trained_default_quality(sources: Sources) -> str:
    """MODEL_CARD.md's `default` section: the clean-trained network, its int8 file and the peers."""
    evaluated, bench = sources.evaluation("default-clean", "clean"), sources.clean_trained_bench()
    validation = bench["quantization"]["validation"]
    int8 = bench_score(bench, "ort-int8")
    report_run = sources.validation("report")
    best = max(report_run, key=lambda scores: scores["psnr"])
    return table(["method (46×56 → 92×112)", "PSNR (dB)", "SSIM"], [
        score_row("**enhance-edge default, fp32**", evaluated["model"], bold=True),
        score_row(f"**enhance-edge default, int8** (`default-int8.onnx`; "
                  f"{signed(validation['int8']['psnr'] - validation['fp32']['psnr'])} dB on validation, "
                  f"{signed(int8['psnr'] - bench_score(bench, 'ort-fp32')['psnr'])} on test)", int8, bold=True),
        score_row("Pillow Lanczos", evaluated["lanczos"]),
        score_row("scikit-image `resize(order=3)`", evaluated["skimage-order3"]),
        score_row("Pillow bicubic", evaluated["bicubic"]),
        score_row("OpenCV FSRCNN ×2 / ESPCN ×2 (`enhance-edge bench`)", bench_score(bench, "fsrcnn"),
                  bench_score(bench, "espcn")),
        [f"the report's own configuration, best of {len(report_run)} epochs (validation)",
         f"{best['psnr']:.2f} (val)", f"{best['ssim']:.4f} (val)"]])


def fast_quality(sources: Sources) -> str:
    """MODEL_CARD.md's `fast` section: the clean-trained `fast` and `default`, fp32 and int8, from one bench run."""
    bench = sources.clean_trained_bench()

    def row(label: str, *backends: str) -> list[str]:
        return score_row(label, *(bench_score(bench, backend) for backend in backends))

    return table(["method (test subjects, 46×56 → 92×112)", "PSNR (dB)", "SSIM"], [
        row("`fast` fp32", "ort-fast-fp32"), row("`fast` int8", "ort-fast-int8"),
        row("`default` fp32 / int8", "ort-fp32", "ort-int8"), row("Pillow Lanczos", "pillow-lanczos"),
        row("OpenCV FSRCNN ×2 / ESPCN ×2 (`enhance-edge bench`)", "fsrcnn", "espcn"),
        row("Pillow bicubic", "pillow-bicubic")])


def fast_speed(sources: Sources) -> str:
    """MODEL_CARD.md's `fast` section: latency at FSRCNN's goal size, throughput and quality, one bench run
    (of the clean-trained models)."""
    bench = sources.clean_trained_bench()

    def latency(backend: str) -> float:
        found = [r["median_ms"] for r in bench.get("latency", []) if r["backend"] == backend
                 and r["size"] == SPEED_SIZE and r["threads"] == SPEED_THREADS]
        if not found:
            raise DocsError(f"benchmarks/results.json has no {backend!r} latency at {SPEED_SIZE}, "
                            f"{SPEED_THREADS} threads")
        return found[0]

    def throughput(backend: str) -> str:
        found = [r["images_per_s"] for r in bench.get("throughput", [])
                 if r["backend"] == backend and r["threads"] == SPEED_THREADS]
        return f"{found[0]:.0f}" if found else "—"

    fsrcnn_ms = latency("fsrcnn")
    rows = [[label, f"{latency(backend):.1f}", f"{fsrcnn_ms / latency(backend):.1f}×",
             f"{bench_score(bench, backend)['psnr']:.2f}", throughput(backend)]
            for label, backend in (("`fast` int8", "ort-fast-int8"), ("`fast` fp32", "ort-fast-fp32"),
                                   ("`default` int8", "ort-int8"), ("`default` fp32", "ort-fp32"),
                                   ("OpenCV FSRCNN ×2", "fsrcnn"), ("OpenCV FSRCNN-small ×2", "fsrcnn-small"),
                                   ("OpenCV ESPCN ×2", "espcn"))]
    return table([f"{SPEED_SIZE[0]}×{SPEED_SIZE[1]} input, {SPEED_THREADS} threads", "median (ms)",
                  "speed vs FSRCNN ×2", "test PSNR (dB)", f"images/s, {bench['config']['batch']} faces"], rows)


def adversarial_finetune(sources: Sources) -> str:
    """MODEL_CARD.md: validation PSNR per epoch of the adversarial fine-tune and its MSE-only control."""
    runs = {"adversarial (MSE + 1e-3·BCE)": sources.validation("gan-finetune"),
            "MSE only (control)": sources.validation("mse-finetune")}
    epochs = max(len(run) for run in runs.values())
    return table(["fine-tune epoch", *map(str, range(1, epochs + 1))],
                 [[label, *(f"{run[i]['psnr']:.2f}" if i < len(run) else "—" for i in range(epochs))]
                  for label, run in runs.items()])


def training_history(sources: Sources) -> str:
    """MODEL_CARD.md: what each change to the report's recipe did, best validation PSNR per run."""
    report_run, shipped, finetune = (sources.validation(run) for run in ("report", "mse-skip", "gan-finetune"))

    def best(run: list[dict]) -> str:
        epoch = max(range(len(run)), key=lambda i: run[i]["psnr"])
        return f"{run[epoch]['psnr']:.2f} dB ({epoch + 1})"

    return table(["run", "epochs", "best validation PSNR (at epoch)"], [
        ["the report's configuration: no skip path, MSE + 1e-3·BCE, Adam 2e-4 constant, batch 64",
         str(len(report_run)), best(report_run)],
        ["+ bicubic skip path, MSE only, Adam 1e-3 cosine, batch 32, horizontal flips", str(len(shipped)),
         best(shipped)],
        [f"then {len(finetune)} epochs of adversarial fine-tuning", f"+{len(finetune)}", best(finetune)],
        ["bicubic interpolation, for reference", "—", f"{sources.bicubic_psnr('report'):.2f} dB"]])


def ablation(sources: Sources) -> str:
    """MODEL_CARD.md: one change at a time undone from the shipped recipe, 10-epoch runs against the full ones."""
    base = max(scores["psnr"] for scores in sources.validation("ablation/base"))
    rows = [["shipped recipe: bicubic skip, MSE, Adam 1e-3 cosine (over the 10 epochs), batch 32, flips",
             f"{base:.2f}", "—"]]
    for run, label in ABLATIONS.items():
        psnr = max(scores["psnr"] for scores in sources.validation(f"ablation/{run}"))
        rows.append([label, f"{psnr:.2f}", signed(psnr - base)])
    shipped = [scores["psnr"] for scores in sources.validation("mse-skip")]
    rows.append([f"{len(shipped)} epochs instead of 10 (the shipped run; {shipped[9]:.2f} at its epoch 10)",
                 f"{max(shipped):.2f}", signed(max(shipped) - base)])
    adversarial, control = sources.validation("gan-finetune"), sources.validation("mse-finetune")
    last = len(adversarial) - 1
    rows.append(["adversarial term on (fine-tune from the shipped checkpoint, above)",
                 f"{adversarial[last]['psnr']:.2f} after {last + 1} epochs",
                 f"{signed(adversarial[last]['psnr'] - control[last]['psnr'])} vs its MSE control"])
    return table(["10-epoch run", "best validation PSNR", "vs shipped recipe"], rows)


def x4_goal_cell(condition: str, scores: dict) -> str:
    """Issue 17's goal for `default-x4` under ``condition`` (clean and camera only), and whether it is met."""
    if condition == "clean":
        met = scores["model"]["psnr"] >= X4_CLEAN_GOAL_DB
        return f"≥ {X4_CLEAN_GOAL_DB:.1f} dB: {'met' if met else 'not met'}"
    if condition == "camera":
        met = scores["model"]["psnr"] - scores[X4_TWICE]["psnr"] >= X4_CAMERA_GAIN_GOAL_DB
        return f"≥ +{X4_CAMERA_GAIN_GOAL_DB:.1f} over ×2 twice: {'met' if met else 'not met'}"
    return ""


def x4_by_condition(sources: Sources) -> str:
    """docs/evaluation.md's x4 table: `default-x4` against Lanczos and the x2 `default` run twice, per condition."""
    rows = []
    for condition in sources.conditions("default-x4"):
        scores = sources.evaluation("default-x4", condition)
        if X4_TWICE not in scores:
            raise DocsError(f"docs/results/evaluate-default-x4.json has no {X4_TWICE!r} scores under {condition!r}: "
                            "make it with --compare default")
        gain = signed(scores["model"]["psnr"] - scores[X4_TWICE]["psnr"])
        rows.append([f"`{condition}`", f"{scores['lanczos']['psnr']:.2f}", f"{scores[X4_TWICE]['psnr']:.2f}",
                     f"**{scores['model']['psnr']:.2f} ({gain})**", x4_goal_cell(condition, scores)])
    return table(["condition", "Lanczos", "`default` ×2 twice", "**`default-x4`**", "goal"], rows)


def range_by_condition(sources: Sources) -> str:
    """docs/evaluation.md's table of the bundled models under conditions beyond the protocol's five (other
    noise levels, JPEG qualities, blur and orders of the steps, within the range it says a model must hold)."""
    rows = []
    for condition in sources.conditions("range-default"):
        scores = {model: sources.evaluation(f"range-{model}", condition) for model in ("default", "fast")}
        rows.append([f"`{condition}`", f"{scores['default']['lanczos']['psnr']:.2f}",
                     score_with_gain(scores["default"]), score_with_gain(scores["fast"])])
    return table(["condition", "Lanczos", "`default`", "`fast`"], rows)


TABLES: dict[str, Callable[[Sources], str]] = {
    "results-by-condition": results_by_condition, "clean-faces": clean_faces,
    "clean-trained-default-quality": clean_trained_default_quality, "fast-quality": fast_quality,
    "fast-speed": fast_speed, "adversarial-finetune": adversarial_finetune, "training-history": training_history,
    "ablation": ablation, "x4-by-condition": x4_by_condition, "range-by-condition": range_by_condition}


def render_marked(text: str, sources: Sources, where: str) -> tuple[str, list[str]]:
    """``text`` with every marked table rendered afresh, and the names of those that changed."""
    changed = []

    def fresh(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise DocsError(f"{where}: unknown generated table {name!r}; known: {', '.join(TABLES)}")
        body = f"\n{TABLES[name](sources)}\n\n"  # blank lines: the markers stay HTML blocks of their own
        if body != match["body"]:
            changed.append(name)
        return match["start"] + body + match["end"]

    rendered, replaced = MARKED.subn(fresh, text)
    starts = len(START.findall(text))
    if replaced != starts:
        raise DocsError(f"{where}: {starts} '<!-- generated: NAME -->' markers but {replaced} tables closed by "
                        "'<!-- /generated -->' before the next one starts")
    return rendered, changed


def results_markdown(root: Path, sources: Sources, run: str = BENCH_RUNS[0]) -> str:
    """A bench run's RESULTS.md as `enhance-edge bench` writes it from its results.json, its
    hand-written part kept."""
    plot_name = "latency.png" if (root / run / "latency.png").exists() else None
    results = json.loads(sources.read(f"{run}/results.json"))
    return report.markdown(results, plot_name) + report.kept_sections(root / run / "RESULTS.md")


def refresh(root: Path, write: bool) -> list[str]:
    """What under ``root`` differs from its sources ("FILE: TABLE"), rewritten in place when ``write``."""
    sources, stale, updates = Sources(root), [], {}
    for name in MARKED_DOCUMENTS:
        rendered, changed = render_marked(sources.read(name), sources, name)
        stale += [f"{name}: {table_name}" for table_name in changed]
        if changed:
            updates[root / name] = rendered
    published = [run for run in BENCH_RUNS if run == BENCH_RUNS[0] or (root / run / "results.json").exists()]
    for run in published:
        rendered = results_markdown(root, sources, run)
        if rendered != sources.read(f"{run}/RESULTS.md"):
            stale.append(f"{run}/RESULTS.md: report.markdown of {run}/results.json")
            updates[root / run / "RESULTS.md"] = rendered
    if write:
        for path, text in updates.items():
            with atomic_output(path) as handle:
                handle.write(text.encode())
    return stale


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The repository whose docs and measurement files these are.")
@click.option("--check", is_flag=True, help="Change nothing: list the tables that differ from their sources, "
                                            "and exit with 1 if any does.")
def main(root: Path, check: bool) -> None:
    """Render the measured tables of README.md, docs/evaluation.md, MODEL_CARD.md and benchmarks/RESULTS.md."""
    try:
        stale = refresh(root, write=not check)
    except DocsError as error:
        raise click.ClickException(str(error)) from None
    for item in stale:
        click.echo(f"{'differs' if check else 'rewrote'}: {item}")
    if check and stale:
        raise SystemExit(1)


if __name__ == "__main__":
    main(prog_name="python -m enhance_edge.benchmarks.docs")
