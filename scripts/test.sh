#!/usr/bin/env bash
# Runs every test of litequant, including the LiteRT interop tests.
#
# Creates (once) a Python venv in .venv with the real LiteRT interpreter (ai-edge-litert) and numpy, points the
# tests at it (LITEQUANT_TEST_PYTHON) and at the model corpus (LITEQUANT_CORPUS, default ../shared/corpus), then
# runs `cargo test` for the whole workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LITEQUANT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import ai_edge_litert, numpy" 2>/dev/null; then
  echo "== creating $VENV with ai-edge-litert==2.3.0 and numpy"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "ai-edge-litert==2.3.0" numpy
fi
export LITEQUANT_TEST_PYTHON="${LITEQUANT_TEST_PYTHON:-$PWD/$VENV/bin/python}"
if [ -z "${LITEQUANT_CORPUS:-}" ] && [ -d ../shared/corpus ]; then
  export LITEQUANT_CORPUS="$(cd ../shared/corpus && pwd)"
fi
echo "== python: $LITEQUANT_TEST_PYTHON"
echo "== corpus: ${LITEQUANT_CORPUS:-<none: corpus tests use the fixtures in tests/fixtures>}"
cargo test --workspace "$@"
