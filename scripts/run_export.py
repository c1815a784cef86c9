#!/usr/bin/env python3
"""Runs an `evdet export` file (TorchScript .pt with torch, or .onnx with ONNX Runtime) over a
sequence of histograms, feeding the LSTM states back window after window, as a deployment would.

  python scripts/run_export.py --model m.pt --inputs hists.safetensors --out decoded.safetensors

--inputs holds `histograms`, uint8 or float [T, C, H, W] (T windows in time order); --out gets
`decoded`, float32 [T, anchors, 5 + classes]. The sidecar <model>.json gives names and shapes.
The test suite uses this to check both formats against evdet's own inference.
"""
import argparse
import json

import numpy as np
from safetensors.numpy import load_file, save_file

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--inputs", required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

side = json.load(open(a.model + ".json"))
hists = load_file(a.inputs)["histograms"].astype(np.float32)
dtype = np.float16 if side["dtype"] == "float16" else np.float32
states = [np.zeros(s, dtype) for s in side["state_shapes"]]  # zeros at the start of a recording
outs = []
if a.model.endswith(".onnx"):
    import onnxruntime as ort

    run = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    for x in hists:
        feed = dict(zip(side["input_names"], [x[None].astype(dtype), *states]))
        detections, *states = run.run(side["output_names"], feed)
        outs.append(detections[0].astype(np.float32))
else:
    import torch

    model = torch.jit.load(a.model)
    states = [torch.from_numpy(s) for s in states]
    with torch.no_grad():
        for x in hists:
            detections, *states = model(torch.from_numpy(x[None].astype(dtype)), *states)
            outs.append(detections[0].float().numpy())
save_file({"decoded": np.stack(outs)}, a.out)
