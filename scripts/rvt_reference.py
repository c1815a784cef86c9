"""The PyTorch reference detector (uzh-rpg/RVT's `YoloXDetector`) built and timed for evdet's benchmarks.

RVT's source is read from $RVT_ROOT (a checkout of uzh-rpg/RVT that is never committed). The model config
is RVT's own `config/model/maxvit_yolox/default.yaml` with the preset's sizes put in, then what RVT's
config modifier derives (`in_res_hw`, `partition_size`, `num_classes`) set as it would set them. The
timings mirror `evdet bench model` (crates/model/src/detector/bench.rs) step for step, so the two can
be compared: forward latency per frame at batch 1 (eval mode, no autograd, LSTM states carried, two
warm-up frames, median of --reps) split into backbone / FPN / head, and one training step (backbone over
the sequence, FPN + head + SimOTA + losses on all frames at once, backward, clipping by value 1.0, AdamW).
Each part is timed with two clocks: wall and process CPU time (all threads), which a machine shared
with other work inflates far less.

Used as a module by scripts/bench_model_vs_reference.py, and alone to write the JSON that
`evdet bench model --reference REF.json` reads:
  RVT_ROOT=/tmp/rvt ~/.evdet/venv/bin/python scripts/rvt_reference.py --threads 2 --json /tmp/ref.json
Needs, beside torch: `pip install omegaconf einops pillow` and `pip install --no-deps torchvision==0.26.0`
(the torchvision that pairs with torch 2.11.0; --no-deps keeps torch as it is).
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
import warnings

import torch

# embed_dim, dim_head, fpn depth: evdet's RvtPreset::{tiny,small,base} (crates/model/src/config.rs).
PRESETS = {"tiny": (32, 32, 0.33), "small": (48, 24, 0.33), "base": (64, 32, 0.67)}
PARTS = ("backbone_ms", "fpn_ms", "head_ms")
# Where the models run: "cpu" or "cuda" (set_device); CUDA timings synchronise before each clock reading.
DEVICE = "cpu"


def set_device(device):
    global DEVICE
    DEVICE = device


def rvt_root():
    root = os.environ.get("RVT_ROOT")
    if not root or not os.path.isdir(os.path.join(root, "models", "detection")):
        sys.exit("set RVT_ROOT to a checkout of uzh-rpg/RVT (git clone https://github.com/uzh-rpg/RVT)")
    return root


def model_config(preset, in_hw, num_classes=8, in_stages=(2, 3, 4)):
    """RVT's maxvit_yolox model config for one preset and input size, as its config modifier finishes it."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(os.path.join(rvt_root(), "config", "model", "maxvit_yolox", "default.yaml")).model
    embed_dim, dim_head, depth = PRESETS[preset]
    split = cfg.backbone.partition_split_32
    if any(x % (32 * split) for x in in_hw):
        sys.exit(f"input {in_hw} is not a multiple of {32 * split} (RVT pads to that)")
    cfg.backbone.embed_dim = embed_dim
    cfg.backbone.stage.attention.dim_head = dim_head
    cfg.backbone.in_res_hw = list(in_hw)
    cfg.backbone.stage.attention.partition_size = [x // (32 * split) for x in in_hw]
    cfg.fpn.depth = depth
    cfg.fpn.in_stages = list(in_stages)
    cfg.head.num_classes = num_classes
    return cfg


def build(preset, in_hw):
    sys.path.insert(0, rvt_root())
    warnings.filterwarnings("ignore")
    from models.detection.yolox_extension.models.detector import YoloXDetector

    with contextlib.redirect_stdout(io.StringIO()):  # RVT prints its config choices
        return YoloXDetector(model_config(preset, in_hw))


def clocks():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def ms(a, b):
    """(wall, cpu) milliseconds between two `clocks()` readings."""
    return 1e3 * (b[0] - a[0]), 1e3 * (b[1] - a[1])


def forward(preset, in_hw, reps, precision="fp32"):
    """Per-frame forward latency: medians per part, wall and CPU (`precision` bf16/fp16: under autocast)."""
    m = build(preset, in_hw).eval().to(DEVICE)
    x = torch.randint(0, 11, (1, 20, *in_hw)).float().to(DEVICE)
    wall = {k: [] for k in PARTS}
    cpu = {k: [] for k in PARTS}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    amp = torch.autocast(DEVICE.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    with torch.inference_mode(), amp:
        states = None
        for _ in range(2):
            feats, states = m.forward_backbone(x, states)
            m.forward_detect(feats)
        for _ in range(reps):
            t = [clocks()]
            feats, states = m.forward_backbone(x, states)
            t.append(clocks())
            fpn = m.fpn(feats)
            t.append(clocks())
            m.yolox_head(fpn)
            t.append(clocks())
            for i, k in enumerate(PARTS):
                w, c = ms(t[i], t[i + 1])
                wall[k].append(w)
                cpu[k].append(c)
    out = {k: statistics.median(v) for k, v in wall.items()}
    out["total_ms"] = sum(out.values())
    out["cpu"] = {k: statistics.median(v) for k, v in cpu.items()}
    out["cpu"]["total_ms"] = sum(out["cpu"].values())
    out["params"] = sum(p.numel() for p in m.parameters())
    return out


def random_labels(n_images, in_hw, seed=1):
    """4 boxes per image (sizes 8-128 x 8-88 px, class j % 8), RVT's label layout [n, 6, (cls, cx, cy, w, h)]."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n_images, 6, 5)
    h, w = in_hw
    for i in range(n_images):
        for j in range(4):
            u = torch.rand(4, generator=g).tolist()
            labels[i, j] = torch.tensor([j % 8, 40 + (w - 80) * u[0], 40 + (h - 80) * u[1], 8 + 120 * u[2], 8 + 80 * u[3]])
    return labels


def train_step(preset, in_hw, batch, seq_len, reps, precision="fp32"):
    """Median time of one training step (after one untimed step), wall and CPU. `precision` bf16 or
    fp16 runs the step's forward and loss under CPU autocast, as Lightning's `bf16-mixed` does."""
    torch.manual_seed(0)
    m = build(preset, in_hw).train().to(DEVICE)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-4, weight_decay=0)
    xs = torch.randint(0, 11, (seq_len, batch, 20, *in_hw)).float().to(DEVICE)
    labels = random_labels(seq_len * batch, in_hw).to(DEVICE)

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        states, per_scale = None, {}
        with torch.autocast(DEVICE.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            for t in range(seq_len):
                feats, states = m.forward_backbone(xs[t], states)
                for k, v in feats.items():
                    per_scale.setdefault(k, []).append(v)
            _, losses = m.forward_detect({k: torch.cat(v, 0) for k, v in per_scale.items()}, labels)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_value_(m.parameters(), 1.0)
        opt.step()

    step()
    wall, cpu = [], []
    for _ in range(reps):
        t0 = clocks()
        step()
        w, c = ms(t0, clocks())
        wall.append(w)
        cpu.append(c)
    return {"step_ms": statistics.median(wall), "step_cpu_ms": statistics.median(cpu), "precision": precision,
            "batch": batch, "seq_len": seq_len, "in_hw": list(in_hw)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--presets", default="tiny,small,base")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-hw", default="192,320")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    set_device(a.device)
    res = {"torch": torch.__version__, "threads": a.threads, "device": a.device,
           "forward_384x640": {}, "train_step": {}}
    for p in a.presets.split(","):
        res["forward_384x640"][p] = forward(p, (384, 640), a.reps)
        print(p, "forward", json.dumps(res["forward_384x640"][p]), flush=True)
    if not a.no_train:
        hw = tuple(int(v) for v in a.train_hw.split(","))
        res["train_step"]["tiny"] = train_step("tiny", hw, 2, 5, max(3, a.reps // 2))
        print("tiny train", json.dumps(res["train_step"]["tiny"]), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
