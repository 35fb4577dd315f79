#!/usr/bin/env python3
"""Runs two .tflite models in LiteRT on the same inputs and says whether their outputs are bit-identical.

usage: compare_outputs.py A.tflite B.tflite [inputs.npz] [--samples N]

Inputs come from the npz (one array per model input, keyed by input tensor name, samples on axis 0 without
the batch dimension, as in the corpus' calib.npz / eval.npz) or, without one, from a seeded random generator.
Prints one JSON line: {"identical": bool, "samples": n, "outputs": k, "max_abs_diff": x, "mismatch": ...}.
Exit code 0 when identical, 1 when not, 2 when a model cannot be loaded or run.
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def load(path):
    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    return interp


def sample_inputs(interp, npz_path, samples):
    details = interp.get_input_details()
    if npz_path:
        data = np.load(npz_path)
        arrays = []
        for d in details:
            if d["name"] not in data:
                raise KeyError(f"{npz_path} has no array named {d['name']!r} (has {sorted(data.files)})")
            arrays.append(data[d["name"]])
        n = min(samples, min(len(a) for a in arrays))
        for i in range(n):
            yield [a[i].reshape(d["shape"]).astype(d["dtype"]) for a, d in zip(arrays, details)]
    else:
        rng = np.random.default_rng(1234)
        for _ in range(samples):
            batch = []
            for d in details:
                shape = [max(1, s) for s in d["shape"]]
                if np.issubdtype(d["dtype"], np.floating):
                    batch.append(rng.uniform(-1.0, 1.0, size=shape).astype(d["dtype"]))
                else:
                    info = np.iinfo(d["dtype"])
                    batch.append(rng.integers(max(info.min, -100), min(info.max, 100), size=shape).astype(d["dtype"]))
            yield batch


def run(interp, inputs):
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], x)
    interp.reset_all_variables()  # every sample from reset state (recurrent ops)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    samples = 20
    if "--samples" in argv:
        samples = int(argv[argv.index("--samples") + 1])
        args.remove(str(samples))
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    a_path, b_path = args[0], args[1]
    npz_path = args[2] if len(args) == 3 else None
    try:
        a, b = load(a_path), load(b_path)
    except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own message
        print(json.dumps({"error": f"cannot load: {e}"}))
        return 2
    result = {"identical": True, "samples": 0, "outputs": len(a.get_output_details()), "max_abs_diff": 0.0,
              "mismatch": None}
    if len(b.get_output_details()) != result["outputs"]:
        result.update(identical=False, mismatch="different number of outputs")
    try:
        for i, inputs in enumerate(sample_inputs(a, npz_path, samples)):
            out_a, out_b = run(a, inputs), run(b, inputs)
            result["samples"] += 1
            for k, (x, y) in enumerate(zip(out_a, out_b)):
                same = x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                if x.shape == y.shape:
                    diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
                    result["max_abs_diff"] = max(result["max_abs_diff"], diff)
                if not same and result["mismatch"] is None:
                    result["identical"] = False
                    result["mismatch"] = f"sample {i} output {k}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"
    except Exception as e:
        print(json.dumps({"error": f"cannot run: {e}"}))
        return 2
    print(json.dumps(result))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
