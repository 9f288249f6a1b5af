"""The report's figures, redrawn from metrics.jsonl and the exported model.

- losses.png: generator train/validation loss per epoch, the same sum of terms on both sides
  (the report's Figure 5.1.1)
- psnr.png: validation PSNR per epoch against bicubic and Lanczos (Figure 5.1.3)
- discriminator.png: the discriminator's validation accuracy and F1 per epoch
- grid.png: LR | generated | Lanczos | HR with PSNR under each (Figure 5.1.4), test faces
  and one face unlike the training data (the report's failure case, Figure 5.3.1)
- real-photos.png: a real JPEG and what the web and a phone make of it, upscaled by Lanczos
  and two models (the report's other failure: its authors' own photos)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from enhance_edge.eval.dataset import face_pair  # noqa: E402
from enhance_edge.eval.degradation import downscale, gaussian_noise, jpeg  # noqa: E402
from enhance_edge.io.imageio import jpeg_quality_of  # noqa: E402
from enhance_edge.errors import DataError, ImageError  # noqa: E402
from enhance_edge.eval.protocol import REPORT_HR_SIZE, interpolate, luma_image, make_hr, make_lr, psnr  # noqa: E402
from enhance_edge.core.upscaler import Upscaler  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """A run's epoch records; a file that logs no epoch, or not as JSON lines, is a DataError."""
    path = Path(path)
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable metrics.jsonl ({exc})") from None
    if not records:
        raise DataError(f"{path}: logs no epoch (an empty metrics.jsonl)")
    return records


def generator_losses(record: dict) -> tuple[float, float]:
    """One epoch's train and validation generator loss as the same sum of terms (NaN: not known).

    Validation logs its terms ("content", ...) since both sides sum the same ones into g_loss.
    In older logs validation g_loss was the content loss, plus the adversarial term whenever a
    discriminator existed (warm-up epochs too), and train g_loss also held the distillation term.
    """
    train, validation = record["train"], record["validation"]
    if "g_loss" not in train:  # train --estimator-only: the generator did not train
        return math.nan, validation["g_loss"]
    if "content" in validation:
        return train["g_loss"], validation["g_loss"]
    if "discriminator" not in validation:  # an older log's validation g_loss: the content loss alone
        return train["content"], validation["g_loss"]
    if record["adversarial"] and "distill" not in train:  # content + adversarial on both sides
        return train["g_loss"], validation["g_loss"]
    return train["g_loss"], math.nan  # an untrained discriminator's term, or no distillation, in validation


def plot_losses(runs: dict[str, list[dict]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, records in runs.items():
        epochs = [r["epoch"] for r in records]
        train, validation = zip(*map(generator_losses, records))
        line, = ax.plot(epochs, train, label=f"{label}: train")
        ax.plot(epochs, validation, "--", color=line.get_color(), label=f"{label}: validation")
    ax.set(xlabel="epoch", ylabel="generator loss", yscale="log", title="Generator loss, train vs validation")
    ax.legend(fontsize=8)
    return _save(fig, out / "losses.png")


def plot_psnr(runs: dict[str, list[dict]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, records in runs.items():
        ax.plot([r["epoch"] for r in records], [r["validation"]["psnr"] for r in records], label=label)
    baselines = next(iter(runs.values()))[0]["baselines"]
    for method, style in (("bicubic", ":"), ("lanczos", "-.")):
        ax.axhline(baselines[method]["psnr"], color="grey", linestyle=style,
                   label=f"{method} {baselines[method]['psnr']:.2f} dB")
    values = [r["validation"]["psnr"] for records in runs.values() for r in records]
    ax.set(xlabel="epoch", ylabel="validation PSNR (dB)",
           ylim=(min(min(values), baselines["bicubic"]["psnr"]) - 0.5, max(values) + 0.5),
           title="Validation PSNR per epoch")
    ax.legend(fontsize=8)
    return _save(fig, out / "psnr.png")


def plot_discriminator(runs: dict[str, list[dict]], out: Path) -> Path | None:
    adversarial = {label: [r for r in records if r.get("adversarial")] for label, records in runs.items()}
    adversarial = {label: records for label, records in adversarial.items() if records}
    if not adversarial:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, records in adversarial.items():
        epochs = [r["epoch"] for r in records]
        line, = ax.plot(epochs, [r["validation"]["discriminator"]["accuracy"] for r in records],
                        label=f"{label}: accuracy")
        ax.plot(epochs, [r["validation"]["discriminator"]["f1"] for r in records], "--",
                color=line.get_color(), label=f"{label}: F1")
    ax.set(xlabel="epoch", ylabel="validation score", ylim=(0, 1.05),
           title="Discriminator on validation faces (real = positive)")
    ax.legend(fontsize=8)
    return _save(fig, out / "discriminator.png")


def plot_grid(upscaler: Upscaler, faces: list[tuple[str, Image.Image]], out: Path) -> Path:
    """One row per face: LR | generated | Lanczos | HR, PSNR (docs/evaluation.md) under each output."""
    fig, axes = plt.subplots(len(faces), 4, figsize=(8, 2.6 * len(faces)), squeeze=False)
    for row, (name, hr) in zip(axes, faces):
        lr = make_lr(hr, upscaler.scale)
        generated = upscaler.upscale(lr)
        lanczos = interpolate(lr, "lanczos", upscaler.scale)
        hr_pixels = np.asarray(hr)
        panels = [("LR", lr, None), ("generated", generated, psnr(hr_pixels, np.asarray(generated))),
                  ("Lanczos", lanczos, psnr(hr_pixels, np.asarray(lanczos))), ("HR", hr, None)]
        for ax, (title, image, value) in zip(row, panels):
            ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title if value is None else f"{title}\n{value:.2f} dB", fontsize=9)
        row[0].set_ylabel(name, fontsize=8)
    fig.suptitle("LR | generated | Lanczos | HR (PSNR vs HR)", fontsize=10)
    return _save(fig, out / "grid.png")


def grid_faces(paths: list[Path], outsider: Image.Image | None) -> list[tuple[str, Image.Image]]:
    """Yale faces at the report's size, plus one face unlike Yale cropped to even size, each as
    docs/evaluation.md's HR (the luma of a colour face)."""
    faces = [(path.stem, Image.fromarray(face_pair(path, REPORT_HR_SIZE)[0])) for path in paths]
    if outsider is not None:
        faces.append(("not Yale", make_hr(luma_image(outsider.convert("RGB")), hr_size=None)))
    return faces


def astronaut_face() -> Image.Image:
    """scikit-image's bundled astronaut portrait (Eileen Collins, NASA, public domain), face crop."""
    from skimage import data

    return Image.fromarray(data.astronaut()).crop((150, 30, 290, 200)).resize((92, 112), Image.Resampling.LANCZOS)


# Grace Hopper's official portrait (US Navy, public domain), as matplotlib ships it: a real JPEG
# (luma quantization table of a quality ~80 encoder). Never trained on. The face, in its pixels:
HOPPER_FACE = (150, 120, 390, 380)


def real_photos() -> list[tuple[str, Image.Image]]:
    """(label, RGB image) of the figure's rows: the photo's face
    as published, the same photo as a small web JPEG (a third of the size, quality 50) and as a
    noisy phone capture (half size, noise sigma 4 on every channel, quality 85)."""
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as published:
        photo, published_quality = published.convert("RGB"), jpeg_quality_of(published.quantization)
    left, top, right, bottom = HOPPER_FACE
    web = jpeg(downscale(photo, 3, "area"), 50).crop((left // 3, top // 3, right // 3, bottom // 3))
    phone = jpeg(gaussian_noise(downscale(photo, 2, "area"), 4.0, np.random.default_rng(0)), 85)
    return [(f"published JPEG (quality {published_quality})", photo.crop(HOPPER_FACE)),
            ("web thumbnail (1/3 size, JPEG 50)", web),
            ("phone-like (1/2 size, noise 4, JPEG 85)", phone.crop((left // 2, top // 2, right // 2, bottom // 2)))]


def plot_real_photos(before: Upscaler, after: Upscaler, out: Path, before_label: str, after_label: str) -> Path:
    """One row per real-photo case: input | Lanczos | ``before`` | ``after``, each model at the
    strength its estimator reads, as the CLI runs a file (named under its title). There is no HR:
    judge by eye."""
    rows = real_photos()
    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 3.2 * len(rows)), squeeze=False)
    for row, (name, image) in zip(axes, rows):
        size = (image.width * after.scale, image.height * after.scale)
        plane = np.asarray(luma_image(image), np.float32) / 255
        panels = [("input (nearest)", image.resize(size, Image.Resampling.NEAREST)),
                  ("Lanczos", interpolate(image, "lanczos", after.scale))]
        panels += [(label + _strength_note(model.strength_for(plane)), model.upscale(image))
                   for label, model in ((before_label, before), (after_label, after))]
        for ax, (title, panel) in zip(row, panels):
            ax.imshow(np.asarray(panel), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=9)
        row[0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"Real photos x{after.scale}: input | Lanczos | {before_label} | {after_label}", fontsize=10)
    return _save(fig, out / "real-photos.png")


def _strength_note(strength: float | None) -> str:
    """How a conditioned model ran: the strength its estimator read."""
    return "" if strength is None else f"\n(auto strength {strength:.2f})"


def _save(fig, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return path


def draw_all(metrics: dict[str, str | Path], out: str | Path, upscaler: Upscaler | None = None,
             faces: list[Path] = (), outsider: bool = True) -> list[Path]:
    """Every figure; the grid only when a model and faces are given."""
    out = Path(out)
    runs = {label: read_metrics(path) for label, path in metrics.items()}
    written = [plot_losses(runs, out), plot_psnr(runs, out), plot_discriminator(runs, out)]
    if upscaler is not None and faces:
        written.append(plot_grid(upscaler, grid_faces(list(faces), astronaut_face() if outsider else None), out))
    return [p for p in written if p is not None]
