#!/usr/bin/env python3
"""Run a .tflite model in LiteRT's reference kernels and save every tensor of every sample.

usage: dump_tensors.py MODEL.tflite INPUTS.npz OUT.npz [--samples N]

INPUTS.npz holds one array per model input, keyed by the input tensor name, shaped [N, ...input shape
without the batch 1] (the corpus layout; an array already shaped like the input per sample also works).
OUT.npz gets `s{sample}_t{tensor_index}` for every tensor LiteRT can return after invoke(), constants
included, with LiteRT's dtype; plus `count` (samples run).
"""
import argparse
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()

    interp = Interpreter(
        model_path=args.model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
        num_threads=1,
    )
    interp.allocate_tensors()
    data = np.load(args.inputs)
    details = interp.get_input_details()
    missing = [d["name"] for d in details if d["name"] not in data.files]
    if missing:
        print(f"{args.inputs}: no array for input(s) {missing}; has {data.files}", file=sys.stderr)
        return 2
    count = min(args.samples, *(data[d["name"]].shape[0] for d in details))
    out = {"count": np.array(count)}
    for s in range(count):
        for d in details:
            x = np.asarray(data[d["name"]][s], dtype=d["dtype"]).reshape(d["shape"])
            interp.set_tensor(d["index"], x)
        interp.reset_all_variables()  # every sample from reset state (recurrent ops)
        interp.invoke()
        for t in interp.get_tensor_details():
            try:
                value = interp.get_tensor(t["index"])
            except ValueError:
                continue  # tensors without data (freed scratch, optional inputs)
            out[f"s{s}_t{t['index']}"] = np.array(value)
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
