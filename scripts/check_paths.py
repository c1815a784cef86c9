"""Fails when a file under crates/, scripts/, config/ or tests/ refers to a path above the repository root.

A clone of evdet must be complete on its own: its tests and scripts may not reach into a `shared/`
folder beside it or anywhere else outside the tree. Checked: every relative path written with `../`
(resolved from the crate folder for files under crates/<crate>/, whose paths are relative to
CARGO_MANIFEST_DIR, else from the file's own folder), and the names of the development machines'
folders outside the repository (`shared/fixtures`, `shared/bench`, `/work/`).

usage: python3 scripts/check_paths.py   (from anywhere; exits 1 and lists every offending line)
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("crates", "scripts", "config", "tests")
UP = re.compile(r"(?:\.\./)+[\w.\-]*")
OUTSIDE_NAMES = re.compile(r"shared/(?:fixtures|bench)|/work/")


def base_of(path):
    parts = path.relative_to(ROOT).parts
    if parts[0] == "crates" and len(parts) > 2:
        return ROOT / parts[0] / parts[1]
    return path.parent


def escapes(base, relative):
    # Lexically: a link inside the tree (`.torch` → the venv's torch) is still a path inside it.
    target = Path(os.path.normpath(base / relative))
    return target != ROOT and ROOT not in target.parents


def main():
    bad = []
    me = Path(__file__).resolve()
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path == me or not path.is_file() or path.stat().st_size > 2_000_000:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary data (fixtures)
            base = base_of(path)
            for no, line in enumerate(text.splitlines(), 1):
                hits = [m.group(0) for m in UP.finditer(line) if escapes(base, m.group(0))]
                hits += OUTSIDE_NAMES.findall(line)
                if hits:
                    bad.append(f"{path.relative_to(ROOT)}:{no}: {', '.join(hits)}: {line.strip()[:120]}")
    if bad:
        print("paths above the repository root (a fresh clone does not have them):", file=sys.stderr)
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print("check_paths: no file under crates/, scripts/, config/, tests/ refers to a path outside the repository")


if __name__ == "__main__":
    main()
