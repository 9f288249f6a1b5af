"""Benchmark results as a screen table, results.json, RESULTS.md and a latency-vs-size plot,
with the project's speed goals checked against them."""

from __future__ import annotations

import json
from pathlib import Path

from enhance_edge.io.fileio import atomic_output

from ..export.gate import MAX_MEAN_LOSS_DB, MIN_PSNR_VS_FP32_DB, GateResult, table_from_dict
from .goals import (END_TO_END_SPEEDUP_GOAL, FAST_VS_FSRCNN_SPEEDUP_GOAL, FSRCNN_GOAL_SIZE, FSRCNN_GOAL_THREADS,
                    INT8_PEAK_SHARE_GOAL, INT8_SPEEDUP_GOAL, ORT_SPEEDUP_GOAL, PREVIOUS_DEFAULT_GOAL_SIZE,
                    PREVIOUS_DEFAULT_GOAL_THREADS, PREVIOUS_DEFAULT_LABEL, PREVIOUS_DEFAULT_SPEEDUP_GOAL, PSNR_GOAL_DB)

CAVEAT = ("Figures vary between runs and between machines (CPU model, frequency scaling, other load, "
          "library versions): compare the ratios between backends measured in the same run, not the "
          "absolute times across runs.")
# A machine this busy (1-minute load average per logical CPU) distorts every timing.
BUSY_LOAD_PER_CPU = 0.25
NOT_AN_INT8_SPEED_CPU = "not a goal here (no VNNI, AMX or ARM64 dot product)"


def _rows(results: dict, **match) -> list[dict]:
    return [r for r in results.get("latency", []) if all(r[k] == v for k, v in match.items())]


def _median(results: dict, backend: str, size: list[int], threads: int) -> float | None:
    rows = _rows(results, backend=backend, size=size, threads=threads)
    return rows[0]["median_ms"] if rows else None


def goals(results: dict) -> list[dict]:
    """The issue's speed and quality goals, each with its measured value (None: not measured here)."""
    checks = []
    threads_run = results["config"]["threads"]

    # Issue 27's int8 speed goals are for CPUs whose int8 instructions are exact and fast (VNNI, AMX,
    # ARM64 dot product); elsewhere (AVX2's 16-bit pair sums, or none) their rows are shown, not judged.
    int8_speed_applies = bool(results.get("machine", {}).get("int8_instructions", True))

    def ratio_goal(name, slow, fast, size, threads, target, applies=True):
        checks.append(_speedup(name, _median(results, slow, size, threads), _median(results, fast, size, threads),
                               target, applies))

    for threads in threads_run:
        for size in ([256, 256], [1024, 1024]):
            ratio_goal(f"ORT int8 vs ORT fp32, {size[0]}x{size[1]}, {threads} thread(s)",
                       "ort-fp32", "ort-int8", size, threads, INT8_SPEEDUP_GOAL, int8_speed_applies)
            ratio_goal(f"ORT fp32 vs PyTorch eager, {size[0]}x{size[1]}, {threads} thread(s)",
                       "pytorch-fp32", "ort-fp32", size, threads, ORT_SPEEDUP_GOAL)
    scores = results.get("quality", {}).get("scores", {})
    loss = (scores["ort-fp32"]["psnr"] - scores["ort-int8"]["psnr"]
            if "ort-fp32" in scores and "ort-int8" in scores else None)
    checks.append({"goal": "int8 PSNR loss on the Yale test subjects (dB)", "target": f"<= {MAX_MEAN_LOSS_DB}",
                   "value": loss, "met": None if loss is None else loss <= MAX_MEAN_LOSS_DB})
    for label, per_image in _per_image(results).items():
        lowest = per_image.min_psnr_vs_fp32 if per_image else None
        checks.append({"goal": f"{label} int8: every image of the mixed set against fp32's output (lowest PSNR, dB)",
                       "target": f">= {MIN_PSNR_VS_FP32_DB:g}", "value": lowest,
                       "met": None if lowest is None else lowest >= MIN_PSNR_VS_FP32_DB})
        mean = per_image.max_mean_loss_db if per_image else None
        checks.append({"goal": f"{label} int8: mean PSNR loss against the truth of the worst natural set (dB)",
                       "target": f"<= {MAX_MEAN_LOSS_DB:g}", "value": mean,
                       "met": None if mean is None else mean <= MAX_MEAN_LOSS_DB})
    labels = [label for label, _ in results["config"].get("extra_models", [])]
    height, width = FSRCNN_GOAL_SIZE
    for label in labels:
        if label == PREVIOUS_DEFAULT_LABEL:  # the release replaced: only timed against the default, below
            continue
        if label.endswith("-int8") and f"{label[:-5]}-fp32" in labels:  # issue 15: against its own fp32 file
            ratio_goal(f"ort-{label} vs ort-{label[:-5]}-fp32, {height}x{width}, {FSRCNN_GOAL_THREADS} threads",
                       f"ort-{label[:-5]}-fp32", f"ort-{label}", [height, width], FSRCNN_GOAL_THREADS,
                       INT8_SPEEDUP_GOAL, int8_speed_applies)
        ratio_goal(f"ort-{label} latency vs OpenCV FSRCNN x2, {height}x{width}, {FSRCNN_GOAL_THREADS} threads",
                   "fsrcnn", f"ort-{label}", [height, width], FSRCNN_GOAL_THREADS,
                   FAST_VS_FSRCNN_SPEEDUP_GOAL if label == "fast-fp32" else 1.0)
        psnr = scores.get(f"ort-{label}", {}).get("psnr")
        checks.append({"goal": f"ort-{label} PSNR on the Yale test subjects", "target": f">= {PSNR_GOAL_DB} dB",
                       "value": psnr, "met": None if psnr is None else psnr >= PSNR_GOAL_DB})
    if PREVIOUS_DEFAULT_LABEL in labels:
        _release_goals(results, checks)
    runs = results.get("end_to_end", {}).get("runs", {})
    e2e_model = results.get("end_to_end", {}).get("model")
    checks.append({**_speedup(f"enhance-edge upscale end to end, {results.get('end_to_end', {}).get('image', '-')}"
                              + (f", {e2e_model}" if e2e_model else ""), runs.get("fp32", {}).get("median_s"),
                              runs.get("int8", {}).get("median_s"), END_TO_END_SPEEDUP_GOAL, int8_speed_applies),
                   "target": f">= {END_TO_END_SPEEDUP_GOAL:.2f}x"})
    int8_rows = [r for r in _rows(results, backend="ort-int8") if "peak_fraction" in r]
    best = max(int8_rows, key=lambda r: r["peak_fraction"], default=None)
    checks.append({"goal": "ORT int8 share of this CPU's measured int8 peak"
                           + (f" (best: {best['size'][0]}x{best['size'][1]}, {best['threads']}T)" if best else ""),
                   "target": f">= {INT8_PEAK_SHARE_GOAL:.0%}", "value": best["peak_fraction"] if best else None,
                   "met": None if best is None else best["peak_fraction"] >= INT8_PEAK_SHARE_GOAL})
    return checks


def _speedup(name: str, slow: float | None, fast: float | None, target: float, applies: bool = True) -> dict:
    """A speed goal: ``slow`` over ``fast`` (None where either is unmeasured) at least ``target``;
    judged only where it ``applies`` (issue 27's int8 goals: NOT_AN_INT8_SPEED_CPU elsewhere)."""
    value = slow / fast if slow and fast else None
    return {"goal": name, "target": f">= {target}x", "value": value,
            "met": None if value is None or not applies else value >= target,
            **({} if applies else {"not_here": NOT_AN_INT8_SPEED_CPU})}


def _release_goals(results: dict, checks: list[dict]) -> None:
    """Issue 26's: the main model's model time against the release it replaced, in fp32 and, where
    `--precision auto` runs it, int8: from the files called in turns (the "release" section) where
    that ran, else from the latency rows."""
    height, width = PREVIOUS_DEFAULT_GOAL_SIZE
    threads = PREVIOUS_DEFAULT_GOAL_THREADS
    release = f"ort-{PREVIOUS_DEFAULT_LABEL}"
    in_turns = results.get("against_release", {}).get("median_ms", {})
    for backend, name in (("ort-fp32", "ORT fp32"), ("ort-int8", "ORT int8 (what --precision auto runs here)")):
        if backend == "ort-int8" and not results.get("models", {}).get("int8", {}).get("runs_under_auto"):
            continue
        if in_turns:
            slow, fast = in_turns.get(release), in_turns.get(backend)
            how = "called in turns"
        else:
            slow, fast = (_median(results, b, [height, width], threads) for b in (release, backend))
            how = "latency rows"
        checks.append(_speedup(f"{name} vs {release}, {height}x{width}, {threads} threads ({how})", slow, fast,
                               PREVIOUS_DEFAULT_SPEEDUP_GOAL))


def verdict(goal: dict) -> str:
    """A goal's state in words: met, NOT met, not measured, or why it is not judged on this machine."""
    if goal["met"] is not None:
        return "met" if goal["met"] else "NOT met"
    return goal.get("not_here") or "not measured"


def _per_image(results: dict) -> dict[str, GateResult | None]:
    """The int8 per-image gate of each measured model (None: a file was missing)."""
    return {label: GateResult.from_dict(table) if table else None
            for label, table in (results.get("int8_per_image") or {}).items()}


def _fmt(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def latency_table(results: dict) -> list[str]:
    """Markdown rows: one line per backend and size, median / p90 in ms per thread count."""
    threads = results["config"]["threads"]
    head = ("| backend | input (HxW) | " + " | ".join(f"{t}T median / p90 (ms)" for t in threads)
            + " | GFLOP/s (peak %) |")
    lines = [head, "|" + "---|" * (3 + len(threads))]
    seen = []
    for row in results.get("latency", []):
        key = (row["backend"], tuple(row["size"]))
        if key in seen:
            continue
        seen.append(key)
        cells = []
        for t in threads:
            match = _rows(results, backend=row["backend"], size=row["size"], threads=t)
            cells.append(f"{match[0]['median_ms']:.2f} / {match[0]['p90_ms']:.2f}" if match else "-")
        flops = [m for m in _rows(results, backend=row["backend"], size=row["size"]) if "gflops" in m]
        roof = ", ".join(f"{m['gflops']:.0f} ({m['peak_fraction']:.0%})" for m in flops) or "-"
        lines.append(f"| {row['backend']} | {row['size'][0]}x{row['size'][1]} | " + " | ".join(cells) + f" | {roof} |")
    return lines


def screen_table(results: dict) -> str:
    lines = [CAVEAT, ""] + latency_table(results)
    if results.get("throughput"):
        lines += ["", "throughput (images/s, batch of report-size faces):"]
        lines += [f"  {r['backend']:<18}{r['threads']}T  {r['images_per_s']:10.1f}" for r in results["throughput"]]
    if results.get("quality"):
        lines += ["", f"quality on {results['quality']['faces']} Yale test faces (PSNR dB / SSIM):"]
        lines += [f"  {name:<18}{s['psnr']:7.2f}  {s['ssim']:.4f}" for name, s in results["quality"]["scores"].items()]
    lines += ["", "goals:"] + [f"  {g['goal']:<72} {_fmt(g['value'], '.3f'):>8} (target {g['target']}) {verdict(g)}"
                               for g in goals(results)]
    lines += [f"skipped {name}: {reason}" for name, reason in results.get("skipped", {}).items()]
    return "\n".join(lines)


def markdown(results: dict, plot_name: str | None) -> str:
    """RESULTS.md: the last full run, with the machine it ran on."""
    sections = (_machine_section(results), _goals_section(results), _latency_section(results, plot_name),
                _throughput_section(results), _quality_section(results), _per_image_section(results),
                _roofline_section(results), _kernels_section(results), _memory_section(results),
                _end_to_end_section(results), _release_section(results), _quantization_section(results),
                _skipped_section(results))
    return "\n".join(line for section in sections for line in section) + "\n"


def _machine_section(results: dict) -> list[str]:
    cpu, versions = results["machine"], results["versions"]
    load = results["load_average_before"][0]
    busy = load / max(1, cpu["logical_cpus"] or 1) > BUSY_LOAD_PER_CPU
    out = ["# Benchmark results", "", f"> {CAVEAT}", ""]
    if busy:
        out += [f"> **This run is not representative:** the machine was busy (load average {load:.1f} on "
                f"{cpu['logical_cpus']} CPUs when it started). Rerun on an idle machine.", ""]
    config = results["config"]
    return out + [
        "Produced by `enhance-edge bench` (same as `python -m enhance_edge.benchmarks`) with at least "
        f"{config['min_reps']} repetitions and {config['min_time_s']:g} s per backend and measurement, after "
        f"{config['warmup']} warm-up runs, on {results['started']} in {results['duration_s'] / 60:.1f} min. "
        "Raw numbers: `results.json`.", "",
        "## Machine", "",
        f"- CPU: {cpu.get('model')} (family {cpu.get('family')}, model {cpu.get('model_number')}), "
        f"{cpu['logical_cpus']} logical CPUs, {cpu['machine']}",
        f"- kernel-relevant CPU flags: {', '.join(cpu.get('flags') or []) or 'unknown'}",
        _int8_line(cpu),
        "- " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- load average before / after: {results['load_average_before'][0]:.2f} / "
        f"{results['load_average_after'][0]:.2f}"]


def _int8_line(cpu: dict) -> str:
    """Which int8 instructions the CPU has, and so what `--precision auto` runs on it."""
    if "int8_instructions" not in cpu:  # a run before this was recorded
        return "- int8 instructions: not recorded"
    if cpu["int8_instructions"]:
        return (f"- int8 instructions: {', '.join(cpu['int8_instructions'])} (exact and fast int8: "
                "`--precision auto` runs an installed int8 file here)")
    if cpu.get("int8_pair_sums"):
        return ("- int8 instructions: none of VNNI, AMX or ARM64 dot product; AVX2, whose int8 kernels sum pairs of "
                "products in 16 bits (`--precision auto` runs an int8 file of 7-bit weights here, fp32 for others)")
    return ("- int8 instructions: none of VNNI, AMX or ARM64 dot product (`--precision auto` runs fp32 here; the "
            "int8 timings are what this CPU's int8 kernels do, not what auto runs)")


def _goals_section(results: dict) -> list[str]:
    return ["", "## Goals", "", "| goal | target | measured | |", "|---|---|---|---|"] + [
        f"| {g['goal']} | {g['target']} | {_fmt(g['value'], '.3f')} | {verdict(g)} |" for g in goals(results)]


def _latency_section(results: dict, plot_name: str | None) -> list[str]:
    out = ["", "## Latency", "",
           "One input, batch 1, after warm-up; the median and 90th percentile of many repetitions. "
           "Networks are timed on their own call with the input already in memory as float32; Pillow "
           "on `Image.resize`; the OpenCV peers on `DnnSuperResImpl.upsample` (which includes its colour "
           "conversion). GFLOP/s counts the network's own convolution multiply-adds x2, against this machine's "
           "measured fp32 peak (fp32 backends) or int8 peak (int8 backends).", ""]
    out += latency_table(results)
    return out + (["", f"![latency vs input size]({plot_name})"] if plot_name else [])


def _throughput_section(results: dict) -> list[str]:
    if not results.get("throughput"):
        return []
    return ["", "## Throughput", "", f"A batch of {results['config']['batch']} report-size faces "
            "(one call for the networks, a loop for the others).", "",
            "| backend | threads | images/s |", "|---|---|---|"] + [
        f"| {r['backend']} | {r['threads']} | {r['images_per_s']:.1f} |" for r in results["throughput"]]


def _quality_section(results: dict) -> list[str]:
    quality = results.get("quality")
    if not quality:
        return []
    return ["", "## Quality", "", f"docs/evaluation.md on the {quality['faces']} faces of the Yale test subjects "
            f"({', '.join(quality['subjects'])}): HR 92x112 Lanczos, LR its bicubic half. "
            "`max diff` is the largest 8-bit difference from ORT fp32's output.", "",
            "| method | PSNR (dB) | SSIM | max diff |", "|---|---|---|---|"] + [
        f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s.get('max_diff_vs_ort_fp32', '')} |"
        for name, s in quality["scores"].items()]


def _per_image_section(results: dict) -> list[str]:
    per_image = {label: result for label, result in _per_image(results).items() if result}
    if not per_image:
        return []
    return ["", "## int8 per image, on a mixed set", "", "`enhance-edge quantize`'s gate on the installed int8 "
            "file, image by image (int8 computed as exact int8 arithmetic computes it; every image in int8, as "
            "`--precision auto` runs it wherever it chooses int8): the Yale test faces and images calibration "
            "never sees (scikit-image's astronaut and LFW faces, synthetic gradients, high-key, low-key and text "
            f"images). `vs fp32`: PSNR of int8's output against fp32's, of the set and of its lowest image (gate: "
            f">= {MIN_PSNR_VS_FP32_DB:g} dB on every image); `loss`: fp32's PSNR against the truth less int8's "
            f"(gate: a mean <= {MAX_MEAN_LOSS_DB:g} dB on the natural sets, the faces and photos).", "",
            "| model | set | images | vs fp32: set (dB) | lowest (dB) | lowest image | fp32 PSNR (dB) "
            "| mean loss (dB) | worst loss (dB) | worst image |",
            "|---|---|---|---|---|---|---|---|---|---|"] + [
        f"| {label} | {name}{' (natural)' if row.natural else ''} | {row.images} | {_fmt(row.vs_fp32_psnr)} | "
        f"{_fmt(row.vs_fp32_min_psnr)} | {row.vs_fp32_worst_image or '-'} | {row.fp32_psnr:.2f} | "
        f"{row.mean_loss_db:.3f} | {row.worst_loss_db:.3f} | {row.worst_image} |"
        for label, result in per_image.items() for name, row in result.sets.items()]


def _roofline_section(results: dict) -> list[str]:
    roofline = results["roofline"]
    out = ["", "## Roofline", "", f"- model: {roofline['macs_per_input_pixel']:,} multiply-adds per input pixel "
           "(convolutions, counted from the ONNX graph)"]
    out += [f"- {name}: {macs:,} multiply-adds per input pixel"
            for name, macs in roofline.get("extra_models", {}).items()]
    return out + [f"- measured peak, {t} thread(s), {p['n']}^3 matrix products in onnxruntime: fp32 "
                  f"{p['fp32_gflops']:.1f} GFLOP/s, uint8 x int8 {p['int8_gops']:.1f} GOP/s"
                  for t, p in roofline["peaks"].items()]


def _kernels_section(results: dict) -> list[str]:
    kernels = results.get("kernels")
    if not kernels:
        return []
    out = ["", "## Kernels onnxruntime ran", "",
           f"Share of kernel time per operator (onnxruntime profiler, {kernels['size'][0]}x{kernels['size'][1]}, "
           "1 thread), and the instructions at the hottest sampled addresses in onnxruntime (`perf`; "
           "onnxruntime is stripped, so instructions stand in for kernel names).", ""]
    for precision, operators in kernels["operators"].items():
        out.append(f"- {precision}: " + ", ".join(f"{o['op']} ({o['input_type']}) {o['share']:.1%}"
                                                   for o in operators[:6]))
    for precision, found in kernels["instructions"].items():
        if "skipped" in found:
            out.append(f"- {precision} instructions: skipped ({found['skipped']})")
        else:
            out.append(f"- {precision} hottest instructions: " + ", ".join(
                f"{i['instruction']} {i['share_percent']:.1f}%" for i in found["instructions"][:5])
                + f"; around the hottest address: {found['hottest_window']}")
    return out


def _memory_section(results: dict) -> list[str]:
    out = []
    if results.get("peak_rss_mib"):
        out += ["", "## Memory and model files", "", "Peak RSS of a fresh process that loads one backend and "
                "upscales the largest input once (interpreter and imports included).", "",
                "| backend | peak RSS (MiB) |", "|---|---|"]
        out += [f"| {name} | {mib:.0f} |" for name, mib in results["peak_rss_mib"].items()]
    out += ["", "| model file | size (KiB) |", "|---|---|"]
    return out + [f"| {name} ({Path(m['path']).name}) | {m['bytes'] / 1024:.0f} |"
                  for name, m in results["models"].items() if m["bytes"] is not None]


def _end_to_end_section(results: dict) -> list[str]:
    e2e = results.get("end_to_end")
    if not (e2e and e2e["runs"]):
        return []
    model = ""
    if "model" in e2e:
        model = (f" with {e2e['model']} and its int8 file (`--precision fp32` and `int8`)" if "int8" in e2e["runs"]
                 else f" with {e2e['model']} (`--precision fp32`: no int8 file is installed)")
    return ["", "## End to end", "", f"`enhance-edge upscale` on a {e2e['image']}{model}, {e2e['threads']} threads, "
            "process start and image I/O included (median of the runs):", ""] + [
        f"- {precision}: {run['median_s']:.2f} s" for precision, run in e2e["runs"].items()]


def _release_section(results: dict) -> list[str]:
    measured = results.get("against_release")
    if not measured:
        return []
    release = measured["median_ms"].get(f"ort-{PREVIOUS_DEFAULT_LABEL}")
    return ["", f"## Against {PREVIOUS_DEFAULT_LABEL}", "",
            f"Each file in its own onnxruntime session, {measured['size'][0]}x{measured['size'][1]}, "
            f"{measured['threads']} threads, all called in turns for {measured['rounds']} rounds (medians):", "",
            "| backend | median (ms) | of the release's time |", "|---|---|---|"] + [
        f"| {name} | {ms:.1f} | {_fmt(ms / release if release else None, '.3f')} |"
        for name, ms in measured["median_ms"].items()]


def _quantization_section(results: dict) -> list[str]:
    quantization = results.get("quantization")
    if not quantization:
        return []
    out = ["", "## Quantization recipes", "", "Compared by `enhance-edge quantize` on the validation faces "
           "(calibration and check; test faces are never used to choose). Latency: one 256x256 input.", "",
           "| recipe | val PSNR (dB) | lowest gate image vs fp32 (dB) | latency (ms) | float ops left | |",
           "|---|---|---|---|---|---|"]
    kept = quantization["recipe"]
    for c in quantization["candidates"]:
        if "error" in c:
            out.append(f"| {c['name']} | - | - | - | failed: {c['error']} | |")
            continue
        floats = ", ".join(f"{op} x{n}" for op, n in c["float_ops"].items()) or "none"
        worst = min((row.vs_fp32_min_psnr for row in table_from_dict(c.get("gate", {})).values()
                     if row.vs_fp32_min_psnr is not None), default=None)
        out.append(f"| {c['name']} | {c['psnr']:.3f} | {_fmt(worst)} | {c['latency_s'] * 1e3:.1f} | {floats} | "
                   f"{'kept' if c['recipe'] == kept else ''} |")
    validation, test = quantization["validation"], quantization["test"]
    return out + ["", f"Kept recipe: validation PSNR fp32 {validation['fp32']['psnr']:.3f} dB, int8 "
                  f"{validation['int8']['psnr']:.3f} dB; test (reported only) fp32 "
                  f"{_fmt((test.get('fp32') or {}).get('psnr'))} dB, "
                  f"int8 {_fmt((test.get('int8') or {}).get('psnr'))} dB."]


def _skipped_section(results: dict) -> list[str]:
    if not (results.get("skipped") or results.get("faces_skipped")):
        return []
    out = ["", "## Skipped", ""] + [f"- {name}: {reason}" for name, reason in results.get("skipped", {}).items()]
    return out + ([f"- quality: {results['faces_skipped']}"] if results.get("faces_skipped") else [])


def plot(results: dict, path: Path) -> bool:
    """Latency vs input pixels, log-log, one line per backend at the largest thread count."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        return False
    threads = max(results["config"]["threads"])
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for backend in dict.fromkeys(r["backend"] for r in results.get("latency", [])):
        rows = sorted(_rows(results, backend=backend, threads=threads), key=lambda r: r["size"][0] * r["size"][1])
        axes.plot([r["size"][0] * r["size"][1] for r in rows], [r["median_ms"] for r in rows], marker="o",
                  label=backend)
    axes.set(xscale="log", yscale="log", xlabel="input pixels (height x width)", ylabel="median latency (ms)",
             title=f"x2 upscaling latency, {threads} thread(s), batch 1")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_output(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return True


def write_all(results: dict, out_dir: Path) -> list[Path]:
    """results.json, latency.png and RESULTS.md in ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.json"]
    with atomic_output(written[0]) as handle:
        handle.write(json.dumps(results, indent=1).encode())
    plot_path = out_dir / "latency.png"
    has_plot = plot(results, plot_path)
    if has_plot:
        written.append(plot_path)
    written.append(out_dir / "RESULTS.md")
    kept = kept_sections(written[-1])
    with atomic_output(written[-1]) as handle:
        handle.write((markdown(results, plot_path.name if has_plot else None) + kept).encode())
    return written


# RESULTS.md from this line on is written by hand (measurements of other scripts: the end-to-end
# profile, ARM64) and kept when a run rewrites the rest.
KEPT_MARKER = "<!-- written by hand below: kept by `enhance-edge bench` -->"


def kept_sections(path: Path) -> str:
    """What an existing RESULTS.md holds from KEPT_MARKER on ("" without one), preceded by a blank line."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    return "\n" + text[text.index(KEPT_MARKER):] if KEPT_MARKER in text else ""
