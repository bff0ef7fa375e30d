#!/usr/bin/env python3
"""The peer of `ahp-export` (not a test): `torch.onnx.export` of transformers' CLIP vision tower
+ visual projection + the same zero-shot classifier, then ONNX Runtime CPU throughput of that
file and of ahp-export's file with the same session options, side by side.

The classifier is built like ahp-export's: text embeddings of `template.format(label)`, L2-
normalized, times exp(logit_scale); the graph returns `logits` and L2-normalized `image_embeds`.

    python torch_export_peer.py CKPT_DIR --classes a,b,c --ours OURS.onnx --out TORCH.onnx \
        [--threads 2] [--iters 30] [--batches 1,8]

`benches/export_bench.sh` runs ahp-export and this script in one go.
"""

import argparse
import resource
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, CLIPModel


class Classifier(torch.nn.Module):
    def __init__(self, model, classifier):
        super().__init__()
        self.vision = model.vision_model
        self.proj = model.visual_projection
        self.register_buffer("classifier", classifier)

    def forward(self, pixel_values):
        pooled = self.vision(pixel_values=pixel_values).pooler_output
        embeds = F.normalize(self.proj(pooled), dim=-1)
        return embeds @ self.classifier.T, embeds


def measure(path, batch, threads, iters, size):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(3):
        sess.run(None, feed)
    ms = []
    t0 = time.perf_counter()
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        ms.append((time.perf_counter() - t) * 1e3)
    total = time.perf_counter() - t0
    ms.sort()
    return batch * iters / total, ms[len(ms) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--classes", required=True)
    ap.add_argument("--template", default="a photo of a {}.")
    ap.add_argument("--ours", required=True, help="ahp-export's .onnx of the same checkpoint")
    ap.add_argument("--out", required=True, help="where torch.onnx.export writes")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model = CLIPModel.from_pretrained(args.checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    labels = args.classes.split(",")
    with torch.no_grad():
        text = tok([args.template.format(l) for l in labels], padding=True, return_tensors="pt")
        emb = model.get_text_features(**text)
        emb = getattr(emb, "pooler_output", emb)
        classifier = F.normalize(emb, dim=-1) * model.logit_scale.exp()
    size = model.config.vision_config.image_size
    module = Classifier(model, classifier).eval()
    dummy = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy,),
            args.out,
            input_names=["pixel_values"],
            output_names=["logits", "image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"},
                          "image_embeds": {0: "batch"}},
            opset_version=args.opset,
            dynamo=False,
        )
    export_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch.onnx.export (torch {torch.__version__}, load + classifier + export): "
          f"{export_s:.1f} s, peak RSS {peak:.0f} MiB")

    # The two files agree on the same input (they are the same function of the same weights).
    x = np.random.default_rng(1).standard_normal((2, 3, size, size), dtype=np.float32)
    outs = []
    for path in (args.ours, args.out):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs.append(sess.run(["logits"], {"pixel_values": x})[0])
    print(f"max |logits ours - logits torch| on ONNX Runtime: {np.abs(outs[0] - outs[1]).max():.2e}")

    print(f"ONNX Runtime {ort.__version__} CPU, {args.threads} intra-op threads, {args.iters} runs:")
    for b in [int(v) for v in args.batches.split(",")]:
        ours = measure(args.ours, b, args.threads, args.iters, size)
        peer = measure(args.out, b, args.threads, args.iters, size)
        print(f"  batch {b}: ahp-export {ours[0]:7.1f} images/s (p50 {ours[1]:7.1f} ms) | "
              f"torch.onnx.export {peer[0]:7.1f} images/s (p50 {peer[1]:7.1f} ms) | "
              f"ratio {ours[0] / peer[0]:.2f}x")


if __name__ == "__main__":
    main()
