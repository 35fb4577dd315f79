#!/usr/bin/env python3
"""LiteRT float invoke() rate of a model on its calibration samples, for `benches/calibration.rs`.

usage: litert_rate.py MODEL.tflite CALIB.npz THREADS

Prints one JSON line on stdout:
  {"runtime": "...", "samples": N, "threads": T,
   "no_delegate": samples/s with BUILTIN_WITHOUT_DEFAULT_DELEGATES,
   "xnnpack": samples/s with the default resolver (XNNPACK delegate)}
A mode that fails is `null`, and its error is given in "no_delegate_error" / "xnnpack_error".

One "sample" is what calibration does per sample: set every input tensor, then invoke(). The samples are loaded
into memory first; after a warm-up pass over all of them, passes are repeated until at least 1 s has elapsed,
and the rate is the median of 3 such measurements, like the Rust side measures calibrate().

calib.npz arrays are [N, ...input shape without the batch 1], keyed by input tensor name (also matched without a
`serving_default_` prefix or `:0` suffix, then by position when the counts agree).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

RESERVED = {"labels", "label_output_index"}
MIN_SECONDS = 1.0
MEASUREMENTS = 3


def bare(name: str) -> str:
    if name.startswith("serving_default_"):
        name = name[len("serving_default_"):]
    if name.endswith(":0"):
        name = name[:-2]
    return name


def input_arrays(details, archive):
    """One [N, *input shape] float32 array per model input, in model input order."""
    keys = [k for k in archive.files if k not in RESERVED]
    chosen = []
    for d in details:
        if d["name"] in keys:
            chosen.append(d["name"])
            continue
        match = [k for k in keys if bare(k) == bare(d["name"])]
        chosen.append(match[0] if len(match) == 1 else None)
    if any(k is None for k in chosen):
        if len(keys) != len(details):
            raise ValueError(f"cannot match arrays {keys} to model inputs {[d['name'] for d in details]}")
        chosen = keys
    arrays = []
    for d, k in zip(details, chosen):
        a = np.asarray(archive[k], dtype=np.float32)
        # The model shape has the batch 1 first; the archive's first axis indexes samples instead.
        shape = tuple(int(s) for s in d["shape"])[1:]
        arrays.append(a.reshape((a.shape[0],) + shape))
    counts = {a.shape[0] for a in arrays}
    if len(counts) != 1:
        raise ValueError(f"inputs have different sample counts {sorted(counts)}")
    return arrays


def rate(model, arrays, threads, no_delegate):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = dict(model_path=model, num_threads=threads)
    if no_delegate:
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(**kw)
    it.allocate_tensors()
    indices = [d["index"] for d in it.get_input_details()]
    n = arrays[0].shape[0]
    # Per-sample views, sliced once: the timed loop only copies into the interpreter and invokes.
    samples = [[a[i:i + 1] for a in arrays] for i in range(n)]

    def one_pass():
        for sample in samples:
            for index, value in zip(indices, sample):
                it.set_tensor(index, value)
            it.invoke()

    start = time.perf_counter()
    one_pass()  # warm-up (XNNPACK packs weights on the first invoke)
    first = time.perf_counter() - start
    passes = max(1, int(np.ceil(MIN_SECONDS / max(first, 1e-9))))
    rates = []
    for _ in range(MEASUREMENTS):
        start = time.perf_counter()
        done = 0
        while True:
            for _ in range(passes):
                one_pass()
            done += passes
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_SECONDS:
                break
        rates.append(done * n / elapsed)
    return statistics.median(rates)


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    model, calib, threads = argv[1], argv[2], int(argv[3])
    from ai_edge_litert import __version__ as version  # noqa: F401
    from ai_edge_litert.interpreter import Interpreter

    probe = Interpreter(model_path=model)
    with np.load(calib) as archive:
        arrays = input_arrays(probe.get_input_details(), archive)
    out = {"runtime": f"ai_edge_litert {version}", "samples": int(arrays[0].shape[0]), "threads": threads}
    for key, no_delegate in (("no_delegate", True), ("xnnpack", False)):
        try:
            out[key] = rate(model, arrays, threads, no_delegate)
        except Exception as e:  # one mode failing must not hide the other
            out[key] = None
            out[key + "_error"] = repr(e)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
