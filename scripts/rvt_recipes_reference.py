#!/usr/bin/env python3
"""RVT's published training recipes as a table of values (tests/fixtures/rvt_recipes.json): for each of
RVT's experiments (gen1 / gen4 × base / small / tiny) the values its Hydra configs compose to, read from a
checkout of uzh-rpg/RVT (RVT_ROOT, never committed): config/dataset/{base,<name>}.yaml, the model's
maxvit_yolox/default.yaml, config/experiment/<name>/default.yaml and the size file, merged in Hydra's
order; the head's class count is modifier.py's rule (2 for gen1, 3 for gen4). Only values are kept.

    RVT_ROOT=/tmp/rvt python3 scripts/rvt_recipes_reference.py > tests/fixtures/rvt_recipes.json
"""
import json
import os
import sys

import yaml

root = os.environ.get("RVT_ROOT", "/tmp/rvt")


def load(rel):
    with open(os.path.join(root, "config", rel)) as f:
        d = yaml.safe_load(f) or {}
    d.pop("defaults", None)
    return d


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


KEYS = [
    "training.precision", "training.max_steps", "training.learning_rate", "training.lr_scheduler.use",
    "training.lr_scheduler.pct_start", "training.lr_scheduler.div_factor",
    "training.lr_scheduler.final_div_factor", "batch_size.train", "batch_size.eval",
    "hardware.num_workers.train", "hardware.num_workers.eval", "dataset.name", "dataset.ev_repr_name",
    "dataset.sequence_length", "dataset.resolution_hw", "dataset.downsample_by_factor_2",
    "dataset.only_load_end_labels", "dataset.train.sampling", "dataset.train.mixed.w_stream",
    "dataset.train.mixed.w_random", "dataset.eval.sampling",
    "model.backbone.embed_dim", "model.backbone.partition_split_32", "model.backbone.stage.attention.dim_head",
    "model.fpn.depth", "model.fpn.in_stages", "model.head.num_classes",
]
AUG = ["prob_hflip", "zoom.prob", "zoom.zoom_in.weight", "zoom.zoom_in.factor.min", "zoom.zoom_in.factor.max",
       "zoom.zoom_out.weight", "zoom.zoom_out.factor.min", "zoom.zoom_out.factor.max"]

recipes = {}
for name in ("gen1", "gen4"):
    dataset = merge(load("dataset/base.yaml"), load(f"dataset/{name}.yaml"))
    model = load("model/maxvit_yolox/default.yaml")
    for size in ("base", "small", "tiny"):
        cfg = merge({"dataset": dataset}, model)
        cfg = merge(cfg, load(f"experiment/{name}/default.yaml"))
        cfg = merge(cfg, load(f"experiment/{name}/{size}.yaml"))
        cfg.setdefault("model", {}).setdefault("head", {})["num_classes"] = 2 if name == "gen1" else 3
        f = flat(cfg)
        row = {k: f[k] for k in KEYS if k in f}
        for mode in ("random", "stream"):
            for a in AUG:
                k = f"dataset.data_augmentation.{mode}.{a}"
                if k in f:
                    row[k] = f[k]
        recipes[f"{name}/{size}"] = row

json.dump({"source": "uzh-rpg/RVT config/ (Hydra composition of dataset, model, experiment; modifier.py's class count)",
           "recipes": recipes}, sys.stdout, indent=1, sort_keys=True)
print()
