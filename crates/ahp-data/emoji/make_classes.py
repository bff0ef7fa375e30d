#!/usr/bin/env python3
"""Derives the emoji benchmark's class list (classes.tsv) from the pinned npm packages.

    python3 crates/ahp-data/emoji/make_classes.py PACKAGES_DIR > crates/ahp-data/emoji/classes.tsv

PACKAGES_DIR holds the pinned packages (`crates/ahp-data/src/emoji/designers.rs`), each
unpacked into a directory named like the cached tarball without its version: for every
`ahp-data emoji` cache file `NAME-VERSION.tgz`, `mkdir -p DIR/NAME && tar xzf FILE -C DIR/NAME`
(`iconify-json-twemoji/package/...`, `openmoji/package/...`, `emojibase-data/package/...`). The rules, all mechanical (nothing here looks at a model or an accuracy):

1. Candidates: emojibase-data's emoji in the groups animals & nature, food & drink, travel &
   places, activities and objects (no smileys, people, hands, flags, symbols).
2. Present in every benchmark designer: openmoji (colour and black, one SVG per codepoint),
   emojione, emojione-monotone, streamline-emojis. The last three name their icons without
   codepoints; an icon name maps to a codepoint only when every codepoint table that knows the
   name (the `chars.json` of twemoji, noto, openmoji, fluent-emoji-flat) agrees on it, and of
   numbered variants (`bird-1`, `bird-2`) only the first is used.
3. Concept families are one class: emoji A and B are one family when A's label words (minus
   `face`, `with`, `of`, ...) all occur in B's label or tags (dog / dog face / poodle, whose tags
   say `dog`), or when both labels have the same head noun (the last word before `with`,
   `showing`, ..., not counting a final `face`, singular) and emojibase puts them in the same subgroup (the moon phases,
   which a horizontal flip turns into each other; dollar / pound banknote; beer mug / clinking
   beer mugs; the two globes). Families are closed transitively (A~B and B~C make one family),
   which merges generously (the shoes, the bag and `tennis` end up with `dress`): a lost class
   costs less than two classes of one concept. Each family keeps its shortest label and drops
   the others (listed in the last column, never classes of their own).
4. The contact sheets of every designer were then looked at (`ahp-data emoji --sheet`), and the
   classes in EXCLUDED below removed for the reason given.

Columns: class, codepoint, openmoji file stem, emojione icon, emojione-monotone icon,
streamline-emojis icon, dropped family members.
"""
import json
import os
import re
import sys

# Removed after looking at the contact sheets (class -> reason). Empty until a sheet shows a
# mismatch: a wrong concept in one designer is removed here, never renamed.
EXCLUDED = {}

GROUPS = {3, 4, 5, 6, 7}
STOP = {"face", "with", "of", "the", "a", "an", "and", "button", "on", "in", "for", "symbol",
        "sign", "mark"}
TABLES = ["twemoji", "noto", "openmoji", "fluent-emoji-flat"]
NAMED = ["emojione", "emojione-monotone", "streamline-emojis"]


def norm(cp):
    return "-".join(p for p in cp.lower().split("-") if p != "fe0f")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def iconify(root, name):
    return os.path.join(root, f"iconify-json-{name}", "package")


def name_tables(root):
    tables = []
    for d in TABLES:
        p = os.path.join(iconify(root, d), "chars.json")
        t = {}
        for cp, n in load(p).items():
            t.setdefault(n, norm(cp))
        tables.append(t)
    return tables


def name_to_cp(tables, name):
    got = {t[name] for t in tables if name in t}
    return got.pop() if len(got) == 1 else None


def named_set(root, name, tables):
    icons = load(os.path.join(iconify(root, name), "icons.json"))["icons"]
    out = {}
    for n in sorted(icons):
        if icons[n].get("hidden"):
            continue
        base, var = re.match(r"^(.*?)(?:-(\d))?$", n).groups()
        if var not in (None, "1"):
            continue
        cp = name_to_cp(tables, n) or name_to_cp(tables, base)
        if cp:
            out.setdefault(cp, n)
    return out


def openmoji(root):
    base = os.path.join(root, "openmoji", "package")
    files = set(os.listdir(os.path.join(base, "color", "svg")))
    files &= set(os.listdir(os.path.join(base, "black", "svg")))
    return {norm(f[:-4]): f[:-4] for f in files if f.endswith(".svg")}


def words(s):
    return {w for w in re.split(r"[^a-z0-9]+", s.lower()) if w and w not in STOP}


def head(label):
    w = re.split(r"\s+(?:with|showing|of|on|in|behind|without)\s+", label.lower())[0].split()
    while len(w) > 1 and w[-1] == "face":
        w.pop()
    h = w[-1] if w else label
    return re.sub(r"s$", "", h) if len(h) > 3 else h


def class_name(label):
    return re.sub(r"[^a-z0-9 -]", "", label.lower()).strip()


def families(cands, emoji):
    parent = {c: c for c in cands}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    label = {c: emoji[c]["label"] for c in cands}
    tags = {c: {w for t in emoji[c].get("tags", []) for w in words(t)} for c in cands}
    for a in cands:
        wa = words(label[a])
        for b in cands:
            same_words = wa and wa <= (words(label[b]) | tags[b])
            same_head = (head(label[a]) == head(label[b])
                         and emoji[a].get("subgroup") == emoji[b].get("subgroup"))
            if a != b and (same_words or same_head):
                parent[find(a)] = find(b)
    fam = {}
    for c in cands:
        fam.setdefault(find(c), []).append(c)
    return [(min(m, key=lambda c: (len(label[c]), label[c])), m) for m in fam.values()]


def main(root):
    emoji = {norm(e["hexcode"]): e for e in load(os.path.join(root, "emojibase-data", "package",
                                                              "en", "data.json"))}
    tables = name_tables(root)
    sets = [openmoji(root)] + [named_set(root, n, tables) for n in NAMED]
    cands = [c for c in emoji if emoji[c].get("group") in GROUPS and all(c in s for s in sets)]
    chosen = sorted(families(cands, emoji), key=lambda f: emoji[f[0]]["order"])
    print("\t".join(["class", "codepoint", "openmoji", *NAMED, "dropped"]))
    kept = 0
    for rep, members in chosen:
        name = class_name(emoji[rep]["label"])
        if name in EXCLUDED:
            continue
        dropped = "|".join(sorted(class_name(emoji[m]["label"]) for m in members if m != rep))
        print("\t".join([name, rep] + [s[rep] for s in sets] + [dropped]))
        kept += 1
    print(f"{len(cands)} candidates, {len(chosen)} families, {kept} classes", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
