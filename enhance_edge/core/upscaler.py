"""The runtime API: ``Upscaler`` turns a PIL image or numpy array into one ``scale`` times larger.

The model sees one plane: gray images directly, colour images through their luma (Y of
YCbCr) while chroma is upscaled bicubically, as OpenCV's ESPCN/FSRCNN and the PyTorch ->
ONNX Runtime super-resolution tutorial do. Alpha is upscaled bicubically on its own, after
the colour under fully transparent pixels has been filled from their visible neighbours.
Large images run through the model in tiles chosen from a memory budget, and the colour
conversions run in strips, so peak memory stays near the budget.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image

from ..errors import ImageError, ModelError
from ..io.imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, working_image
from .batch import FileResult, plan_jobs, upscale_file
from .model import INPUT_NAME, STRENGTH_NAME, bundled_scale_for, open_session, resolve_model
from .output_size import resize_output
from .processing import (JPEG_BLOCK, chroma_pixels, fill_transparent, from_unit_float, resize_plane_rows,
                         rgb_to_luma_chroma, to_unit_float, ycbcr_to_rgb_pixels)
from .upscale_settings import MODEL_FIELDS, UpscaleSettings
from .strength import checked_strength
from .tiling import FALLBACK_MARGIN, choose_tile, half_blend, upscale_tiled

# Memory outside the model run: the interpreter, onnxruntime and the model (measured ~70 MiB).
_BASE_BYTES = 128 << 20
# Image buffers per input pixel held while the model runs and after (input, planes, the
# scale**2 larger float luma and output pixels), by working mode; estimated for scale 2.
_IMAGE_BYTES_PER_PIXEL = {"L": 32, "I;16": 40, "LA": 48, "RGB": 64, "RGBA": 96}
_STRIP_ROWS = 256  # output rows converted at a time
# estimate_strength reads a plane whole (one model run gives the output and the strength it ran at)
# up to this many input pixels, a larger one from a grid of crops. An image upscaled untiled reads
# its strength in its own run, whatever its size; a tiled one gets estimate_strength's.
_ESTIMATE_WHOLE_PIXELS = 512 * 512
_ESTIMATE_CROP = 128
_ESTIMATE_GRID = 4  # crops per side


def _crop_starts(length: int, crop: int) -> np.ndarray:
    """Where estimation crops start along one side: spread evenly, each moved back onto the image's
    own 8x8 grid. A JPEG's blocks start at its corner, and crops that cut through them read lower
    than the whole image (with an estimator trained on aligned blocks only, as clean)."""
    return np.linspace(0, length - crop, _ESTIMATE_GRID).astype(int) // JPEG_BLOCK * JPEG_BLOCK


def _fixed_bytes(width: int, height: int, mode: str) -> int:
    """Memory an upscale needs however it is tiled: the runtime and the whole-image buffers."""
    return _BASE_BYTES + _IMAGE_BYTES_PER_PIXEL.get(mode, 96) * width * height


def _in_strips(height: int, work: Callable[[slice], None], workers: int | None) -> None:
    """``work`` on each strip of rows of an image ``height`` rows high, so temporaries stay small,
    on up to ``workers`` threads (None: one per CPU). numpy and Pillow release the GIL in their
    per-pixel loops, so the conversions around the model use every core, as the model run does:
    on 2 cores a 12-megapixel photo's colour output took 0.47 s instead of 0.71."""
    strips = [slice(top, min(top + _STRIP_ROWS, height)) for top in range(0, height, _STRIP_ROWS)]
    workers = min(workers or os.cpu_count() or 1, len(strips))
    if workers <= 1:
        for rows in strips:
            work(rows)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(work, strips):  # re-raises a strip's error
            pass


def _to_pixels(values: np.ndarray, dtype: np.dtype, workers: int | None) -> np.ndarray:
    """from_unit_float strip by strip."""
    pixels = np.empty(values.shape, dtype=dtype)

    def convert(rows: slice) -> None:
        pixels[rows] = from_unit_float(values[rows], dtype)

    _in_strips(values.shape[0], convert, workers)
    return pixels


class Upscaler:
    """Upscale images with an enhance-edge ONNX model on onnxruntime.

    >>> from enhance_edge import Upscaler
    >>> big = Upscaler().upscale(Image.open("face.png"))    # bundled default model

    ``model`` is a bundled model's name ("default", "fast") or an enhance-edge ONNX file;
    ``precision`` ("auto", "int8", "fp32") picks between a bundled model's files, as the CLI's
    ``--precision`` does (a model file takes "auto" or its own precision). "auto" runs int8 where the
    int8 file is installed and the CPU sums it exactly and faster than fp32 (x86 with VNNI or AMX,
    ARM64 with dot product, and for a file of 7-bit weights x86 with AVX2: model.int8_runs_exactly_here),
    else fp32; the int8 file runs every image in
    int8 (`quantize` kept it within 45 dB PSNR of fp32's output on every image it checked).
    ``last_precision`` says what the last upscale on this thread ran.

    ``strength`` (a model conditioned on the degradation level, such as the bundled ones):
    "auto" estimates from each image how noisy or compressed it is, as the CLI does; a number
    from 0 (treat it as clean: sharpest) to 1 (strongest clean-up of noise and JPEG blocks)
    sets it for every image. ``upscale(..., strength=...)`` overrides it per call.

    ``scale`` (2, 4) picks a bundled model's file of that scale (``Upscaler("default", scale=4)``
    runs "default-x4") and checks a model file's own. ``outscale`` (any factor > 0), or ``width``
    and/or ``height`` in pixels (one alone keeps the aspect ratio), resize the model's result
    with Lanczos to that size, as Real-ESRGAN's ``--outscale`` does; with ``outscale`` and a
    bundled model's plain name, the model is the one whose scale is the smallest at or above it.

    ``tile`` forces tiles of that many input pixels a side; otherwise images whose model
    run would not fit ``max_memory`` bytes (an estimate of the whole upscale's peak) are
    tiled automatically. Tiles overlap by the model's receptive field, so the result equals
    the untiled one (a model that does not state its field gets a wide margin and blended seams).

    These options make an ``UpscaleSettings`` (``settings`` keeps it); ``Upscaler.from_settings``
    takes one whole, as the command line, the web page and a cluster's workers do.
    """

    def __init__(self, model: str | Path | None = None, provider: str = "cpu", threads: int | None = None,
                 **options):
        """``options``: precision, strength, tile, max_memory, scale, outscale, width, height (see the
        class); they and the arguments make an UpscaleSettings, validated there."""
        unknown = [name for name in options if name not in MODEL_FIELDS]  # model, provider, threads are bound above
        if unknown:
            raise TypeError(f"Upscaler() got an unexpected keyword argument {unknown[0]!r}")
        self._open(UpscaleSettings(model, provider, threads, **options))

    @classmethod
    def from_settings(cls, settings: UpscaleSettings) -> Upscaler:
        """An Upscaler for a run's settings (their model fields; the files' are the caller's)."""
        upscaler = cls.__new__(cls)
        upscaler._open(settings)
        return upscaler

    def _open(self, settings: UpscaleSettings) -> None:
        self.settings = settings
        self.output_size = settings.output_size
        scale = settings.scale
        if scale is None and settings.outscale is not None:
            scale = bundled_scale_for(settings.model, settings.outscale)
        self.session, self.info = open_session(resolve_model(settings.model, settings.precision, scale),
                                               settings.provider, settings.threads)
        self.precision = self.info.metadata.get("precision", "fp32")  # of the file opened
        self._threads = settings.threads
        self._last = threading.local()
        if scale is not None and self.info.scale != scale:
            raise ModelError(f"model {self.info.path!r} upscales x{self.info.scale}, not the x{scale} asked for")
        self._check_input_shape()
        self.strength = self.checked_strength(settings.strength)
        self.tile, self.max_memory = settings.tile, settings.max_memory
        self.blend_tiles = self.info.receptive_radius is None
        self.margin = FALLBACK_MARGIN if self.info.receptive_radius is None else self.info.receptive_radius
        self.bytes_per_pixel = self.info.working_bytes_per_pixel

    def _check_input_shape(self) -> None:
        """Refuse, at load time, a model that cannot take (N, 1, H, W) for any H and W."""
        shape = self.session.get_inputs()[0].shape  # ints for fixed sizes, names or None for free ones
        one_channel = len(shape) == 4 and (shape[1] == 1 or not isinstance(shape[1], int))
        if not one_channel or any(isinstance(size, int) for size in shape[2:]):
            raise ModelError(f"model {self.info.path!r} takes inputs of shape {shape}; enhance-edge needs "
                             f"(batch, 1, height, width) with free height and width")

    @property
    def threads(self) -> int | None:
        """The CPU threads it was asked to use (None: onnxruntime's default, one per core)."""
        return self._threads

    @property
    def last_precision(self) -> str:
        """What the last upscale on this thread ran, "fp32" or "int8"; before any, the opened file's
        precision."""
        return getattr(self._last, "precision", self.precision)

    @property
    def last_strength(self) -> float | None:
        """The strength the last upscale on this thread ran the model at: the number asked for, or what
        "auto" estimated; None for a model without the strength input, or before any upscale."""
        return getattr(self._last, "strength", None)

    @property
    def scale(self) -> int:
        """The model's own factor; ``output_dimensions`` gives the size an upscale returns."""
        return self.info.scale

    def output_dimensions(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) ``upscale`` returns for a width x height input."""
        return self.output_size.for_input(width, height, self.scale)

    @functools.cached_property
    def model_name(self) -> str:
        """File name and content hash: what an output's provenance tag names."""
        digest = hashlib.sha256(Path(self.info.path).read_bytes()).hexdigest()[:12]
        return f"{Path(self.info.path).name} (sha256 {digest})"

    def checked_strength(self, strength: float | str | None) -> float | str:
        """``strength`` as this model takes it: "auto" or a number from 0 to 1, a number only for a
        model conditioned on the degradation level (strength.checked_strength)."""
        return checked_strength(strength, self.info.conditioned, self.info.path)

    def estimate_strength(self, plane: np.ndarray) -> float | None:
        """The degradation level the model's estimator reads from a float32 (H, W) luma plane in
        [0, 1] (0 clean, 1 heavy noise or JPEG blocking); None for a model without the strength
        input. A plane of up to _ESTIMATE_WHOLE_PIXELS is read whole, as a plain onnxruntime run of
        the file reads it; a larger one, whose tiles must all run at one level, on a grid of crops
        spread over it (noise and blocking are everywhere)."""
        if not self.info.conditioned:
            return None
        height, width = plane.shape
        if height * width <= _ESTIMATE_WHOLE_PIXELS:
            crops = [plane]
        else:
            crop_h, crop_w = min(_ESTIMATE_CROP, height), min(_ESTIMATE_CROP, width)
            tops, lefts = _crop_starts(height, crop_h), _crop_starts(width, crop_w)
            crops = [plane[t:t + crop_h, x:x + crop_w] for t in tops for x in lefts]
        levels = [self._session_run(crop, None)[1] for crop in crops]
        return float(np.mean([level for level in levels if level is not None]))

    def strength_for(self, plane: np.ndarray, strength: float | str | None = None) -> float | None:
        """The strength an upscale of this luma plane runs at: ``strength`` (None: the Upscaler's own),
        estimated when "auto"; None for a model without the strength input."""
        strength = self.strength if strength is None else self.checked_strength(strength)
        if not self.info.conditioned:
            return None
        if isinstance(strength, float):  # parse_strength's number; else "auto"
            return strength
        return self.estimate_strength(plane)

    def upscale_plane(self, plane: np.ndarray, strength: float | None = None) -> np.ndarray:
        """One float32 (H, W) plane in [0, 1] -> (scale*H, scale*W), not clipped, in one model run.

        ``strength``: the degradation level to run a conditioned model at (required for one, and
        refused for a model without the strength input)."""
        if plane.ndim != 2 or min(plane.shape) < 1:
            raise ImageError(f"expected a non-empty 2-D plane, got shape {plane.shape}")
        if (strength is None) == self.info.conditioned:
            raise ModelError(f"model {self.info.path!r} {'needs' if self.info.conditioned else 'takes no'} "
                             f"a strength")
        return self._run(plane, strength)[0]

    def _run(self, plane: np.ndarray, strength: float | None) -> tuple[np.ndarray, str]:
        """upscale_plane's output and the precision that made it."""
        return self._session_run(plane, strength)[0], self.precision

    def _session_run(self, plane: np.ndarray, strength: float | None) -> tuple[np.ndarray, float | None]:
        """One model run: the (sH, sW) output and, for a conditioned model, the strength it ran at:
        ``strength``, or (None) what its estimator reads."""
        feeds = {INPUT_NAME: plane.astype(np.float32, copy=False)[None, None]}
        if self.info.conditioned:
            feeds[STRENGTH_NAME] = np.array([-1.0 if strength is None else strength], np.float32)
        try:
            outputs = self.session.run(None, feeds)
        except Exception as exc:  # onnxruntime's own errors are untyped
            raise ModelError(f"model {self.info.path!r} failed on a {plane.shape[1]}x{plane.shape[0]} "
                             f"input: {str(exc).splitlines()[0]}") from None
        expected = (1, 1, plane.shape[0] * self.scale, plane.shape[1] * self.scale)
        if outputs[0].shape != expected:
            raise ModelError(f"model {self.info.path!r} returned shape {outputs[0].shape}, expected {expected}")
        return outputs[0][0, 0], float(outputs[1].flat[0]) if self.info.conditioned else None

    def tile_for(self, width: int, height: int, mode: str = "RGB") -> int | None:
        """The tile side used for a width x height image in a working mode (None: untiled)."""
        if self.tile is not None:
            return self.tile if max(width, height) > self.tile else None
        budget = self.max_memory - _fixed_bytes(width, height, mode)
        return choose_tile(width, height, budget, self.bytes_per_pixel, self.margin, self.blend_tiles)

    def peak_memory(self, width: int, height: int, mode: str = "RGB") -> int:
        """Estimated peak bytes of upscaling a width x height image in a working mode, in the
        tiles tile_for picks. Tiles bound only the model run, so this exceeds ``max_memory``
        when the whole-image buffers alone do not fit."""
        tile = self.tile_for(width, height, mode)
        if tile is None:
            run_pixels = width * height
        else:  # the largest tile's model run: the tile with its context margins and blend bands
            side = tile + 2 * (self.margin + half_blend(tile, self.blend_tiles))
            run_pixels = min(side, width) * min(side, height)
        return _fixed_bytes(width, height, mode) + self.bytes_per_pixel * run_pixels

    def _upscale_luma(self, plane: np.ndarray, mode: str, progress: Callable[[int], None] | None,
                      strength: float | str | None) -> np.ndarray:
        asked = self.strength if strength is None else self.checked_strength(strength)
        tile = self.tile_for(plane.shape[1], plane.shape[0], mode)
        ran: set[str] = set()
        if self.info.conditioned and asked == "auto" and tile is None:
            # One run estimates and upscales, exactly as a plain onnxruntime run of the file does (and
            # without estimate_strength's crops, which for a large image are 16 more runs of 128x128).
            result, level = self._session_run(plane, None)
            ran.add(self.precision)
        else:
            level = self.strength_for(plane, asked)

            def run(part: np.ndarray) -> np.ndarray:
                out, precision = self._run(part, level)
                ran.add(precision)
                return out

            result = run(plane) if tile is None else upscale_tiled(plane, run, self.scale, tile, self.margin,
                                                                   progress, self.blend_tiles)
        if tile is None and progress is not None:
            progress(plane.size)
        self._last.precision = "+".join(sorted(ran))  # one file runs every tile of an image
        self._last.strength = level
        return result

    @overload
    def upscale(self, image: Image.Image, *, progress: Callable[[int], None] | None = None,
                strength: float | str | None = None) -> Image.Image: ...

    @overload
    def upscale(self, image: np.ndarray, *, progress: Callable[[int], None] | None = None,
                strength: float | str | None = None) -> np.ndarray: ...

    def upscale(self, image: Image.Image | np.ndarray, *, progress: Callable[[int], None] | None = None,
                strength: float | str | None = None) -> Image.Image | np.ndarray:
        """Upscale a PIL image (any mode) or a uint8/uint16 array (H, W) or (H, W, 2|3|4).

        Gray (L, 16-bit I;16) stays gray at its bit depth, alpha is kept, palette, CMYK and
        other modes become RGB(A). ``progress`` is called with counts of input pixels done.
        ``strength`` overrides the Upscaler's own for this image (see the class). The result
        has ``output_dimensions`` of the input's size.
        """
        if isinstance(image, np.ndarray):
            if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3):
                raise ImageError(f"expected a uint8/uint16 array of shape (H, W) or (H, W, C), "
                                 f"got {image.dtype} {image.shape}")
            try:
                pil_image = Image.fromarray(image)
            except (TypeError, ValueError) as exc:
                raise ImageError(f"cannot use a {image.dtype} array of shape {image.shape}: {exc}") from None
            return np.asarray(self.upscale(pil_image, progress=progress, strength=strength))
        if not isinstance(image, Image.Image):
            path_hint = " (for a file, upscale_file(path))" if isinstance(image, (str, os.PathLike)) else ""
            raise ImageError(f"expected a PIL image or numpy array, got {type(image).__name__}{path_hint}")
        if min(image.size) < 1:
            raise ImageError(f"image has no pixels: {image.size[0]}x{image.size[1]}")
        result = self._upscale_by_model(working_image(image), progress, strength)
        return resize_output(result, self.output_dimensions(*image.size))

    def _upscale_by_model(self, image: Image.Image, progress: Callable[[int], None] | None,
                          strength: float | str | None) -> Image.Image:
        """A working-mode image upscaled by the model's own scale."""
        if image.mode in ("L", "I;16"):
            pixels = np.asarray(image)
            luma = self._upscale_luma(to_unit_float(pixels), image.mode, progress, strength)
            return Image.fromarray(_to_pixels(luma, pixels.dtype, self._threads))
        alpha = np.asarray(image.getchannel("A")) if image.mode in ("LA", "RGBA") else None
        if image.mode == "LA":
            assert alpha is not None  # LA has its alpha channel
            gray = fill_transparent(np.asarray(image)[..., :1], alpha)[..., 0]
            luma = self._upscale_luma(to_unit_float(gray), image.mode, progress, strength)
            gray = _to_pixels(luma, np.dtype(np.uint8), self._threads)
            return Image.fromarray(np.dstack([gray, self._upscale_alpha(alpha)]))
        rgb = np.asarray(image.convert("RGB"))
        if alpha is not None:
            rgb = fill_transparent(rgb, alpha)
        return Image.fromarray(self._upscale_colour(rgb, alpha, progress, strength))

    def upscale_file(self, source: str | Path, target: str | Path | None = None, *, format: str | None = None,
                     suffix: str | None = None, quality: int = DEFAULT_QUALITY, overwrite: bool = False,
                     max_pixels: int = DEFAULT_MAX_PIXELS, strength: float | str | None = None,
                     progress: Callable[[int], None] | None = None,
                     warn: Callable[[str], None] | None = None) -> FileResult:
        """Upscale one image file as `enhance-edge upscale SOURCE [-o TARGET]` does, through the
        command's own code: EXIF orientation applied, ICC profile, DPI and EXIF carried over,
        provenance tags written, written atomically, an existing output kept unless ``overwrite``.

        ``target``: the output file, or a folder for SOURCE's name; None writes NAME_xS.EXT beside
        the input (S: the scale, or the Upscaler's outscale or target). ``format`` ("png", "jpeg",
        "webp", "tiff", "bmp", "gif"), ``suffix``, ``quality`` and ``max_pixels`` are the command's
        options; ``strength`` overrides the Upscaler's own.
        Returns a FileResult (status, sizes, model, precision, strength, seconds); raises
        EnhanceEdgeError subclasses naming the file, and writes nothing then.
        """
        source = Path(source)
        one_file = f"{source}: upscale_file takes one image file, not a folder or a pattern"
        if source.is_dir():
            raise ImageError(one_file)
        jobs = plan_jobs([source], None if target is None else Path(target), scale=self.scale, suffix=suffix,
                         output_format=format, output_size=self.output_size)
        if len(jobs) != 1 or jobs[0].source != source:  # a pattern that matched files
            raise ImageError(one_file)
        return upscale_file(self, jobs[0], overwrite=overwrite, quality=quality, max_pixels=max_pixels,
                            strength=strength, progress=progress, warn=warn)

    def _upscale_alpha(self, alpha: np.ndarray) -> np.ndarray:
        size = (alpha.shape[1] * self.scale, alpha.shape[0] * self.scale)
        return np.asarray(Image.fromarray(alpha).resize(size, Image.Resampling.BICUBIC))

    def _split_colour(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 -> the luma plane the model sees and the (2, H, W) chroma, centred."""
        height, width = rgb.shape[:2]
        luma, chroma = np.empty((height, width), np.float32), np.empty((2, height, width), np.float32)

        def split(rows: slice) -> None:
            rgb_to_luma_chroma(rgb[rows], luma[rows], chroma[:, rows])

        _in_strips(height, split, self._threads)
        return luma, chroma

    def _upscale_colour(self, rgb: np.ndarray, alpha: np.ndarray | None, progress: Callable[[int], None] | None,
                        strength: float | str | None) -> np.ndarray:
        """(H, W, 3) uint8 -> (sH, sW, 3 or 4) uint8: model on luma, bicubic chroma and alpha."""
        height, width = rgb.shape[:2]
        luma, chroma = self._split_colour(rgb)
        cb, cr = (Image.fromarray(plane) for plane in chroma)
        del chroma
        upscaled = self._upscale_luma(luma, "RGB" if alpha is None else "RGBA", progress, strength)
        size = (width * self.scale, height * self.scale)
        out = np.empty((size[1], size[0], 3 if alpha is None else 4), np.uint8)

        def to_rgb(rows: slice) -> None:
            ycbcr_to_rgb_pixels(upscaled[rows], resize_plane_rows(cb, size, rows.start, rows.stop),
                                resize_plane_rows(cr, size, rows.start, rows.stop), out[rows])

        _in_strips(size[1], to_rgb, self._threads)
        if alpha is not None:
            out[..., 3] = self._upscale_alpha(alpha)
        return out

    def upscale_for_jpeg(self, image: Image.Image, *, progress: Callable[[int], None] | None = None,
                         strength: float | str | None = None) -> Image.Image:
        """upscale() for a JPEG file, which keeps chroma at half resolution (4:2:0, Pillow's default).

        A colour image without alpha, at the model's own (even) scale, comes back as a "YCbCr" image:
        the same luma, and chroma at half the output size (bicubic from the input's; at x2 the
        input's own) with each value over 2x2 pixels, which the encoder's 2x2 average gives back
        exactly. upscale()'s full-size bicubic chroma, converted to RGB and by the encoder back,
        gave nearly the same file (decoded: 0.3 levels apart on average) for 0.3-0.4 s more of a
        12-megapixel photo's 3.6 s with `fast` on 2 threads. Any other image: upscale()'s.
        """
        working = working_image(image) if min(image.size) >= 1 else None  # None: upscale() says why not
        if working is None or working.mode != "RGB" or self.scale % 2 or not self.output_size.is_model_scale:
            return self.upscale(image, progress=progress, strength=strength)
        size = (working.width * self.scale, working.height * self.scale)
        # Each buffer is dropped once used: the merged image alone is 4 bytes per output pixel.
        luma, chroma = self._split_colour(np.asarray(working))
        planes = [Image.fromarray(chroma_pixels(plane)) for plane in chroma]
        del chroma
        upscaled = self._upscale_luma(luma, working.mode, progress, strength)
        del luma
        luma_pixels = Image.fromarray(_to_pixels(upscaled, np.dtype(np.uint8), self._threads))
        del upscaled
        half = (size[0] // 2, size[1] // 2)
        for index, plane in enumerate(planes):
            if plane.size != half:
                plane = plane.resize(half, Image.Resampling.BICUBIC)
            planes[index] = plane.resize(size, Image.Resampling.NEAREST)
        return Image.merge("YCbCr", [luma_pixels, *planes])
