#!/usr/bin/env python3
"""Cross-checks evdet's Prophesee RAW reading and writing against two independent implementations,
`faery` (Rust, PyPI) and `expelliarmus` (C, PyPI), and writes the small files the Rust tests read.

Writes crates/events/tests/data/raw/:
  <case>.raw            a RAW file written by faery, expelliarmus, by hand from Prophesee's format
                        description (EVT 2.1, triggers, odd words), or by evdet
  <case>.safetensors    the events (x, y, p, t as int64) and triggers (trig_t, trig_id, trig_p) a
                        decoder following the format description must return, on the sensor clock
  cases.json            per case: who wrote it, the sensor, the counts a decoder must report, and
                        how faery and expelliarmus decode it (exact, or how many events differ)

Needs the release binary (`cargo build --release`) for the evdet-written cases. Run from anywhere:
  ~/.evdet/venv/bin/pip install faery==0.7.1 expelliarmus==1.1.12
  ~/.evdet/venv/bin/python scripts/raw_crosscheck.py
Where the tools disagree with each other, notes/raw_formats.md says which is right and why.
"""
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

import expelliarmus
import faery

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/events/tests/data/raw"
EVDET = ROOT / "target/release/evdet"
W, H = 1280, 720


def traffic(seed, n, t0, gaps=True, height=H):
    """Camera-like events in time order: at each time stamp a few rows fire, each a run of
    neighbouring columns (vectors in EVT 2.1/3.0); now and then a long silence (a 9-20 s gap crosses
    EVT 3.0's 16.78 s wrap-around)."""
    rng = np.random.default_rng(seed)
    xs, ys, ps, ts = [], [], [], []
    t = t0
    while len(ts) < n:
        r = rng.integers(0, 200)
        if gaps and r == 0:
            t += int(rng.integers(9_000_000, 20_000_000))
        elif r < 8:
            t += int(rng.integers(3_000, 60_000))
        else:
            t += int(rng.integers(1, 40))
        for y in sorted(rng.choice(height, size=int(rng.integers(1, 4)), replace=False)):
            p = int(rng.integers(0, 2))
            x = int(rng.integers(0, W - 40))
            for _ in range(int(rng.integers(1, 14))):
                xs.append(x)
                ys.append(int(y))
                ps.append(p)
                ts.append(t)
                x += int(rng.integers(1, 4))
    return {
        "x": np.array(xs, np.int64),
        "y": np.array(ys, np.int64),
        "p": np.array(ps, np.int64),
        "t": np.array(ts, np.int64),
    }


def take(ev, keep):
    return {k: v[keep] for k, v in ev.items()}


def faery_array(ev):
    a = np.zeros(len(ev["t"]), dtype=faery.EVENTS_DTYPE)
    a["t"], a["x"], a["y"], a["on"] = ev["t"], ev["x"], ev["y"], ev["p"].astype(bool)
    return a


def expelliarmus_array(ev):
    a = np.zeros(len(ev["t"]), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    a["t"], a["x"], a["y"], a["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return a


def faery_decode(path):
    ev = {"x": [], "y": [], "p": [], "t": []}
    trig = {"t": [], "id": [], "p": []}
    for packet in faery.evt.Decoder(str(path), (W, H), None):
        if "events" in packet:
            e = packet["events"]
            ev["x"].append(e["x"].astype(np.int64))
            ev["y"].append(e["y"].astype(np.int64))
            ev["p"].append(e["on"].astype(np.int64))
            ev["t"].append(e["t"].astype(np.int64))
        if "triggers" in packet:
            tr = packet["triggers"]
            trig["t"].append(tr["t"].astype(np.int64))
            trig["id"].append(tr["source"].astype(np.int64))
            trig["p"].append(tr["rising"].astype(np.int64))
    cat = lambda v: np.concatenate(v) if v else np.zeros(0, np.int64)
    return {k: cat(v) for k, v in ev.items()}, {k: cat(v) for k, v in trig.items()}


def expelliarmus_decode(path, encoding):
    a = expelliarmus.Wizard(encoding=encoding, fpath=str(path)).read()
    return {k: a[k].astype(np.int64) for k in ("x", "y", "p", "t")}


def compare(got, want):
    """'exact', or how the decoded events differ from the expected ones."""
    if len(got["t"]) != len(want["t"]):
        return f"{len(got['t'])} events instead of {len(want['t'])}"
    bad = {k: int(np.sum(got[k] != want[k])) for k in ("x", "y", "p", "t")}
    if not any(bad.values()):
        return "exact"
    dt = np.abs(got["t"] - want["t"])
    return f"differs: {bad}, max |dt| {int(dt.max())} us, dt values {sorted(set(dt.tolist()))[:6]}"


def try_decode(fn):
    try:
        return fn()
    except BaseException as e:  # a tool refusing a file (or panicking on it) is a result too
        return f"error: {e}"


CASES = {}


def save_case(name, ev, trig=None, **meta):
    trig = trig or {"t": [], "id": [], "p": []}
    tensors = {k: np.ascontiguousarray(v, np.int64 if k == "t" else np.int32) for k, v in ev.items()}
    for k in ("t", "id", "p"):
        tensors[f"trig_{k}"] = np.ascontiguousarray(np.array(trig[k], np.int64))
    save_file(tensors, str(OUT / f"{name}.safetensors"))
    path = OUT / f"{name}.raw"
    meta.setdefault("triggers", len(trig["t"]))
    meta["events"] = int(len(ev["t"]))
    meta["bytes"] = path.stat().st_size
    CASES[name] = meta
    print(f"{name}: {meta}")


def evt3_words_of_type(path, kind):
    data = path.read_bytes()
    start = 0
    while data[start : start + 2] == b"% ":
        start = data.index(b"\n", start) + 1
    words = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], "<u2")
    return int(np.sum((words >> 12) == kind))


# ---- written by faery ------------------------------------------------------------------------
ev = traffic(1, 3000, 3_000_123)
for fmt in ("evt3", "evt2"):
    path = OUT / f"faery_{fmt}.raw"
    enc = faery.evt.Encoder(str(path), fmt, False, (W, H), True)
    enc.write({"events": faery_array(ev)})
    del enc
    back, _ = faery_decode(path)
    assert compare(back, ev) == "exact", "faery reads its own file back"
    save_case(
        f"faery_{fmt}",
        ev,
        writer="faery 0.7.1",
        sensor=[H, W],
        expelliarmus=try_decode(lambda: compare(expelliarmus_decode(path, fmt), ev)),
        faery="exact",
    )

# Events below the sensor: written for a 1280x1024 sensor, the header then says 720 rows.
ev_tall = traffic(2, 1500, 1_000, gaps=False, height=1024)
path = OUT / "faery_evt3_outside.raw"
enc = faery.evt.Encoder(str(path), "evt3", False, (W, 1024), True)
enc.write({"events": faery_array(ev_tall)})
del enc
data = path.read_bytes().replace(b"height=1024", b"height=720").replace(b"1280x1024", b"1280x720")
path.write_bytes(data)
inside = ev_tall["y"] < H
save_case(
    "faery_evt3_outside",
    take(ev_tall, inside),
    writer="faery 0.7.1 (header edited to 720 rows)",
    sensor=[H, W],
    outside_sensor=int(np.sum(~inside)),
)

# ---- written by expelliarmus -----------------------------------------------------------------
path = OUT / "expelliarmus_evt2.raw"
expelliarmus.Wizard(encoding="evt2").save(str(path), expelliarmus_array(ev))
assert compare(expelliarmus_decode(path, "evt2"), ev) == "exact"
save_case(
    "expelliarmus_evt2",
    ev,
    writer="expelliarmus 1.1.12",
    # Its header names system_ID 21, a 640x480 Gen3 camera, whatever the events: read as 1280x720.
    sensor=[H, W],
    sensor_override=[H, W],
    expelliarmus="exact",
    faery=try_decode(lambda: compare(faery_decode(path)[0], ev)),
)

# expelliarmus writes EVT 3.0 with one time high only (its writer shifts by 32 bits instead of 12),
# and the first row address before it. By the format description a decoder drops the events before
# the next row address and reads the time modulo 4096 us after the only time high.
for name, events in (
    ("expelliarmus_evt3_short", traffic(3, 400, 8192 + 17, gaps=False)),
    ("expelliarmus_evt3_long", traffic(4, 1500, 8192 + 17, gaps=False)),
):
    if name.endswith("short"):
        events = take(events, events["t"] < 8192 + 4096)
    path = OUT / f"{name}.raw"
    expelliarmus.Wizard(encoding="evt3").save(str(path), expelliarmus_array(events))
    assert evt3_words_of_type(path, 0x8) == 1, "expelliarmus writes a single time high"
    first_row_change = int(np.argmax(events["y"] != events["y"][0]))
    want = take(events, np.arange(len(events["t"])) >= first_row_change)
    want["t"] = (events["t"][0] >> 12 << 12) + (want["t"] & 0xFFF)
    save_case(
        name,
        want,
        writer="expelliarmus 1.1.12",
        sensor=[H, W],
        encoded_events=int(len(events["t"])),
        before_time_high=1,  # the row address expelliarmus writes before its time high
        without_row=first_row_change,
        expelliarmus_reads_own=compare(expelliarmus_decode(path, "evt3"), events),
        faery=try_decode(lambda: compare(faery_decode(path)[0], want)),
    )

# ---- written by hand from the format description -------------------------------------------
HEADER21 = "% evt 2.1\n% format EVT21;height=720;width=1280{}\n% geometry 1280x720\n% end\n"


def evt21_words(ev, trig):
    """EVT 2.1 words (u64): a time high at every change of t >> 6 (the first one not 0, so
    Metavision's shift shows), one vector per run on one row, polarity, time and 32-column block."""
    words, th = [], None
    items = [(int(t), 0, i) for i, t in enumerate(ev["t"])] + [
        (int(t), -1, j) for j, t in enumerate(trig["t"])
    ]
    items.sort()
    k = 0
    while k < len(items):
        t, kind, i = items[k]
        if th != t >> 6:
            th = t >> 6
            words.append((0x8 << 60) | ((th & 0x0FFFFFFF) << 32))
        if kind == -1:
            words.append(
                (0xA << 60) | ((t & 63) << 54) | (int(trig["id"][i]) << 40) | (int(trig["p"][i]) << 32)
            )
            k += 1
            continue
        x0 = int(ev["x"][i]) & ~31
        y, p = int(ev["y"][i]), int(ev["p"][i])
        mask = 1 << (int(ev["x"][i]) - x0)
        m = k + 1
        while m < len(items):
            t2, kind2, i2 = items[m]
            if (kind2, t2) != (0, t) or int(ev["y"][i2]) != y or int(ev["p"][i2]) != p:
                break
            x = int(ev["x"][i2])
            if not (x0 <= x < x0 + 32) or x <= int(ev["x"][items[m - 1][2]]):
                break
            mask |= 1 << (x - x0)
            m += 1
        words.append((p << 60) | ((t & 63) << 54) | (x0 << 43) | (y << 32) | mask)
        k = m
    return words


ev21 = traffic(5, 2000, 5_000_000 + 37)
trig21 = {"t": [int(ev21["t"][i]) for i in (10, 500, 1900)], "id": [0, 3, 9], "p": [1, 0, 1]}


def faery_decode_evt21(path):
    """faery knows EVT 2.1 as "EVT2.1" (Metavision writes "EVT21"): it reads a copy so named."""
    copy = path.with_suffix(".faery.raw")
    copy.write_bytes(path.read_bytes().replace(b"format EVT21;", b"format EVT2.1;", 1))
    try:
        return faery_decode(copy)
    finally:
        copy.unlink()
for legacy in (False, True):
    name = "handmade_evt21_" + ("legacy" if legacy else "little")
    words = evt21_words(ev21, trig21)
    if legacy:  # the upper 32 bits first, each half little-endian
        body = b"".join(struct.pack("<II", w >> 32, w & 0xFFFFFFFF) for w in words)
    else:
        body = b"".join(struct.pack("<Q", w) for w in words)
    path = OUT / f"{name}.raw"
    path.write_bytes(HEADER21.format(";endianness=" + ("legacy" if legacy else "little")).encode() + body)
    save_case(
        name,
        ev21,
        trig21,
        writer="by hand (scripts/raw_crosscheck.py) from the EVT 2.1 description",
        sensor=[H, W],
        first_time_high_us=int(ev21["t"][0] >> 6 << 6),
        faery=try_decode(lambda: compare(faery_decode_evt21(path)[0], ev21)),
    )

# EVT 3.0 with everything a camera may send besides CD events: words before the first time high,
# triggers, OTHERS with CONTINUED words, a repeated time high (keeps the time low), a type the
# format does not define, an event left of no row address.
def w16(kind, payload):
    return struct.pack("<H", (kind << 12) | payload)


body = b"".join(
    [
        w16(0x2, 5),  # ADDR_X before any time high: skipped
        w16(0x6, 7),  # TIME_LOW before any time high: skipped
        w16(0x8, 100),  # first TIME_HIGH: t = 100 * 4096
        w16(0x2, 9),  # ADDR_X before any row address: dropped (no row)
        w16(0x6, 10),  # t = 409610
        w16(0x0, 33),  # ADDR_Y 33
        w16(0x2, (1 << 11) | 40),  # event (40, 33, on) at 409610
        w16(0xA, (2 << 8) | 1),  # trigger id 2 rising at 409610
        w16(0xE, 0x014),  # OTHERS (an ERC counter) + CONTINUED_12, CONTINUED_12, CONTINUED_4
        w16(0xF, 0xABC),
        w16(0xF, 0x123),
        w16(0x7, 0x5),
        w16(0x8, 100),  # the same time high again: time low kept
        w16(0x3, 64),  # VECT_BASE_X 64, off
        w16(0x4, 0b101),  # VECT_12: x 64, 66 ; base -> 76
        w16(0x5, 0b1),  # VECT_8: x 76 ; base -> 84
        w16(0x9, 0x777),  # type 9: not in the format, counted and skipped
        w16(0x8, 101),  # new time high: time low back to 0 -> t = 413696
        w16(0x2, 1279),  # event (1279, 33, off) at 413696
        w16(0x2, 1280),  # x beyond the sensor: dropped and counted
        w16(0x0, 720),  # a row beyond the sensor
        w16(0x2, 3),  # dropped and counted
        w16(0xA, (3 << 8) | 0),  # trigger id 3 falling at 413696
    ]
)
path = OUT / "handmade_evt3_words.raw"
path.write_bytes(b"% format EVT3;height=720;width=1280\n% end\n" + body)
save_case(
    "handmade_evt3_words",
    {
        "x": np.array([40, 64, 66, 76, 1279]),
        "y": np.array([33, 33, 33, 33, 33]),
        "p": np.array([1, 0, 0, 0, 1 * 0 + 0]),
        "t": np.array([409610, 409610, 409610, 409610, 413696]),
    },
    {"t": [409610, 413696], "id": [2, 3], "p": [1, 0]},
    writer="by hand (scripts/raw_crosscheck.py) from the EVT 3.0 description",
    sensor=[H, W],
    before_time_high=2,
    without_row=1,
    unknown_words=1,
    outside_sensor=2,
    first_time_high_us=100 * 4096,
    faery=try_decode(lambda: compare(faery_decode(path)[0], {
        "x": np.array([40, 64, 66, 76, 1279]), "y": np.array([33] * 5), "p": np.array([1, 0, 0, 0, 0]),
        "t": np.array([409610, 409610, 409610, 409610, 413696])})),
)

# ---- written by evdet, read by the others ----------------------------------------------------
if not EVDET.exists():
    sys.exit(f"build the release binary first: {EVDET} is missing")
import h5py  # noqa: E402

src = OUT / "traffic_td.h5"
with h5py.File(src, "w") as f:
    g = f.create_group("events")
    for k, dt in (("x", "u2"), ("y", "u2"), ("p", "u1"), ("t", "i8")):
        g.create_dataset(k, data=ev[k].astype(dt))
    g.create_dataset("height", data=H)
    g.create_dataset("width", data=W)
for fmt in ("evt3", "evt2", "evt21"):
    name = f"evdet_{fmt}"
    path = OUT / f"{name}.raw"
    subprocess.run(
        [EVDET, "convert", src, path, "--format", f"raw-{fmt}", "--overwrite"],
        check=True,
        capture_output=True,
    )
    save_case(
        name,
        ev,
        writer="evdet convert (from traffic events)",
        sensor=[H, W],
        faery=try_decode(
            lambda: compare((faery_decode_evt21 if fmt == "evt21" else faery_decode)(path)[0], ev)
        ),
        expelliarmus=try_decode(lambda: compare(expelliarmus_decode(path, fmt), ev))
        if fmt != "evt21"
        else "does not read EVT 2.1",
    )
src.unlink()
# Triggers through evdet: the hand-made EVT 2.1 file re-encoded as EVT 3.0, read by faery.
path = OUT / "evdet_evt3_triggers.raw"
subprocess.run(
    [EVDET, "convert", OUT / "handmade_evt21_little.raw", path, "--overwrite", "--time-origin", "sensor"],
    check=True,
    capture_output=True,
)
got_ev, got_trig = faery_decode(path)
save_case(
    "evdet_evt3_triggers",
    ev21,
    trig21,
    writer="evdet convert (from handmade_evt21_little.raw)",
    sensor=[H, W],
    faery=compare(got_ev, ev21),
    faery_triggers="exact"
    if got_trig["t"].tolist() == trig21["t"] and got_trig["id"].tolist() == trig21["id"]
    and got_trig["p"].tolist() == trig21["p"]
    else f"differs: {got_trig}",
)

(OUT / "cases.json").write_text(json.dumps(CASES, indent=1, sort_keys=True) + "\n")
print(f"wrote {len(CASES)} cases to {OUT}")
