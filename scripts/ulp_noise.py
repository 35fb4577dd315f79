#!/usr/bin/env python3
"""How much do last-bit weight differences move a quantized model's score? (README, Keras sources)

Writes SEEDS copies of a float .tflite whose float32 constants (8+ elements) have a fraction of their values
moved by +-1 ulp, quantizes each with litequant in the given modes, and scores every artifact in LiteRT against
the unperturbed float model with litert_eval.py (the corpus scorer's per-model tool):

    python scripts/ulp_noise.py --bin target/release/litequant --model-dir ../shared/corpus/mobilenetv2_035_96 \
        --eval-tool ../shared/tools/litert_eval.py [--seeds 6] [--modes dynamic,int8] [--fraction 0.3]

Needs a Python with ai-edge-litert and numpy (.venv).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def float_constants(path):
    it = Interpreter(model_path=str(path))
    out = []
    for d in it.get_tensor_details():
        try:
            v = it.get_tensor(d["index"])
        except ValueError:
            continue
        if v.dtype == np.float32 and v.size >= 8:
            out.append(v)
    return out


def perturbed(raw, constants, seed, fraction):
    rng = np.random.default_rng(seed)
    b = bytearray(raw)
    for v in constants:
        data = v.tobytes()
        pos = b.find(data)
        if pos < 0:
            continue
        bits = v.view(np.int32).copy()
        step = rng.integers(-1, 2, bits.shape).astype(np.int32) * (rng.random(bits.shape) < fraction)
        b[pos:pos + len(data)] = (bits + step).view(np.float32).tobytes()
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--eval-tool", required=True, type=Path)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--modes", default="dynamic,int8")
    ap.add_argument("--fraction", type=float, default=0.3)
    args = ap.parse_args()
    src = args.model_dir / "model.tflite"
    raw = src.read_bytes()
    constants = float_constants(src)
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        toml = [f'[datasets.c]\nformat = "npz"\npath = "{(args.model_dir / "calib.npz").resolve()}"\n']
        for seed in range(args.seeds):
            (td / f"p{seed}.tflite").write_bytes(perturbed(raw, constants, seed, args.fraction))
            toml.append(f'[models.p{seed}]\nsource = "p{seed}.tflite"\nmodes = {json.dumps(modes)}\ndataset = "c"\n')
        (td / "quantize.toml").write_text("\n".join(toml))
        subprocess.run([str(Path(args.bin).resolve()), "build", "-c", "quantize.toml", "--no-cache"], cwd=td,
                       check=True, capture_output=True)
        for mode in modes:
            scores = []
            for seed in range(args.seeds):
                r = subprocess.run([sys.executable, str(args.eval_tool), "--no-ref-latency", "--runs", "1", str(src),
                                    str(td / "target/quantized" / f"p{seed}.{mode}.tflite"),
                                    str(args.model_dir / "eval.npz")], capture_output=True, text=True, check=True)
                scores.append(json.loads(r.stdout.strip().splitlines()[-1])["sqnr_db"])
            print(f"{args.model_dir.name} {mode}: SQNR {min(scores):.2f}..{max(scores):.2f} dB over {args.seeds} seeds "
                  f"({', '.join(f'{s:.2f}' for s in scores)})")


if __name__ == "__main__":
    main()
