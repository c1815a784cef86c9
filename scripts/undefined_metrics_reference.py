"""pycocotools' answers where a metric is undefined: no detections at all, and a class that only the
detections contain. Writes the cases and pycocotools 2.0.11's numbers to
crates/eval/tests/data/undefined_metrics/ (read by crates/eval/tests/undefined_metrics.rs, which runs
`evdet coco-eval` on the same files).

pycocotools' `loadRes` cannot take an empty result list (it reads `anns[0]`), which is why RVT reports
every metric as 0 when there are no detections; COCOeval itself handles an empty result set, built here
as a COCO object without annotations: a class or area range with ground truth scores 0, one without
stays -1 (undefined).

usage: python scripts/undefined_metrics_reference.py   (needs pycocotools==2.0.11, numpy)
"""
import contextlib
import io
import json
import os

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "eval", "tests", "data", "undefined_metrics")
CATS = ["pedestrian", "car", "bicycle", "bus"]


def gt_dataset():
    images = [{"id": i, "height": 360, "width": 640, "file_name": f"{i}.png"} for i in range(1, 4)]
    anns = []
    # pedestrians (small), cars (medium), one bicycle (small); no bus; nothing larger than 96².
    for img in range(1, 4):
        anns.append({"image_id": img, "category_id": 1, "bbox": [10.0 * img, 20.0, 10.0, 24.0]})
        anns.append({"image_id": img, "category_id": 2, "bbox": [200.0, 50.0 + img, 60.0, 40.0]})
    anns.append({"image_id": 2, "category_id": 3, "bbox": [400.0, 100.0, 16.0, 18.0]})
    for i, a in enumerate(anns, 1):
        a.update(id=i, area=a["bbox"][2] * a["bbox"][3], iscrowd=0)
    cats = [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(CATS)]
    return {"images": images, "annotations": anns, "categories": cats}


def detections_with_extra_class(gt):
    dt = []
    for a in gt["annotations"]:
        if a["category_id"] in (1, 2):
            x, y, w, h = a["bbox"]
            dt.append({"image_id": a["image_id"], "category_id": a["category_id"],
                       "bbox": [x + 1.0, y, w, h], "score": 0.9})
    # Buses that the ground truth does not have, one of them large.
    dt.append({"image_id": 1, "category_id": 4, "bbox": [300.0, 100.0, 120.0, 100.0], "score": 0.8})
    dt.append({"image_id": 3, "category_id": 4, "bbox": [50.0, 200.0, 40.0, 40.0], "score": 0.3})
    return dt


def coco_of(dataset):
    c = COCO()
    c.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def evaluate(gt, dt, use_cats=True):
    e = COCOeval(gt, dt, "bbox")
    e.params.useCats = int(use_cats)
    with contextlib.redirect_stdout(io.StringIO()):
        e.evaluate()
        e.accumulate()
        e.summarize()
    per_class = {}
    if use_cats:
        p = e.eval["precision"]  # [T, R, K, A, M]
        for k, cat in enumerate(e.params.catIds):
            v = p[:, :, k, 0, -1]
            per_class[CATS[cat - 1]] = float(np.mean(v[v > -1])) if (v > -1).any() else -1.0
    return {"stats": [float(s) for s in e.stats], "per_class_ap": per_class}


def main():
    os.makedirs(OUT, exist_ok=True)
    gt_ds = gt_dataset()
    gt = coco_of(gt_ds)
    empty = coco_of({"images": gt_ds["images"], "annotations": [], "categories": gt_ds["categories"]})
    extra = detections_with_extra_class(gt_ds)
    with contextlib.redirect_stdout(io.StringIO()):
        extra_coco = gt.loadRes(extra)
    expected = {
        "pycocotools": "2.0.11",
        "no_detections": {"class_aware": evaluate(gt, empty), "agnostic": evaluate(gt, empty, False)},
        "class_only_in_detections": {"class_aware": evaluate(gt, extra_coco),
                                     "agnostic": evaluate(gt, extra_coco, False)},
    }
    files = {"gt.json": gt_ds, "dt_empty.json": [], "dt_extra_class.json": extra, "expected.json": expected}
    for name, value in files.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(value, f, indent=1)
            f.write("\n")
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
