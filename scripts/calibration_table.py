#!/usr/bin/env python3
"""Calibration methods on the corpus: minmax vs percentile vs mse vs entropy, next to TF's converter.

For each corpus model and each of the modes int8 and int16x8, builds the model with every calibration method
(one quantize.toml in a temp dir, `target/release/litequant build`), scores each artifact against the float
model in LiteRT with tests/litert/litert_eval.py on the model's eval.npz, and prints a markdown table:
SQNR (dB) and top-1 agreement per method, and TF's SQNR from the corpus anchors.jsonl (TF's int8 row is its
float-I/O integer mode, `int_float_fallback`).

usage: python scripts/calibration_table.py [--percentile 99.99] [--models a,b] [--binary PATH]
Environment: LITEQUANT_CORPUS (default tests/corpus), LITEQUANT_EVAL (default tests/litert/litert_eval.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
METHODS = ["minmax", "percentile", "mse", "entropy"]
MODES = [("int8", "int_float_fallback"), ("int16x8", "int16x8")]


def config_text(model_dir: Path, percentile: float) -> str:
    lines = [
        "[settings]",
        'out_dir = "out"',
        'cache = "cache"',
        "",
        "[datasets.calib]",
        'format = "npz"',
        f'path = "{model_dir / "calib.npz"}"',
        "samples = 100",
    ]
    for method in METHODS:
        lines += [
            "",
            f"[models.{method}]",
            f'source = "{model_dir / "model.tflite"}"',
            f"modes = [{', '.join(json.dumps(m) for m, _ in MODES)}]",
            'dataset = "calib"',
            f'calibration = "{method}"',
        ]
        if method == "percentile":
            lines.append(f"percentile = {percentile}")
    return "\n".join(lines) + "\n"


def tf_anchors(corpus: Path) -> dict[tuple[str, str], dict]:
    rows = {}
    for line in (corpus / "anchors.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("tool") == "tf":
            rows[(row["model"], row["mode"])] = row
    return rows


def evaluate(tool: Path, float_model: Path, quant_model: Path, eval_npz: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(tool), str(float_model), str(quant_model), str(eval_npz),
         "--runs", "1", "--no-ref-latency"],
        capture_output=True, text=True, check=False,
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"loads_ok": False, "error": (out.stderr or out.stdout)[-300:]}


def cell(result: dict | None) -> str:
    if not result or not result.get("loads_ok") or result.get("sqnr_db") is None:
        return "error"
    top1 = result.get("top1_agree")
    return f"{result['sqnr_db']:.2f}" + (f" / {top1:.4f}" if top1 is not None else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--percentile", type=float, default=99.99)
    ap.add_argument("--models", default="", help="comma-separated corpus models (default all)")
    ap.add_argument("--binary", default=str(REPO / "target/release/litequant"))
    args = ap.parse_args()
    corpus = Path(os.environ.get("LITEQUANT_CORPUS", REPO / "tests/corpus"))
    tool = Path(os.environ.get("LITEQUANT_EVAL", REPO / "tests/litert/litert_eval.py"))
    models = sorted(p.parent.name for p in corpus.glob("*/model.tflite"))
    if args.models:
        models = [m for m in models if m in args.models.split(",")]
    anchors = tf_anchors(corpus)

    print(f"SQNR dB / top-1 agreement vs the float model in LiteRT (eval.npz); percentile = {args.percentile}\n")
    print("| model | mode | minmax | percentile | mse | entropy | best - minmax (dB) | TF converter |")
    print("|---|---|---|---|---|---|---|---|")
    gains = {m: [] for m in METHODS[1:]}
    for model in models:
        mdir = corpus / model
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "quantize.toml").write_text(config_text(mdir, args.percentile))
            build = subprocess.run([args.binary, "build"], cwd=tmp, capture_output=True, text=True)
            if build.returncode != 0:
                print(f"| {model} | all | build failed: {build.stderr.strip()[-200:]} | | | | | |")
                continue
            for mode, tf_mode in MODES:
                results = {
                    method: evaluate(tool, mdir / "model.tflite", tmp / f"out/{method}.{mode}.tflite",
                                     mdir / "eval.npz")
                    for method in METHODS
                }
                base = results["minmax"].get("sqnr_db")
                scores = {m: r.get("sqnr_db") for m, r in results.items() if r.get("loads_ok")}
                for m in METHODS[1:]:
                    if base is not None and scores.get(m) is not None:
                        gains[m].append(scores[m] - base)
                best = max((s for s in scores.values() if s is not None), default=None)
                delta = f"{best - base:+.2f}" if best is not None and base is not None else "-"
                tf = anchors.get((model, tf_mode), {})
                tf_cell = f"{tf['sqnr_db']:.2f}" if tf.get("sqnr_db") is not None else "-"
                print(f"| {model} | {mode} | " + " | ".join(cell(results[m]) for m in METHODS)
                      + f" | {delta} | {tf_cell} |", flush=True)
    print()
    for m, g in gains.items():
        if g:
            g = sorted(g)
            print(f"{m}: beats minmax on {sum(x > 0 for x in g)}/{len(g)} rows, "
                  f"median {g[len(g) // 2]:+.2f} dB, worst {g[0]:+.2f} dB, best {g[-1]:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
