"""Run the bundled models on prepared inputs, on any architecture, and compare two such runs.

Needs only numpy and onnxruntime, so that it runs in a bare aarch64 Python under qemu-user
(benchmarks/arm64.sh). Three steps:

    python -m enhance_edge.benchmarks.arm64_run prepare inputs.npz [FACES]   # x86, with enhance-edge
    python benchmarks/arm64_run.py run inputs.npz outputs-ARCH.npz MODELS_DIR   # each architecture
    python -m enhance_edge.benchmarks.arm64_run compare inputs.npz outputs-x86_64.npz outputs-aarch64.npz
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np

# A conditioned model's strength input (the degradation level) for every face: any level runs the
# same kernels, and the comparison is between architectures, not levels.
STRENGTH = 0.5
# The 12 Yale test faces the repository keeps for its tests (tests/data/README.md), from its root.
FACES = Path("tests/data/yale_test")


def prepare(inputs: Path, faces_dir: Path = FACES) -> None:
    """HR/LR pairs of the Yale test faces in ``faces_dir``, made as docs/evaluation.md makes them."""
    from enhance_edge.eval.dataset import face_pair
    from enhance_edge.eval.protocol import REPORT_HR_SIZE

    faces = sorted(faces_dir.glob("*.png"))
    if not faces:
        sys.exit(f"no faces (*.png) in {faces_dir}: run from the repository's root, or name the folder")
    pairs = [face_pair(path, REPORT_HR_SIZE) for path in faces]
    np.savez(inputs, hr=np.stack([hr for hr, _ in pairs]), lr=np.stack([lr for _, lr in pairs]),
             names=np.array([path.name for path in faces]))


def run(inputs: Path, outputs: Path, models_dir: Path) -> None:
    """The unrounded outputs (values in [0, 1]) for the prepared LR faces of every x2 model in
    ``models_dir``: NAME-fp32 for each fp32 file, NAME-int8 (and NAME-int8-exact) for its int8 file
    beside it, NAME-int8.onnx."""
    import onnxruntime as ort

    lr = np.load(inputs)["lr"].astype(np.float32)[:, None] / 255
    found = {"machine": np.array(platform.machine()), "onnxruntime": np.array(ort.__version__)}
    for fp32 in sorted(path for path in models_dir.glob("*.onnx") if not path.stem.endswith("-int8")):
        int8 = fp32.with_name(f"{fp32.stem}-int8.onnx")
        for label, path in ((f"{fp32.stem}-fp32", fp32), (f"{fp32.stem}-int8", int8)):
            if not path.is_file():
                continue
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            metadata = session.get_modelmeta().custom_metadata_map
            if metadata.get("scale") != "2":  # the faces' HR is twice their LR
                break
            disabled = metadata.get("onnxruntime_disabled_optimizers", "")
            if disabled:  # as enhance_edge.core.model.open_session runs it
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                               disabled_optimizers=disabled.split(","))
            feeds = {"input": lr}
            if "strength" in {given.name for given in session.get_inputs()}:
                feeds["strength"] = np.full((len(lr), 1, 1, 1), STRENGTH, np.float32)
            found[label] = session.run(None, feeds)[0][:, 0]
            if path == int8:
                # QDQ pairs left unfused, computed in float: what exact int8 kernels compute (x86
                # without VNNI/AMX saturates; this is what it should have computed)
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                exact = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                             disabled_optimizers=disabled.split(",") if disabled else None)
                found[f"{label}-exact"] = exact.run(None, feeds)[0][:, 0]
    np.savez(outputs, **found)


def compare(inputs: Path, first: Path, second: Path) -> str:
    """A markdown table: per model, the largest float difference, the 8-bit pixels that differ and
    by how much, and each architecture's mean PSNR on the faces."""
    from enhance_edge.core.processing import from_unit_float
    from enhance_edge.eval.protocol import psnr

    hr = np.load(inputs)["hr"]
    a, b = np.load(first), np.load(second)
    lines = [f"{a['machine']} (onnxruntime {a['onnxruntime']}) vs {b['machine']} (onnxruntime {b['onnxruntime']}), "
             f"{len(hr)} Yale test faces", "",
             f"| model | max float diff | 8-bit pixels differing | max 8-bit diff | mean PSNR {a['machine']} | "
             f"mean PSNR {b['machine']} |", "|---|---|---|---|---|---|"]
    labels = [key for key in a.files if key in b.files and key.endswith(("-fp32", "-int8"))]
    rows = [(key, key, key) for key in labels]
    # int8 in exact arithmetic on one side against the other side's kernels
    rows += [(f"{key} ({side} exact)", key + ("-exact" if side == a["machine"] else ""),
              key + ("-exact" if side == b["machine"] else ""))
             for key in labels for side, run in ((a["machine"], a), (b["machine"], b)) if f"{key}-exact" in run]
    for label, key_a, key_b in rows:
        pixels_a, pixels_b = from_unit_float(a[key_a]), from_unit_float(b[key_b])
        levels = np.abs(pixels_a.astype(np.int16) - pixels_b)
        scores = [np.mean([psnr(h, o) for h, o in zip(hr, pixels)]) for pixels in (pixels_a, pixels_b)]
        lines.append(f"| {label} | {np.abs(a[key_a] - b[key_b]).max():.2e} | {(levels > 0).mean():.2%} | "
                     f"{levels.max()} | {scores[0]:.3f} | {scores[1]:.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["prepare"] and len(argv) in (2, 3):
        prepare(*(Path(arg) for arg in argv[1:]))
    elif argv[:1] == ["run"] and len(argv) == 4:
        run(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    elif argv[:1] == ["compare"] and len(argv) == 4:
        print(compare(*(Path(arg) for arg in argv[1:])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
