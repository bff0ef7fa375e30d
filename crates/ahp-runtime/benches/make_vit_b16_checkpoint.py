#!/usr/bin/env python3
"""Writes a random-weight CLIP checkpoint whose vision tower has ViT-B/16's shape, for the
ahp-runtime benchmark (not a test; the weights mean nothing).

Vision: 224x224 input, patch 16, hidden 768, 12 layers, 12 heads, MLP 3072, projection 512, as
openai/clip-vit-base-patch16. Text: the tiny text tower of tests/fixtures/models/clip-tiny-a
(same tokenizer files), with its projection widened to 512; only the vision tower runs at
inference time, the text tower just produces the class embeddings at export time.

    pip install numpy safetensors
    python3 crates/ahp-runtime/benches/make_vit_b16_checkpoint.py /tmp/clip-vit-b16-random
    cargo run --release -p ahp-export -- --clip /tmp/clip-vit-b16-random \
        --classes dog,cat,car,tree,house,star /tmp/clip-vit-b16-random.onnx
"""

import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "..", "..", "tests", "fixtures", "models", "clip-tiny-a")

HIDDEN, LAYERS, HEADS, MLP, PATCH, SIZE, PROJ = 768, 12, 12, 3072, 16, 224, 512


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    normal = lambda *shape, std=0.02: (rng.standard_normal(shape) * std).astype(np.float32)
    tiny = load_file(os.path.join(TINY, "model.safetensors"))
    w = {k: v for k, v in tiny.items() if k.startswith("text_model.") or k == "logit_scale"}
    text_hidden = tiny["text_projection.weight"].shape[1]
    w["text_projection.weight"] = normal(PROJ, text_hidden, std=text_hidden**-0.5)
    n_pos = (SIZE // PATCH) ** 2 + 1
    v = "vision_model."
    w[v + "embeddings.class_embedding"] = normal(HIDDEN)
    w[v + "embeddings.patch_embedding.weight"] = normal(HIDDEN, 3, PATCH, PATCH)
    w[v + "embeddings.position_embedding.weight"] = normal(n_pos, HIDDEN)
    for name in ("pre_layrnorm", "post_layernorm"):
        w[v + name + ".weight"] = np.ones(HIDDEN, np.float32)
        w[v + name + ".bias"] = np.zeros(HIDDEN, np.float32)
    for i in range(LAYERS):
        p = f"{v}encoder.layers.{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            w[p + ln + ".weight"] = np.ones(HIDDEN, np.float32)
            w[p + ln + ".bias"] = np.zeros(HIDDEN, np.float32)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + f"self_attn.{proj}.weight"] = normal(HIDDEN, HIDDEN)
            w[p + f"self_attn.{proj}.bias"] = np.zeros(HIDDEN, np.float32)
        w[p + "mlp.fc1.weight"] = normal(MLP, HIDDEN)
        w[p + "mlp.fc1.bias"] = np.zeros(MLP, np.float32)
        w[p + "mlp.fc2.weight"] = normal(HIDDEN, MLP)
        w[p + "mlp.fc2.bias"] = np.zeros(HIDDEN, np.float32)
    w["visual_projection.weight"] = normal(PROJ, HIDDEN, std=HIDDEN**-0.5)
    save_file(w, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})

    with open(os.path.join(TINY, "config.json")) as f:
        config = json.load(f)
    config["projection_dim"] = PROJ
    config["text_config"]["projection_dim"] = PROJ
    config["vision_config"].update(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        patch_size=PATCH,
        image_size=SIZE,
        projection_dim=PROJ,
    )
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(TINY, "preprocessor_config.json")) as f:
        pre = json.load(f)
    pre["size"] = {"shortest_edge": SIZE}
    pre["crop_size"] = {"height": SIZE, "width": SIZE}
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    for name in os.listdir(TINY):
        if name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
            shutil.copy(os.path.join(TINY, name), os.path.join(out, name))
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/clip-vit-b16-random")
