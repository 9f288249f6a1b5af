#!/usr/bin/env bash
# A folder's fp32 and int8 models (by default the bundled ones) on aarch64 (under qemu-user
# emulation) against x86, on the 12 Yale test faces of tests/data/yale_test: largest float
# difference, 8-bit pixels that differ, mean PSNR on each architecture. ARM64's int8 kernels differ
# from x86's, and `--precision auto` runs int8 there: rerun this after any change to the models or
# the quantizer, and record its table in benchmarks/RESULTS.md ("ARM64"). To check an int8 file
# made with `enhance-edge quantize` other than the bundled ones, put it beside its fp32 file in a
# folder and name that folder in MODELS.
#
#   sudo benchmarks/arm64.sh            # as root: apt-get and debootstrap; ~15 min the first time
#
# Debian only (bookworm's qemu-user-static 7.2 and debootstrap). No binfmt_misc registration and no
# chroot are needed: debootstrap's first stage only unpacks packages, and the aarch64 Python is run
# through qemu-aarch64-static with -L (its libraries and loader are taken from the Debian root).
# onnxruntime for aarch64 comes from PyPI as a wheel; 1.22, because 1.32 crashed at import under
# qemu 7.2. Settings: ARM64_ROOT (the Debian root, kept between runs), ORT_VERSION, PYTHON (x86,
# with enhance-edge installed), WORK (where inputs and outputs go), MODELS (the models' folder).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${ARM64_ROOT:-/var/tmp/enhance-edge-arm64}
ORT_VERSION=${ORT_VERSION:-1.22.0}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d -t enhance-edge-arm64-XXXX)}
SITE=$ROOT/opt/enhance-edge-site
MODELS=${MODELS:-$REPO/enhance_edge/models}

if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update
    apt-get install -y qemu-user-static debootstrap
fi
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOT" \
        http://deb.debian.org/debian
    # the first stage leaves the included packages' archives unpacked only for the base system:
    # unpack the rest (python3 and its libraries) the same way, without running anything
    for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
fi
ARM_PYTHON=("qemu-aarch64-static" -L "$ROOT" "$ROOT/usr/bin/python3")
PY_VERSION=$("${ARM_PYTHON[@]}" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ ! -d "$SITE/onnxruntime" ]; then
    # onnxruntime >= 1.17's aarch64 wheels are tagged manylinux_2_27/2_28, older ones manylinux2014
    "$PYTHON" -m pip install --quiet --only-binary=:all: --platform manylinux_2_28_aarch64 \
        --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
        --python-version "$PY_VERSION" --implementation cp --target "$SITE" \
        "onnxruntime==$ORT_VERSION" "numpy<2.3"
fi

echo "inputs, then x86 ($(uname -m)), then aarch64 under qemu (slow: minutes)" >&2
cd "$REPO"
"$PYTHON" -m enhance_edge.benchmarks.arm64_run prepare "$WORK/inputs.npz"
"$PYTHON" benchmarks/arm64_run.py run "$WORK/inputs.npz" "$WORK/outputs-x86_64.npz" "$MODELS"
PYTHONPATH=$SITE "${ARM_PYTHON[@]}" benchmarks/arm64_run.py run "$WORK/inputs.npz" "$WORK/outputs-aarch64.npz" \
    "$MODELS"
"$PYTHON" -m enhance_edge.benchmarks.arm64_run compare "$WORK/inputs.npz" "$WORK/outputs-x86_64.npz" \
    "$WORK/outputs-aarch64.npz"
