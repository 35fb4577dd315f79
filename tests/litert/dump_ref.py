#!/usr/bin/env python3
"""Dump every tensor of a model run in LiteRT's reference kernels, plus the default (XNNPACK) outputs.

usage: dump_ref.py MODEL.tflite INPUTS.npz OUT.npz [--samples N]

INPUTS.npz: float arrays keyed by input tensor name (corpus layout, [N, ...]). Integer inputs are quantized
with the input's own parameters (round half away from zero, clamped), so int8-I/O models get real data.
OUT.npz: `s{sample}_t{tensor}` for every tensor after a BUILTIN_REF invoke (experimental_preserve_all_tensors),
`s{sample}_xnn_o{k}` for output k of the default resolver, and `count`.
"""
import argparse
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def feed(interp, data, s):
    for d in interp.get_input_details():
        x = np.asarray(data[d["name"]][s], dtype=np.float32).reshape(d["shape"])
        if np.issubdtype(d["dtype"], np.integer):
            scale, zp = d["quantization"]
            info = np.iinfo(d["dtype"])
            q = np.clip(np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5) + zp, info.min, info.max)
            x = q.astype(d["dtype"])
        interp.set_tensor(d["index"], x)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()
    ref = Interpreter(model_path=args.model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                      experimental_preserve_all_tensors=True, num_threads=1)
    ref.allocate_tensors()
    xnn = Interpreter(model_path=args.model, num_threads=1)
    xnn.allocate_tensors()
    data = np.load(args.inputs)
    names = [d["name"] for d in ref.get_input_details()]
    missing = [n for n in names if n not in data.files]
    if missing:
        print(f"{args.inputs}: no array for input(s) {missing}", file=sys.stderr)
        return 2
    count = min(args.samples, *(data[n].shape[0] for n in names))
    out = {"count": np.array(count)}
    for s in range(count):
        feed(ref, data, s)
        ref.reset_all_variables()  # every sample from reset state (recurrent ops)
        ref.invoke()
        for t in ref.get_tensor_details():
            try:
                out[f"s{s}_t{t['index']}"] = np.array(ref.get_tensor(t["index"]))
            except ValueError:
                continue
        feed(xnn, data, s)
        xnn.reset_all_variables()  # every sample from reset state (recurrent ops)
        xnn.invoke()
        for k, d in enumerate(xnn.get_output_details()):
            out[f"s{s}_xnn_o{k}"] = np.array(xnn.get_tensor(d["index"]))
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
