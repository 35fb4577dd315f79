#!/usr/bin/env python3
"""Calibrated activation ranges from the real LiteRT interpreter (an oracle for litequant's calibration).

usage: ranges_from_litert.py MODEL.tflite CALIB.npz OUT.json [--samples N]

Runs every sample of CALIB.npz (arrays keyed by input tensor name, first axis = sample) through LiteRT with
`experimental_preserve_all_tensors=True` and records, for every non-constant FLOAT32 tensor of the main
subgraph, the global min and max over all samples and elements (what TFLite's calibrator records).
Writes `{"<tensor index>": [min, max], ...}` as JSON.
"""
import argparse
import json

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def _norm(name):
    return name.replace("serving_default_", "").split(":")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=None)
    a = ap.parse_args()
    interp = Interpreter(
        model_path=a.model,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    data = np.load(a.calib)
    keys = [k for k in data.files if k not in ("labels", "label_output_index")]
    inputs = interp.get_input_details()
    feed = []
    for pos, d in enumerate(inputs):
        key = d["name"] if d["name"] in keys else next((k for k in keys if _norm(k) == _norm(d["name"])), keys[pos])
        feed.append((d["index"], data[key]))
    n = min(len(arr) for _, arr in feed)
    if a.samples is not None:
        n = min(n, a.samples)
    details = interp.get_tensor_details()
    ranges = {}
    for s in range(n):
        for idx, arr in feed:
            interp.set_tensor(idx, arr[s : s + 1].astype(np.float32))
        interp.reset_all_variables()  # every sample from reset state (recurrent ops)
        interp.invoke()
        for d in details:
            if d["dtype"] != np.float32:
                continue
            try:
                v = interp.get_tensor(d["index"])
            except ValueError:
                continue
            if v.size == 0:
                continue
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            old = ranges.get(d["index"])
            ranges[d["index"]] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    # Constants (weights) are not activations: drop tensors that hold a buffer.
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    m = fbu.read_model(a.model)
    sg = m.subgraphs[0]
    for i, t in enumerate(sg.tensors):
        b = m.buffers[t.buffer].data if t.buffer < len(m.buffers) else None
        if b is not None and len(b) > 0:
            ranges.pop(i, None)
    with open(a.out, "w") as f:
        json.dump({str(k): [v[0], v[1]] for k, v in sorted(ranges.items())}, f, indent=0)


if __name__ == "__main__":
    main()
