#!/usr/bin/env python3
"""Reference NWD numbers for evdet's tests (crates/model/tests/data/nwd_reference.json): boxes given as
corners (x1, y1, x2, y2), converted to Gaussians N((cx, cy), diag(w²/4, h²/4)) and compared with the
closed form of the 2-Wasserstein distance between two such Gaussians,
W2² = |m1 − m2|² + ‖Σ1^½ − Σ2^½‖_F², Σ^½ = diag(w/2, h/2); NWD = exp(−W2 / C). Float64, standard library."""
import json, math

C = 12.8
PAIRS = [  # (gt corners, pred corners)
    ((10, 10, 16, 16), (10, 10, 16, 16)),      # identical
    ((10, 10, 16, 16), (11, 10, 17, 16)),      # shifted 1 px
    ((10, 10, 16, 16), (100, 100, 106, 106)),  # far apart
    ((0, 0, 4, 4), (0, 0, 8, 8)),              # nested, different size
    ((5.5, 7.25, 9.5, 19.75), (6, 8, 14, 12)), # thin vs wide
    ((200, 100, 264, 164), (210, 95, 270, 170)),
]

def gauss(b):
    x1, y1, x2, y2 = b
    return ((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1) / 2, (y2 - y1) / 2

out = []
for g, p in PAIRS:
    (m1, a1, b1), (m2, a2, b2) = gauss(g), gauss(p)
    w2 = math.sqrt((m1[0] - m2[0]) ** 2 + (m1[1] - m2[1]) ** 2 + (a1 - a2) ** 2 + (b1 - b2) ** 2)
    out.append({"gt_xyxy": g, "pred_xyxy": p, "w2": w2, "nwd": math.exp(-w2 / C)})
print(json.dumps({"constant": C, "pairs": out}, indent=1))
