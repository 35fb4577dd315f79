#!/usr/bin/env python3
"""Scores a quantized .tflite against its float source in LiteRT, as litequant's accuracy report does.

usage: eval_ref.py FLOAT.tflite QUANT.tflite EVAL.npz

Runs the quantized model with LiteRT's reference kernels (OpResolverType.BUILTIN_REF: TFLite's integer
arithmetic, which litequant's interpreter reproduces) and with the default (XNNPACK) resolver; prints one JSON
line: {"ref": {...}, "default": {...}} with sqnr_db (all outputs, all samples), top1_agree (mean over outputs
holding probability rows, plus the labels' output), acc_float and acc_quant when EVAL.npz has `labels`.
Integer inputs are quantized with round half away from zero (what litequant's interpreter does).
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

RESERVED = {"labels", "label_output_index"}


def norm(n):
    if n.startswith("serving_default_"):
        n = n[len("serving_default_"):]
    return n[:-2] if n.endswith(":0") else n


def run(path, data, keys, n, resolver=None):
    kw = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    it = Interpreter(model_path=path, **kw)
    it.allocate_tensors()
    ins = it.get_input_details()
    order = []
    for d in ins:
        match = [k for k in keys if k == d["name"] or norm(k) == norm(d["name"])]
        order.append(match[0] if match else keys[len(order)])
    outs = [[] for _ in it.get_output_details()]
    for i in range(n):
        for d, k in zip(ins, order):
            x = data[k][i].astype(np.float32).reshape(d["shape"])
            if d["dtype"] != np.float32:
                scale, zp = d["quantization"]
                info = np.iinfo(d["dtype"])
                y = (x / np.float32(scale)).astype(np.float64)
                q = np.sign(y) * np.floor(np.abs(y) + 0.5)
                x = np.clip(q.astype(np.int64) + zp, info.min, info.max).astype(d["dtype"])
            it.set_tensor(d["index"], x)
        it.reset_all_variables()  # every sample from reset state (recurrent ops)
        it.invoke()
        for j, d in enumerate(it.get_output_details()):
            y = it.get_tensor(d["index"])
            if d["dtype"] != np.float32:
                scale, zp = d["quantization"]
                y = (y.astype(np.float64) - zp) * scale
            outs[j].append(np.asarray(y, dtype=np.float32).copy())
    names = [d["name"] for d in it.get_output_details()]
    return names, [np.stack(o) for o in outs]


def sqnr(f, q):
    f = f.astype(np.float64).ravel()
    q = q.astype(np.float64).ravel()
    noise = float(np.sum((f - q) ** 2))
    return None if noise == 0 else 10 * np.log10(float(np.sum(f * f)) / noise)


def main():
    float_path, quant_path, npz = sys.argv[1:4]
    z = np.load(npz)
    keys = [k for k in z.files if k not in RESERVED]
    data = {k: z[k] for k in keys}
    n = len(data[keys[0]])
    labels = z["labels"][:n] if "labels" in z.files else None
    fnames, fouts = run(float_path, data, keys, n)
    result = {}
    for name, resolver in [("ref", OpResolverType.BUILTIN_REF), ("default", None)]:
        qnames, qouts = run(quant_path, data, keys, n, resolver)
        qouts = [qouts[qnames.index(f)] if f in qnames else qouts[i] for i, f in enumerate(fnames)]
        cls = [i for i, f in enumerate(fouts)
               if f.reshape(n, -1).shape[1] > 1 and np.all(f >= -1e-6)
               and np.allclose(f.reshape(n, -1).sum(-1), 1.0, atol=1e-3)]
        r = {"sqnr_db": sqnr(np.concatenate([f.ravel() for f in fouts]),
                             np.concatenate([q.ravel() for q in qouts]))}
        if labels is not None:
            lo = int(z["label_output_index"]) if "label_output_index" in z.files else (cls[0] if cls else 0)
            if lo not in cls:
                cls.append(lo)
            r["acc_float"] = float(np.mean(fouts[lo].reshape(n, -1).argmax(-1) == labels))
            r["acc_quant"] = float(np.mean(qouts[lo].reshape(n, -1).argmax(-1) == labels))
        r["top1_agree"] = (float(np.mean([np.mean(fouts[i].reshape(n, -1).argmax(-1) ==
                                                  qouts[i].reshape(n, -1).argmax(-1)) for i in cls]))
                           if cls else None)
        result[name] = r
    print(json.dumps(result))


if __name__ == "__main__":
    main()
