#!/usr/bin/env python3
"""Run many small models in LiteRT's reference kernels in one process, dumping every tensor.

usage: dump_many.py MANIFEST.json RESULTS.json

MANIFEST.json: a list of {"model": path, "inputs": npz path, "out": npz path, "builtin": bool}; "builtin"
runs the model on LiteRT's builtin kernels (without delegates) rather than BUILTIN_REF (where BUILTIN_REF's
kernel is broken). The npz holds one float32
array per model input, keyed `i{k}` (input k in model order), shaped [samples, ...input shape].
For each model: load with BUILTIN_REF (LiteRT's builtin kernels without delegates where BUILTIN_REF lacks
the op or version: "resolver" in the result says which) and every tensor preserved, feed each sample, and write
`s{sample}_t{tensor}` for every tensor to "out". RESULTS.json: a list of {"model", "loads", "error"} in
manifest order: "loads" once allocate_tensors succeeds; "error" from loading or running (reported, not
fatal).
"""
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def load(entry, resolver):
    interp = Interpreter(model_path=entry["model"], experimental_op_resolver_type=resolver,
                         experimental_preserve_all_tensors=True, num_threads=1)
    interp.allocate_tensors()
    return interp


def run(interp, entry):
    data = np.load(entry["inputs"])
    details = interp.get_input_details()
    count = min(data[f"i{k}"].shape[0] for k in range(len(details))) if details else 1
    out = {}
    for s in range(count):
        for k, d in enumerate(details):
            interp.set_tensor(d["index"], np.asarray(data[f"i{k}"][s], dtype=d["dtype"]).reshape(d["shape"]))
        interp.reset_all_variables()  # every sample from reset state (recurrent ops)
        interp.invoke()
        for t in interp.get_tensor_details():
            try:
                out[f"s{s}_t{t['index']}"] = np.array(interp.get_tensor(t["index"]))
            except ValueError:
                continue
    np.savez(entry["out"], **out)


def main() -> int:
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    results = []
    for entry in manifest:
        result = {"model": entry["model"], "loads": False, "error": None, "resolver": "BUILTIN_REF"}
        try:
            if entry.get("builtin"):
                interp = load(entry, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                result["resolver"] = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
            else:
                try:
                    interp = load(entry, OpResolverType.BUILTIN_REF)
                except Exception as e:  # noqa: BLE001
                    # BUILTIN_REF registers fewer versions than LiteRT ships (TILE v3, DEPTH_TO_SPACE v2,
                    # float ELU/CEIL/ROUND/BROADCAST_TO): run those on LiteRT's builtin kernels, without
                    # delegates.
                    if "Didn't find op" not in str(e):
                        raise
                    interp = load(entry, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                    result["resolver"] = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
            result["loads"] = True
            run(interp, entry)
        except Exception as e:  # noqa: BLE001 - every failure is reported per model
            result["error"] = f"{type(e).__name__}: {e}"
        results.append(result)
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
