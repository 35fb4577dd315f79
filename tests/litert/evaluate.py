#!/usr/bin/env python3
"""Loads a quantized .tflite in LiteRT, runs it beside its float source, prints one JSON line.

usage: evaluate.py FLOAT.tflite QUANT.tflite [EVAL.npz] [--samples N] [--seed S]

Inputs come from EVAL.npz (arrays matched to inputs by name, without `serving_default_`/`:0`, or by position;
first axis = samples), else uniform random in [0, 1). Integer model inputs are quantized the way LiteRT's
QUANTIZE op does (x / scale, round half to even, + zero point, clamp); integer outputs are dequantized.

Output: {"loads_ok", "error", "n_samples", "sqnr_db", "top1_agree", "input_types", "output_types",
         "float_compute_ops", "hybrid_ops", "ops"}: SQNR over all outputs and samples, float_compute_ops = ops of the quantized
model that compute in float32 (neither QUANTIZE nor DEQUANTIZE, with a float32 output); hybrid_ops = those of
them reading an int8 tensor (dynamic-range kernels).
"""
import argparse
import json
import math
import os
import sys

import numpy as np


def norm(n):
    if n.startswith("serving_default_"):
        n = n[len("serving_default_"):]
    return n[:-2] if n.endswith(":0") else n


def feed(details, data, i, rng):
    out = []
    keys = [k for k in (data.files if data is not None else []) if k not in ("labels", "label_output_index")]
    for pos, d in enumerate(details):
        shape = [int(s) for s in d["shape"]]
        if data is None:
            x = rng.random(shape, dtype=np.float32)
        else:
            cand = [k for k in keys if k == d["name"] or norm(k) == norm(d["name"])]
            k = cand[0] if cand else keys[pos]
            x = np.asarray(data[k][i], dtype=np.float32).reshape(shape)
        out.append(x)
    return out


def to_input(d, x):
    dt = np.dtype(d["dtype"])
    if dt == np.float32:
        return x
    scale, zp = d["quantization"]
    info = np.iinfo(dt)
    q = np.rint(x.astype(np.float32) / np.float32(scale)).astype(np.int64) + zp
    return np.clip(q, info.min, info.max).astype(dt)


def from_output(d, y):
    if y.dtype == np.float32:
        return y.astype(np.float64)
    scale, zp = d["quantization"]
    return (y.astype(np.float64) - zp) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("float_model")
    ap.add_argument("quant_model")
    ap.add_argument("eval", nargs="?")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    res = {"loads_ok": False, "error": None}
    try:
        fi = Interpreter(model_path=a.float_model)
        fi.allocate_tensors()
        qi = Interpreter(model_path=a.quant_model)
        qi.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(res))
        return 0
    data = np.load(a.eval) if a.eval else None
    n = a.samples
    if data is not None:
        first = [k for k in data.files if k not in ("labels", "label_output_index")][0]
        n = min(n, data[first].shape[0])
    rng = np.random.default_rng(a.seed)
    fin, qin = fi.get_input_details(), qi.get_input_details()
    fout, qout = fi.get_output_details(), qi.get_output_details()
    qnames = [d["name"] for d in qout]
    omap = [qnames.index(d["name"]) if d["name"] in qnames else i for i, d in enumerate(fout)]
    sig, noise, agree, total = 0.0, 0.0, 0, 0
    try:
        for i in range(n):
            xs = feed(fin, data, i, rng)
            for d, x in zip(fin, xs):
                fi.set_tensor(d["index"], x)
            qmap = {norm(d["name"]): d for d in qin}
            for pos, (fd, x) in enumerate(zip(fin, xs)):
                qd = qmap.get(norm(fd["name"]), qin[pos])
                qi.set_tensor(qd["index"], to_input(qd, x))
            fi.reset_all_variables()  # every sample from reset state (recurrent ops)
            fi.invoke()
            qi.reset_all_variables()  # every sample from reset state (recurrent ops)
            qi.invoke()
            for j, fd in enumerate(fout):
                f = fi.get_tensor(fd["index"]).astype(np.float64)
                qd = qout[omap[j]]
                q = from_output(qd, qi.get_tensor(qd["index"]))
                sig += float(np.sum(f * f))
                noise += float(np.sum((f - q) ** 2))
                if f.ndim == 2 and f.shape[-1] > 1:
                    agree += int(np.argmax(f) == np.argmax(q))
                    total += 1
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(res))
        return 0
    res["loads_ok"] = True
    res["n_samples"] = n
    res["sqnr_db"] = 200.0 if noise == 0 else 10 * math.log10(max(sig, 1e-30) / noise)
    res["top1_agree"] = agree / total if total else None
    res["input_types"] = [np.dtype(d["dtype"]).name for d in qin]
    res["output_types"] = [np.dtype(d["dtype"]).name for d in qout]
    # Counted from the flatbuffer, over every subgraph (LiteRT's Python API lists the main subgraph's ops only,
    # and a loop body's ops count too), as the anchors were.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tflite_info  # same folder

    s = tflite_info.summarize(a.quant_model)
    res["float_compute_ops"] = sum(s["float_compute_ops"].values())
    res["hybrid_ops"] = sum(
        n for k, n in s["ops_typed"].items()
        if "/w:" in k and "int8" in k.split("/w:", 1)[1] and k.endswith("->float32)")
    )
    res["ops"] = sum(s["ops"].values())
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
