#!/usr/bin/env bash
# Runs every test of litequant, including the LiteRT interop tests.
#
# Creates (once) a Python venv in .venv with the real LiteRT interpreter (ai-edge-litert) and numpy, points the
# tests at it (LITEQUANT_TEST_PYTHON), then runs `cargo test` for the whole workspace. Extra arguments go to
# `cargo test`. The model corpus the tests run on is committed in tests/corpus; LITEQUANT_CORPUS (a
# `:`-separated list of folders holding <model>/model.tflite) adds models and is never needed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LITEQUANT_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import ai_edge_litert, numpy" 2>/dev/null; then
  echo "== creating $VENV with ai-edge-litert==2.3.0 and numpy"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "ai-edge-litert==2.3.0" numpy
fi
export LITEQUANT_TEST_PYTHON="${LITEQUANT_TEST_PYTHON:-$VENV/bin/python}"
echo "== python: $LITEQUANT_TEST_PYTHON"
echo "== corpus: tests/corpus${LITEQUANT_CORPUS:+ + $LITEQUANT_CORPUS}"
cargo test --workspace "$@"
