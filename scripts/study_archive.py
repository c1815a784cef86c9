#!/usr/bin/env python3
"""Keeps a study's finished runs across machines without their checkpoints: `archive` copies what the
study's statistics and notes read from each finished run (config.yaml, metrics.jsonl,
reproducibility.json, eval/test_metrics.json, eval/test_analysis.json and eval/test_frames.bin, the
last xz-compressed) into a small folder that can be committed; `restore` puts them back under a runs
folder, where `evdet study` counts them as done and runs only the rest.

usage: python3 scripts/study_archive.py archive runs/size_aware_mini notes/study_runs/size_aware_mini
       python3 scripts/study_archive.py restore notes/study_runs/size_aware_mini runs/size_aware_mini
"""
import lzma
import os
import shutil
import sys

FILES = ["config.yaml", "metrics.jsonl", "reproducibility.json", "eval/test_metrics.json",
         "eval/test_analysis.json"]
FRAMES = "eval/test_frames.bin"


def runs(root):
    for arm in sorted(os.listdir(root)):
        a = os.path.join(root, arm)
        if not os.path.isdir(a):
            continue
        for seed in sorted(os.listdir(a)):
            d = os.path.join(a, seed)
            if os.path.isdir(d) and seed.startswith("seed"):
                yield arm, seed, d


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def archive(src, dst):
    n = 0
    for arm, seed, d in runs(src):
        if not os.path.isfile(os.path.join(d, "eval/test_metrics.json")):
            continue  # not finished
        out = os.path.join(dst, arm, seed)
        for f in FILES:
            if os.path.isfile(os.path.join(d, f)):
                copy(os.path.join(d, f), os.path.join(out, f))
        with open(os.path.join(d, FRAMES), "rb") as fi:
            data = lzma.compress(fi.read(), preset=9)
        os.makedirs(os.path.join(out, "eval"), exist_ok=True)
        with open(os.path.join(out, FRAMES + ".xz.tmp"), "wb") as fo:
            fo.write(data)
        os.replace(os.path.join(out, FRAMES + ".xz.tmp"), os.path.join(out, FRAMES + ".xz"))
        n += 1
    copy(os.path.join(src, "study.yaml"), os.path.join(dst, "study.yaml"))
    print(f"archived {n} finished runs of {src} in {dst}")


def restore(src, dst):
    n = 0
    for arm, seed, d in runs(src):
        out = os.path.join(dst, arm, seed)
        if os.path.isfile(os.path.join(out, "eval/test_metrics.json")):
            continue  # already there
        # The metrics last: a run counts as done once they exist.
        for f in [f for f in FILES if f != "eval/test_metrics.json"]:
            if os.path.isfile(os.path.join(d, f)):
                copy(os.path.join(d, f), os.path.join(out, f))
        with open(os.path.join(d, FRAMES + ".xz"), "rb") as fi:
            data = lzma.decompress(fi.read())
        with open(os.path.join(out, FRAMES + ".tmp"), "wb") as fo:
            fo.write(data)
        os.replace(os.path.join(out, FRAMES + ".tmp"), os.path.join(out, FRAMES))
        copy(os.path.join(d, "eval/test_metrics.json"), os.path.join(out, "eval/test_metrics.json"))
        n += 1
    if not os.path.exists(os.path.join(dst, "study.yaml")):
        copy(os.path.join(src, "study.yaml"), os.path.join(dst, "study.yaml"))
    print(f"restored {n} finished runs from {src} into {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("archive", "restore"):
        sys.exit(__doc__)
    (archive if sys.argv[1] == "archive" else restore)(sys.argv[2], sys.argv[3])
