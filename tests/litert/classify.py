#!/usr/bin/env python3
"""Classify an eval set with a model in LiteRT: the predicted class of every sample, per op resolver.

usage: classify.py MODEL.tflite EVAL.npz INPUT_ARRAY [LABELS_ARRAY]

EVAL.npz: INPUT_ARRAY holds float samples [N, ...] (one model input). An integer input is quantized as
litequant-build's generated `Tensor::quantize` does it, in float32: x / scale, + or - 0.5 (away from zero),
truncated, + zero point, clamped. The predicted class is the first index of the output's maximum (raw codes).
Prints one JSON object: {"builtin_ref": [...], "xnnpack": [...], "labels": [...]} (default resolver = XNNPACK
delegate; "labels" only when LABELS_ARRAY is given).
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def quantize(x, scale, zero_point, dtype):
    v = x.astype(np.float32) / np.float32(scale)
    half = np.float32(0.5)
    r = np.trunc(np.where(v >= 0, v + half, v - half)).astype(np.int64) + zero_point
    info = np.iinfo(dtype)
    return np.clip(r, info.min, info.max).astype(dtype)


def classify(interp, samples):
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    out = interp.get_output_details()[0]
    predictions = []
    for x in samples:
        x = np.asarray(x, dtype=np.float32).reshape(inp["shape"])
        if np.issubdtype(inp["dtype"], np.integer):
            scale, zero_point = inp["quantization"]
            x = quantize(x, scale, zero_point, inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.reset_all_variables()  # every sample from reset state (recurrent ops)
        interp.invoke()
        predictions.append(int(np.argmax(interp.get_tensor(out["index"]).reshape(-1))))
    return predictions


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    model, eval_path, array = sys.argv[1:4]
    data = np.load(eval_path)
    samples = data[array]
    ref = Interpreter(model_path=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                      num_threads=1)
    xnn = Interpreter(model_path=model, num_threads=1)
    result = {"builtin_ref": classify(ref, samples), "xnnpack": classify(xnn, samples)}
    if len(sys.argv) == 5:
        result["labels"] = [int(label) for label in data[sys.argv[4]]]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
