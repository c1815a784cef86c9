"""Per-window latency of an exported ONNX detector in ONNX Runtime (CPU, float32), for `evdet bench latency`.

Usage: python ort_latency.py SPEC.json  — SPEC names the model, threads, warm-up and timed windows, the
input shape, the state shapes and the input/output names; prints {"ms": [...], "peak_rss_mib": ...}.
Inputs are random counts 0..10 like the other engines' windows; the LSTM states are carried.
"""
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

spec = json.load(open(sys.argv[1]))
so = ort.SessionOptions()
so.intra_op_num_threads = spec["threads"]
so.inter_op_num_threads = 1
s = ort.InferenceSession(spec["model"], so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
states = [np.zeros(sh, np.float32) for sh in spec["state_shapes"]]
times = []
for k in range(spec["warmup"] + spec["windows"]):
    x = rng.integers(0, 11, spec["input_shape"]).astype(np.float32)
    t0 = time.perf_counter()
    out = s.run(spec["output_names"], dict(zip(spec["input_names"], [x, *states])))
    dt = time.perf_counter() - t0
    states = out[1:]
    if k >= spec["warmup"]:
        times.append(1e3 * dt)
print(json.dumps({"ms": times, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
