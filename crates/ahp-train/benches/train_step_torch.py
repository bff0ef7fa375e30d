#!/usr/bin/env python3
"""The PyTorch peer of `cargo bench -p ahp-train --bench train_step`: one full AHP training step
at ViT-B/16 shape (random weights), CPU, printed as images/s.

The vision tower is transformers' `CLIPModel` (its embeddings, LayerNorms, projections and MLPs);
the attention of every block is written here with the same hooks as ahp-model: per-head LoRA
(HA-LoRA) on Q and V with the paper's ranks (2, ..., 2, 8, 8; alpha 8), one gate per head
`H * softmax(logits)` on each head's output before `out_proj`. The step is the same as
`ahp_train::train::step_gradients` + clipping + AdamW: cross-entropy of the CLIP logits against 7
fixed class embeddings (LoRA and gates), Gaussian multi-kernel MMD between 4 source domains on
the gated class-token head outputs of every block (gates only), gradient clipping at 1 per group
(LoRA, gates) as ahp-train's two optimizer groups, AdamW (LoRA lr 3e-3, gates 1e-2: the defaults
of `TrainConfig`).

    python train_step_torch.py [--batch 32] [--steps 3] [--threads N]

`benches/train_step.sh` runs both side by side and prints the ratio.
"""

import argparse
import itertools
import resource
import time

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

BANDWIDTH_MULTIPLIERS = (0.25, 1.0, 4.0)


def default_ranks(blocks):
    return [8 if i >= blocks - 2 else 2 for i in range(blocks)]


class Hooks(torch.nn.Module):
    """HA-LoRA on Q and V plus head gates of one block."""

    def __init__(self, heads, width, rank, alpha=8.0):
        super().__init__()
        dh = width // heads
        self.heads, self.dh, self.scaling = heads, dh, alpha / rank
        for p in ("q", "v"):
            a = torch.empty(heads, rank, width)
            torch.nn.init.kaiming_uniform_(a, a=5**0.5)
            setattr(self, f"{p}_a", torch.nn.Parameter(a))
            setattr(self, f"{p}_b", torch.nn.Parameter(torch.zeros(heads, dh, rank)))
        self.gate_logits = torch.nn.Parameter(torch.zeros(heads))

    def delta(self, x, p):
        a, b = getattr(self, f"{p}_a"), getattr(self, f"{p}_b")
        t = torch.einsum("bnd,hrd->bnhr", x, a)
        d = torch.einsum("bnhr,hkr->bnhk", t, b)
        return d.reshape(x.shape[0], x.shape[1], -1) * self.scaling

    def gates(self):
        return self.heads * torch.softmax(self.gate_logits, dim=0)


def attention(attn, hooks, x):
    b, n, d = x.shape
    h, dh = hooks.heads, hooks.dh
    q = attn.q_proj(x) + hooks.delta(x, "q")
    k = attn.k_proj(x)
    v = attn.v_proj(x) + hooks.delta(x, "v")
    split = lambda t: t.reshape(b, n, h, dh).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    probs = torch.softmax((q @ k.transpose(-1, -2)) * dh**-0.5, dim=-1)
    heads = (probs @ v) * hooks.gates().reshape(1, h, 1, 1)  # [B, H, N, dh]
    out = attn.out_proj(heads.transpose(1, 2).reshape(b, n, d))
    return out, heads


def image_features(model, hooks, pixels):
    vm = model.vision_model
    x = vm.pre_layrnorm(vm.embeddings(pixels))
    per_block = []
    for layer, hk in zip(vm.encoder.layers, hooks):
        a, heads = attention(layer.self_attn, hk, layer.layer_norm1(x))
        x = x + a
        x = x + layer.mlp(layer.layer_norm2(x))
        per_block.append(heads)
    pooled = vm.post_layernorm(x[:, 0, :])
    return model.visual_projection(pooled), per_block


def mmd2(x, y):
    z = torch.cat([x, y], 0)
    sq = (z * z).sum(-1, keepdim=True)
    d2 = (sq + sq.T - 2 * z @ z.T).clamp_min(0)
    n = z.shape[0]
    off = d2.detach()[~torch.eye(n, dtype=torch.bool)]
    sigma2 = float(off.sort().values[off.numel() // 2]) if off.numel() else 1.0
    sigma2 = sigma2 if sigma2 > 1e-12 else 1.0
    k = sum(torch.exp(-d2 / (2 * sigma2 * s)) for s in BANDWIDTH_MULTIPLIERS)
    nx = x.shape[0]
    return k[:nx, :nx].mean() + k[nx:, nx:].mean() - 2 * k[:nx, nx:].mean()


def head_mmd(per_block, domains):
    ids = sorted(set(domains.tolist()))
    groups = [torch.nonzero(domains == d).flatten() for d in ids]
    terms = []
    for heads in per_block:
        b, h, _, dh = heads.shape
        cls = heads[:, :, 0, :].reshape(b, h * dh)
        for i, j in itertools.combinations(range(len(groups)), 2):
            terms.append(mmd2(cls[groups[i]], cls[groups[j]]))
    return sum(terms) / len(terms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = CLIPConfig(
        projection_dim=512,
        vision_config=dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, image_size=224, patch_size=16, hidden_act="quick_gelu",
        ),
    )
    model = CLIPModel(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    vc = cfg.vision_config
    ranks = default_ranks(vc.num_hidden_layers)
    hooks = torch.nn.ModuleList(
        Hooks(vc.num_attention_heads, vc.hidden_size, r) for r in ranks
    )
    lora = [p for n, p in hooks.named_parameters() if not n.endswith("gate_logits")]
    gates = [p for n, p in hooks.named_parameters() if n.endswith("gate_logits")]
    opt_lora = torch.optim.AdamW(lora, lr=3e-3, weight_decay=0.0)
    opt_gate = torch.optim.AdamW(gates, lr=1e-2, weight_decay=0.0)
    class_embeds = F.normalize(torch.randn(7, 512), dim=-1)
    logit_scale = torch.tensor(2.6592).exp()
    pixels = torch.randn(args.batch, 3, 224, 224)
    labels = torch.arange(args.batch) % 7
    domains = torch.arange(args.batch) % 4

    def step():
        embeds, per_block = image_features(model, hooks, pixels)
        logits = F.normalize(embeds, dim=-1) @ class_embeds.T * logit_scale
        ce = F.cross_entropy(logits, labels)
        mmd = head_mmd(per_block, domains)
        opt_lora.zero_grad(set_to_none=True)
        opt_gate.zero_grad(set_to_none=True)
        ce.backward(retain_graph=True)
        mmd_grads = torch.autograd.grad(mmd, gates)
        for g, mg in zip(gates, mmd_grads):
            g.grad = mg if g.grad is None else g.grad + mg
        torch.nn.utils.clip_grad_norm_(lora, 1.0)
        torch.nn.utils.clip_grad_norm_(gates, 1.0)
        opt_lora.step()
        opt_gate.step()

    step()  # warmup
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = (time.perf_counter() - t0) / args.steps
    n_params = sum(p.numel() for p in lora + gates)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"pytorch {torch.__version__} (transformers CLIPModel) {args.batch / dt:.2f} images/s "
        f"({dt * 1e3:.0f} ms/step, {n_params} trainable parameters, batch {args.batch}, "
        f"peak RSS {peak_mib:.0f} MiB, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
