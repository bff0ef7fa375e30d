#!/usr/bin/env python3
"""Writes the small offline sample of the designers' packages used by the tests.

    python3 crates/ahp-data/emoji/make_sample.py PACKAGES_DIR crates/ahp-data/tests/fixtures/emoji dog pizza rocket

PACKAGES_DIR is laid out as for make_classes.py. For every designer (benchmark and pretraining)
the sample holds only the icons of the given classes, in the package's own layout (`<package
dir>/package/...`), with the matching entries of the `chars.json` tables and of emojibase-data,
so `ahp-data emoji --unpacked SAMPLE` (and `--pretraining`) reads it exactly like the real
packages.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_classes import load, norm  # noqa: E402  (one definition of the join key)

HERE = os.path.dirname(os.path.abspath(__file__))
ICONIFY = ["emojione", "emojione-monotone", "streamline-emojis"]
PRETRAINING = ["twemoji", "noto", "noto-v1", "fluent-emoji", "fluent-emoji-flat", "fxemoji"]
TABLES = ["twemoji", "noto", "openmoji", "fluent-emoji-flat"]


def dump(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=0, sort_keys=True)


def pretraining(root, out, cps):
    """The pretraining sets, the chars.json tables and emojibase, cut to the codepoints `cps`."""
    names = {}
    for t in TABLES:
        chars = load(os.path.join(root, f"iconify-json-{t}", "package", "chars.json"))
        dump({cp: n for cp, n in chars.items() if norm(cp) in cps},
             os.path.join(out, f"iconify-json-{t}", "package", "chars.json"))
        for cp, n in chars.items():
            if norm(cp) in cps:
                names[n] = norm(cp)
                names[n.replace("-", "")] = norm(cp)
    for d in PRETRAINING:
        src = os.path.join(root, f"iconify-json-{d}", "package")
        full = load(os.path.join(src, "icons.json"))
        keep = {n for n in full["icons"] if names.get(n) or names.get(n.removesuffix("-1"))}
        sample = {k: v for k, v in full.items() if k not in ("icons", "aliases")}
        sample["icons"] = {k: v for k, v in full["icons"].items() if k in keep}
        dump(sample, os.path.join(out, f"iconify-json-{d}", "package", "icons.json"))
    emoji = load(os.path.join(root, "emojibase-data", "package", "en", "data.json"))
    dump([e for e in emoji if norm(e["hexcode"]) in cps],
         os.path.join(out, "emojibase-data", "package", "en", "data.json"))


def main(root, out, classes):
    with open(os.path.join(HERE, "classes.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    header, rows = rows[0], {r[0]: r for r in rows[1:]}
    picked = [rows[c] for c in classes]
    for name in ICONIFY:
        col = header.index(name)
        src = os.path.join(root, f"iconify-json-{name}", "package")
        with open(os.path.join(src, "icons.json"), encoding="utf-8") as f:
            full = json.load(f)
        keep = {r[col] for r in picked}
        sample = {k: v for k, v in full.items() if k not in ("icons", "aliases")}
        sample["icons"] = {k: v for k, v in full["icons"].items() if k in keep}
        dst = os.path.join(out, f"iconify-json-{name}", "package")
        os.makedirs(dst, exist_ok=True)
        with open(os.path.join(dst, "icons.json"), "w", encoding="utf-8") as f:
            json.dump(sample, f, indent=0, sort_keys=True)
    col = header.index("openmoji")
    for kind in ["color", "black"]:
        dst = os.path.join(out, "openmoji", "package", kind, "svg")
        os.makedirs(dst, exist_ok=True)
        for r in picked:
            shutil.copy(os.path.join(root, "openmoji", "package", kind, "svg", r[col] + ".svg"), dst)
    pretraining(root, out, {r[1] for r in picked})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
