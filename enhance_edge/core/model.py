"""Loading an enhance-edge ONNX model and reading its contract from the file's metadata.

The runtime learns scale, channels, value range and layout from the model itself (a typed
descriptor, checked at the boundary) instead of from command-line flags.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidProtobuf

from ..errors import ModelError, ProviderError
from .output_size import model_scale_for
from .tiling import receptive_radius, working_bytes_per_pixel
from .settings import PRECISIONS

# Version 2: one file is the whole model. A conditioned model (generator_config "condition":
# "degradation") carries its degradation estimator inside the graph (export/graph.py): fed only
# INPUT_NAME it estimates the level (the "strength") itself; the optional STRENGTH_NAME (one value,
# default -1: below 0 estimate, else that level) overrides it, and STRENGTH_USED_NAME says, per
# image, the level it ran at.
FORMAT = "enhance-edge-onnx/2"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
STRENGTH_NAME = "strength"
STRENGTH_USED_NAME = "strength_used"
# The estimator's weights in the joined graph: its parameter names under this prefix.
ESTIMATOR_PREFIX = "estimator/"
# What tiling needs to know of a model, written by the exporter from the generator's structure:
# how many input pixels around an output pixel it reads (the tiles' context margin) and its peak
# working memory per input pixel (what sizes tiles under a memory budget).
RECEPTIVE_RADIUS_KEY = "receptive_radius"
# Bounds of what a file may declare: a radius beyond any generator the configs allow (train/config.py)
# would turn tiling off (a 1e9 radius made a 1000x1000 image take 109 s at --max-memory 300M).
MAX_RECEPTIVE_RADIUS = 1024
MAX_WORKING_BYTES = 1 << 20
WORKING_BYTES_KEY = "working_bytes_per_pixel"

# Short names accepted by --provider, beside onnxruntime's own full names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# The onnxruntime builds that bring an execution provider the plain onnxruntime package lacks.
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "DmlExecutionProvider": "onnxruntime-directml",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
}

# Metadata key: onnxruntime graph optimizers that slow this model down, comma-separated names
# for InferenceSession(disabled_optimizers=...). The exporter decides (export/onnx_export.py).
DISABLED_OPTIMIZERS_KEY = "onnxruntime_disabled_optimizers"

BUNDLED_MODELS = ("default", "fast", "default-x4")
# CPU features with which onnxruntime's int8 kernels both sum u8 x s8 products exactly (straight into
# 32 bits) and run faster than its fp32 ones: x86's VNNI (AVX-512 or AVX) and AMX, ARM64's dot product
# (Linux's "asimddp"; every Apple silicon Mac has it). Plain AVX2 or AVX-512 sums pairs of products into
# saturating 16-bit values (a clean, bright image lost 9 dB there); ARM64 without dot product sums exactly
# but is not measured faster than fp32. "auto" runs int8 with one of them (issue 27), or as below.
INT8_X86_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INT8_ARM64_FLAGS = ("asimddp",)
# Those 16-bit pair sums are exact when the weights fit 7 bits (255 * 64 * 2 < 2**15), as an int8 file
# made with `quantize --weight-bits 7` states under INT8_WEIGHT_BITS_KEY; and with AVX2, int8 was
# measured faster than fp32 (AMD Zen 3, 2 threads, 1024x1024: the 8-bit `default-int8` 0.70x fp32's
# time, `fast-int8` 0.78x, `default-x4-int8` 0.81x), so "auto" runs such a file there.
INT8_PAIR_SUM_X86_FLAG = "avx2"
PAIR_SUM_EXACT_WEIGHT_BITS = 7
INT8_WEIGHT_BITS_KEY = "int8_weight_bits"  # metadata: the int8 weights' bits (absent: 8)


def int8_model_path(fp32_path: str | Path) -> Path:
    """Where the int8 model made from an fp32 model is kept: beside it, as NAME-int8.onnx."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(f"{fp32_path.stem}-int8{fp32_path.suffix}")


def int8_instructions(machine: str | None = None, cpuinfo: Path = Path("/proc/cpuinfo"),
                      system: str | None = None) -> list[str]:
    """This CPU's features that make int8 exact and fast (INT8_X86_FLAGS, INT8_ARM64_FLAGS), as
    /proc/cpuinfo names them; ["dotprod"] on an Apple silicon Mac; none where they cannot be read
    (a cautious answer: fp32)."""
    machine = (machine or platform.machine()).lower()
    arm = machine in ("arm64", "aarch64")
    if arm and (system or platform.system()) == "Darwin":
        return ["dotprod"]
    flags = _cpu_flags(cpuinfo)
    return [flag for flag in (INT8_ARM64_FLAGS if arm else INT8_X86_FLAGS) if flag in flags]


def int8_pair_sums(machine: str | None = None, cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU is x86 with AVX2 and none of int8_instructions: its int8 kernels are exact and
    faster than fp32 for 7-bit weights only (INT8_PAIR_SUM_X86_FLAG)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return False
    flags = _cpu_flags(cpuinfo)
    return INT8_PAIR_SUM_X86_FLAG in flags and not any(flag in flags for flag in INT8_X86_FLAGS)


def _cpu_flags(cpuinfo: Path) -> set[str]:
    """The first CPU's flags (x86) or features (ARM) in /proc/cpuinfo; none where it cannot be read."""
    try:
        found = re.findall(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo.read_text(), re.M)
    except OSError:
        return set()
    return set(found[0].split()) if found else set()


def int8_weight_bits(metadata: dict[str, str]) -> int:
    """The bits of an int8 file's weights, from its metadata (INT8_WEIGHT_BITS_KEY; absent or unreadable: 8)."""
    value = metadata.get(INT8_WEIGHT_BITS_KEY, "8")
    return int(value) if value.isdigit() else 8


def int8_runs_exactly_here(int8_path: str | Path) -> bool:
    """Whether "auto" runs this int8 file on this CPU: where it has int8_instructions, or where its
    kernels sum pairs of products in 16 bits (int8_pair_sums) and the file's weights fit 7 bits (read
    from its metadata alone, without building a session)."""
    return bool(int8_instructions()) or (
        int8_pair_sums() and int8_weight_bits(_stored_metadata(str(int8_path)) or {}) <= PAIR_SUM_EXACT_WEIGHT_BITS)


def _bundled_file(name: str, precision: str) -> Path:
    """Where the package keeps a bundled model's file of one precision (fp32 or int8)."""
    fp32 = Path(str(resources.files("enhance_edge") / "models" / f"{name}.onnx"))
    return fp32 if precision == "fp32" else int8_model_path(fp32)


def bundled_model_path(name: str = "default", precision: str = "fp32") -> Path:
    """Path of a model shipped inside the package, in the given precision.

    "auto" is int8 where this install has an int8 model and the CPU sums it exactly and faster than
    fp32 (int8_runs_exactly_here: x86 with VNNI or AMX, ARM64 with dot product, and for a file of
    7-bit weights x86 with AVX2), else fp32. An int8
    file runs every image in int8: `enhance-edge quantize` kept it only where its output stays within
    45 dB PSNR of fp32's on every image it checked (MODEL_CARD.md, "int8").
    """
    if name not in BUNDLED_MODELS:
        raise ModelError(f"no bundled model named {name!r}; bundled: {', '.join(BUNDLED_MODELS)}")
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    fp32, int8 = _bundled_file(name, "fp32"), _bundled_file(name, "int8")
    if precision == "int8" and not int8.is_file():
        raise ModelError(f"this install has no int8 {name!r} model {str(int8)!r}; use --precision fp32 or auto, "
                         f"or make one with `enhance-edge quantize {fp32} --calibration FACES -o {int8}` (it "
                         f"prints its quality gate's table, and writes the file only if it passes)")
    if precision == "int8" or (precision == "auto" and int8.is_file() and int8_runs_exactly_here(int8)):
        return int8
    return fp32


@dataclass(frozen=True)
class BundledModel:
    """One model file shipped inside the package, as `enhance-edge models` lists it."""

    name: str
    precision: str
    scale: int
    macs_per_input_pixel: int | None
    file_bytes: int
    test_psnr: float | None  # docs/evaluation.md, Yale test subjects, as stored in the file at release
    path: str
    weight_bits: int | None = None  # an int8 file's (int8_weight_bits); None for fp32

    to_dict = asdict


def bundled_models() -> list[BundledModel]:
    """Every bundled model file this install has, each described from its own metadata."""
    found = []
    for name in BUNDLED_MODELS:
        for precision in ("fp32", "int8"):
            path = _bundled_file(name, precision)
            if not path.is_file():
                continue
            _, info = open_session(path, "cpu", 1)
            macs, test = info.metadata.get("macs_per_input_pixel"), info.json_field("test") or {}
            found.append(BundledModel(name, precision, info.scale, int(macs) if macs else None,
                                      path.stat().st_size, test.get("psnr"), str(path),
                                      int8_weight_bits(info.metadata) if precision == "int8" else None))
    return found


def bundled_scale(name: str) -> int:
    """The scale a bundled model's name carries: "NAME-xS" is xS, a plain name x2."""
    found = re.fullmatch(r".+-x(\d+)", name)
    return int(found.group(1)) if found else 2


def bundled_scales(model: str | None = None) -> tuple[int, ...]:
    """The scales the bundled models of one name ("default", "fast") come in, ascending."""
    family = _family(model or BUNDLED_MODELS[0])
    return tuple(sorted(bundled_scale(name) for name in BUNDLED_MODELS if _family(name) == family))


def _family(name: str) -> str:
    """"default-x4" -> "default": the name without its scale."""
    return re.sub(r"-x\d+$", "", name)


def bundled_name(model: str | None = None, scale: int | None = None) -> str:
    """The bundled model a name and a scale choose: ("default", 4) is "default-x4"; no scale
    keeps the name's own. ModelError when that name has no model of that scale."""
    name = model or BUNDLED_MODELS[0]
    if scale is None or bundled_scale(name) == scale:
        return name
    family = _family(name)
    chosen = family if scale == 2 else f"{family}-x{scale}"
    if chosen not in BUNDLED_MODELS:
        scales = ", ".join(f"x{s}" for s in bundled_scales(family)) or "none"
        raise ModelError(f"no bundled x{scale} model of {family!r} (it comes in {scales}); bundled: "
                         f"{', '.join(BUNDLED_MODELS)}")
    return chosen


def bundled_scale_for(model: str | Path | None, factor: float) -> int | None:
    """For the default model (None) or a bundled model's plain name, the scale of its file whose
    scale is the smallest at or above ``factor`` (else its largest); None for a model file or a
    name that states its scale ("default-x4"), which keep their own."""
    if model is not None and (str(model) not in BUNDLED_MODELS or bundled_scale(str(model)) != 2):
        return None
    return model_scale_for(factor, bundled_scales(None if model is None else str(model)))


def resolve_model(model: str | Path | None = None, precision: str = "auto", scale: int | None = None) -> Path:
    """A bundled model's name (at ``scale``, see bundled_name) in the given precision, or the path of
    an ONNX file (whose precision is its own: ``precision`` is "auto" or that one, which for an int8
    file means every image in int8; its scale is checked where it is opened). None is the bundled
    default model."""
    if model is None or str(model) in BUNDLED_MODELS:
        return bundled_model_path(bundled_name(None if model is None else str(model), scale), precision)
    path = Path(model)
    if not path.is_file():
        close = difflib.get_close_matches(str(model), BUNDLED_MODELS, n=1)
        raise ModelError(f"model {str(model)!r} does not exist: it is neither a file nor a bundled model "
                         f"({', '.join(BUNDLED_MODELS)}){f'; did you mean {close[0]!r}?' if close else ''}")
    own = precision if precision == "auto" else (_stored_metadata(str(path)) or {}).get("precision", "fp32")
    if precision != own:
        raise ModelError(f"{str(model)!r} is an {own} model file, and --precision {precision} cannot change "
                         f"that: pass the file of the precision you want, or a bundled model's name")
    return path


def resolve_provider(name: str) -> str:
    """'cpu' -> 'CPUExecutionProvider'; unknown or unavailable names list what is available."""
    full = PROVIDER_ALIASES.get(name.lower(), name)
    available = ort.get_available_providers()
    if full not in available:
        package = PROVIDER_PACKAGES.get(full)
        raise ProviderError(f"execution provider {name!r} is not available in this onnxruntime; "
                            f"available: {', '.join(available)}"
                            + (f"; it comes with the {package} package, installed in place of onnxruntime: "
                               f"pip uninstall onnxruntime && pip install {package}" if package else ""))
    return full


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, read from its ONNX metadata."""

    path: str
    scale: int
    channels: int
    value_range: tuple[float, float]
    layout: str
    receptive_radius: int | None  # RECEPTIVE_RADIUS_KEY; None: unknown (no key, no readable generator config)
    working_bytes_per_pixel: int  # WORKING_BYTES_KEY
    metadata: dict[str, str] = field(repr=False)
    conditioned: bool = False  # takes an optional strength (the degradation level) and says the one it used

    @property
    def disabled_optimizers(self) -> list[str]:
        return _optimizer_names(self.metadata)

    @classmethod
    def from_metadata(cls, path: str, metadata: dict[str, str]) -> ModelInfo:
        if metadata.get("format") == "enhance-edge-onnx/1":
            raise ModelError(f"{path!r} was made by enhance-edge 0.1 (format enhance-edge-onnx/1, a model in "
                             f"several files); export its checkpoint again for this version")
        if metadata.get("format") != FORMAT:
            raise ModelError(f"{path!r} is not an enhance-edge model: metadata format is "
                             f"{metadata.get('format')!r}, expected {FORMAT!r}")
        try:
            scale, channels = int(metadata["scale"]), int(metadata["channels"])
            low, high = (float(v) for v in metadata["value_range"].split(","))
            layout = metadata["layout"]
        except (KeyError, ValueError) as exc:
            raise ModelError(f"{path!r} has unreadable metadata ({exc!r})") from None
        if scale < 1 or channels != 1 or layout != "NCHW" or (low, high) != (0.0, 1.0):
            raise ModelError(f"{path!r} declares scale={scale}, channels={channels}, layout={layout}, "
                             f"range=({low}, {high}); this runtime supports channels=1, NCHW, range (0, 1)")
        try:
            generator = json.loads(metadata.get("generator_config", "{}"))
        except ValueError:
            generator = {}
        receptive, working_bytes = _tiling_facts(path, metadata, generator)
        conditioned = isinstance(generator, dict) and generator.get("condition") == "degradation"
        return cls(path, scale, channels, (low, high), layout, receptive, working_bytes, dict(metadata), conditioned)

    def json_field(self, key: str) -> Any:
        """A metadata value that was stored as JSON (configs, training facts), or None."""
        value = self.metadata.get(key)
        return json.loads(value) if value is not None else None


def _tiling_facts(path: str, metadata: dict[str, str], generator: Any) -> tuple[int | None, int]:
    """(receptive radius, working bytes per pixel) as the file states them; for a file written
    before those keys, what the exporter would have written from its generator config (a radius
    of None if it has none)."""
    try:
        radius = (int(metadata[RECEPTIVE_RADIUS_KEY]) if RECEPTIVE_RADIUS_KEY in metadata
                  else receptive_radius(generator))
        working_bytes = (int(metadata[WORKING_BYTES_KEY]) if WORKING_BYTES_KEY in metadata
                         else working_bytes_per_pixel(generator))
    except ValueError as exc:
        raise ModelError(f"{path!r} has unreadable metadata ({exc!r})") from None
    if (radius is not None and not 0 <= radius <= MAX_RECEPTIVE_RADIUS) or not 1 <= working_bytes <= MAX_WORKING_BYTES:
        raise ModelError(f"{path!r} declares {RECEPTIVE_RADIUS_KEY}={radius} and {WORKING_BYTES_KEY}={working_bytes}; "
                         f"they must be from 0 to {MAX_RECEPTIVE_RADIUS} and from 1 to {MAX_WORKING_BYTES}")
    return radius, working_bytes


def open_session(model_path: str | Path, provider: str = "cpu", threads: int | None = None,
                 options: ort.SessionOptions | None = None) -> tuple[ort.InferenceSession, ModelInfo]:
    """An onnxruntime session for the model, as its metadata asks to be run, and its checked descriptor.

    ``options`` (for profiling, say) are used as given, with ``threads`` applied on top.
    """
    path = str(model_path)
    if not Path(path).is_file():
        raise ModelError(f"model file {path!r} does not exist")
    if threads is not None and threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    if options is None:
        options = ort.SessionOptions()
        # The memory pattern plans one block per input shape for a whole run; ours change shape
        # with every image and tile. Without it the arena reuses freed buffers: peak memory of
        # a 1024x1024 run went 789 -> 471 MB (int8) and 644 -> 368 MB (fp32) at the same speed.
        options.enable_mem_pattern = False
    # Errors only: onnxruntime warns, at every load, that the optional strength input (an initializer
    # a feed may override) is not folded as a constant, which is its purpose.
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    providers = [resolve_provider(provider)]
    stored = _stored_metadata(path)
    disabled = _optimizer_names(stored) if stored is not None else []
    session = _load(path, options, providers, disabled)
    info = ModelInfo.from_metadata(path, session.get_modelmeta().custom_metadata_map)
    if info.disabled_optimizers != disabled:  # the file's protobuf was not read as onnxruntime reads it
        session = _load(path, options, providers, info.disabled_optimizers)
    _check_contract(path, session, info.conditioned)
    return session, info


def _check_contract(path: str, session: ort.InferenceSession, conditioned: bool) -> None:
    """ModelError unless the graph has the inputs and outputs of FORMAT (the optional strength is an
    initializer that a feed overrides, which onnxruntime lists apart from the inputs).

    Other overridable initializers are not the contract's and never fed, so they keep the values
    the file gives them. A format-2 file exported before the JPEG floor went also has "min_strength"
    (default 0: the least level "auto" may choose); left at 0 it runs as a file without it."""
    found = ([i.name for i in session.get_inputs()],
             [i.name for i in session.get_overridable_initializers() if i.name == STRENGTH_NAME],
             [o.name for o in session.get_outputs()])
    expected = ([INPUT_NAME], [STRENGTH_NAME] if conditioned else [],
                [OUTPUT_NAME, STRENGTH_USED_NAME] if conditioned else [OUTPUT_NAME])
    if found != expected:
        raise ModelError(f"{path!r} must have the input {INPUT_NAME!r}"
                         + (f", the optional input {STRENGTH_NAME!r}" if conditioned else "")
                         + f" and the outputs {expected[2]}; has {found[0]}, {found[1]} -> {found[2]}")


def _optimizer_names(metadata: dict[str, str]) -> list[str]:
    return [name for name in metadata.get(DISABLED_OPTIMIZERS_KEY, "").split(",") if name]


def _stored_metadata(path: str) -> dict[str, str] | None:
    """The file's ONNX metadata (ModelProto field 14, entries {key: 1, value: 2}) read from its protobuf,
    or None where it does not parse as expected (onnxruntime then says what is wrong with the file).

    onnxruntime shows metadata only on a built session, and a model that disables optimizers needs
    them named when its session is built: reading them first builds it once, not twice (~25 ms of a
    command's start for each `default` file). The graph and its weights are skipped, not read."""
    try:
        with open(path, "rb") as handle:
            entries = _protobuf_fields(handle, os.fstat(handle.fileno()).st_size, {14})
            metadata = {}
            for _, entry in entries:
                fields = dict(_protobuf_fields(io.BytesIO(entry), len(entry), {1, 2}))
                metadata[fields.get(1, b"").decode("utf-8")] = fields.get(2, b"").decode("utf-8")
            return metadata
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _protobuf_fields(stream: BinaryIO, end: int, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """(field number, bytes) of the length-delimited fields numbered in ``wanted`` of the protobuf
    message in ``stream`` up to ``end``, every other field skipped unread; ValueError where the
    message is cut short or malformed."""
    while stream.tell() < end:
        key = _varint(stream)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _varint(stream)
            continue
        if wire_type == 2:
            length = _varint(stream)
            if number in wanted:
                if length > end - stream.tell():  # declared longer than the file: never allocated
                    raise ValueError("protobuf message cut short")
                payload = stream.read(length)
                if len(payload) < length:
                    raise ValueError("protobuf message cut short")
                yield number, payload
                continue
            stream.seek(length, os.SEEK_CUR)
        elif wire_type in (1, 5):
            stream.seek(8 if wire_type == 1 else 4, os.SEEK_CUR)
        else:
            raise ValueError(f"protobuf wire type {wire_type}")
        if stream.tell() > end:
            raise ValueError("protobuf message cut short")


def _varint(stream: BinaryIO) -> int:
    value = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise ValueError("protobuf message cut short")
        value, shift = value | (byte[0] & 0x7F) << shift, shift + 7
        if byte[0] < 0x80:
            return value


def _load(path: str, options: ort.SessionOptions, providers: list[str],
          disabled_optimizers: list[str] | None = None) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(path, sess_options=options, providers=providers,
                                    disabled_optimizers=disabled_optimizers)
    except InvalidProtobuf:  # a file of another kind (or cut short): say so, not "INVALID_PROTOBUF : ..."
        raise ModelError(f"cannot load model {path!r}: not an ONNX model (its content does not parse as one)") from None
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"cannot load model {path!r}: {str(exc).splitlines()[0]}") from None
