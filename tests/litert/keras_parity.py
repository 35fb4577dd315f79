#!/usr/bin/env python3
"""Compares a float .tflite lowered from a .keras file with TF's own export of the same model, in LiteRT.

usage: keras_parity.py OURS.tflite REFERENCE.tflite EVAL.npz

Inputs come from EVAL.npz (keyed by the reference's input tensor names, samples on axis 0; cast to the
reference's input types). Inputs and outputs
are paired by signature name, or by position when the names differ (a single input/output, or TF's export used
other names than the Keras layers). Prints one JSON line:
{"max_rel": x, "samples": n, "hist_equal": bool, "hist_ours": {...}, "hist_ref": {...}}
where max_rel is, over outputs and samples, max |ours - ref| / max |ref| of that output and sample.
Exit code 0 when run, 2 when a model cannot be loaded or run.
"""
import collections
import json
import sys

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils as fbu

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def histogram(path):
    model = fbu.read_model(path)
    hist = collections.Counter()
    for sg in model.subgraphs:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            hist[OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]] += 1
    return dict(sorted(hist.items()))


def signature(interp):
    sig = interp.get_signature_list()["serving_default"]
    return sig["inputs"], sig["outputs"]


def pair(ours, ref):
    """Our names in the order of the reference's names."""
    if sorted(ours) == sorted(ref):
        return list(ref)
    if len(ours) == len(ref):
        return list(ours)
    raise SystemExit(f"cannot pair {ours} with {ref}")


def main():
    ours_path, ref_path, npz_path = sys.argv[1:4]
    ours = Interpreter(model_path=ours_path, num_threads=1)
    ref = Interpreter(model_path=ref_path, num_threads=1)
    ours_in, ours_out = signature(ours)
    ref_in, ref_out = signature(ref)
    in_names = pair(ours_in, ref_in)
    out_names = pair(ours_out, ref_out)
    ref_runner = ref.get_signature_runner("serving_default")
    ours_runner = ours.get_signature_runner("serving_default")
    ref_details = ref_runner.get_input_details()
    data = np.load(npz_path)
    samples = min(data[ref_details[n]["name"]].shape[0] for n in ref_in)
    worst = 0.0
    for s in range(samples):
        ref_feed = {n: data[ref_details[n]["name"]][s : s + 1].astype(ref_details[n]["dtype"]) for n in ref_in}
        ours_feed = {o: ref_feed[r] for o, r in zip(in_names, ref_in)}
        ref_res = ref_runner(**ref_feed)
        ours_res = ours_runner(**ours_feed)
        for o, r in zip(out_names, ref_out):
            a, b = ours_res[o].astype(np.float64), ref_res[r].astype(np.float64)
            if a.shape != b.shape:
                raise SystemExit(f"output {o} has shape {a.shape}, the reference's {r} {b.shape}")
            scale = max(float(np.max(np.abs(b))), 1e-30)
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    hist_ours, hist_ref = histogram(ours_path), histogram(ref_path)
    print(json.dumps({"max_rel": worst, "samples": samples, "hist_equal": hist_ours == hist_ref,
                      "hist_ours": hist_ours, "hist_ref": hist_ref}))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # a model LiteRT cannot load or run
        print(json.dumps({"error": str(e)}))
        sys.exit(2)
