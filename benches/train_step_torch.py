"""PyTorch peer of `cargo bench -p ahp-train --bench train_step`: one AHP training step
(transformers CLIPModel at ViT-B/16 shape, random weights, frozen; per-head LoRA on Q and V with
the paper's ranks, per-head gates, class-token MMD between 4 source domains on every block,
CLIP-logit cross-entropy; the MMD gradient reaches the gates only), batch 32, CPU.

Prints one line: `torch <images/s> images/s (<ms> ms/step, <threads> threads)`.
"""

import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel

threads = int(os.environ.get("AHP_BENCH_THREADS", "2"))
steps = int(os.environ.get("AHP_BENCH_STEPS", "3"))
batch = int(os.environ.get("AHP_BENCH_BATCH", "32"))
torch.set_num_threads(threads)
torch.manual_seed(0)

cfg = CLIPConfig(
    text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=224, patch_size=16),
    projection_dim=512,
)
model = CLIPModel(cfg).eval()
for p in model.parameters():
    p.requires_grad_(False)

H, D = 12, 768
DH = D // H
L = 12
ranks = [8 if i >= L - 2 else 2 for i in range(L)]
alpha = 8.0


class HeadAwareAttention(nn.Module):
    """CLIPAttention with per-head LoRA on q/v and per-head output gates."""

    def __init__(self, attn, r):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj
        bound = 1 / math.sqrt(D)
        self.qa = nn.Parameter(torch.empty(H, r, D).uniform_(-bound, bound))
        self.qb = nn.Parameter(torch.zeros(H, DH, r))
        self.va = nn.Parameter(torch.empty(H, r, D).uniform_(-bound, bound))
        self.vb = nn.Parameter(torch.zeros(H, DH, r))
        self.gate_logits = nn.Parameter(torch.zeros(H))
        self.scaling = alpha / r
        self.heads = None

    def delta(self, x, a, b):
        bsz, n, _ = x.shape
        xa = torch.einsum("bnd,hrd->bnhr", x, a)
        return torch.einsum("bnhr,hdr->bnhd", xa, b).reshape(bsz, n, D) * self.scaling

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        x = hidden_states
        bsz, n, _ = x.shape
        q = self.q_proj(x) + self.delta(x, self.qa, self.qb)
        k = self.k_proj(x)
        v = self.v_proj(x) + self.delta(x, self.va, self.vb)
        split = lambda t: t.view(bsz, n, H, DH).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        probs = torch.softmax(q @ k.transpose(-1, -2) * DH**-0.5, dim=-1)
        heads = probs @ v
        g = H * torch.softmax(self.gate_logits, dim=0)
        heads = heads * g.view(1, H, 1, 1)
        self.heads = heads
        out = self.out_proj(heads.transpose(1, 2).reshape(bsz, n, D))
        return out, None


attns = []
for i, layer in enumerate(model.vision_model.encoder.layers):
    layer.self_attn = HeadAwareAttention(layer.self_attn, ranks[i])
    attns.append(layer.self_attn)
lora = [p for a in attns for p in (a.qa, a.qb, a.va, a.vb)]
gates = [a.gate_logits for a in attns]
opt_lora = torch.optim.AdamW(lora, lr=1e-3, weight_decay=0.0)
opt_gate = torch.optim.AdamW(gates, lr=1e-2, weight_decay=0.0)

C, P = 7, 512
class_embeds = F.normalize(torch.randn(C, P), dim=-1)
logit_scale = math.exp(2.6592)
domains = torch.arange(batch) % 4
labels = torch.arange(batch) % C


def mmd2(x, y):
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    n = d2.shape[0]
    off = d2[~torch.eye(n, dtype=torch.bool)]
    sigma2 = off.median().detach().clamp_min(1e-12)
    k = sum(torch.exp(-d2 / (2 * sigma2 * s)) for s in (0.25, 1.0, 4.0))
    a = x.shape[0]
    return k[:a, :a].mean() + k[a:, a:].mean() - 2 * k[:a, a:].mean()


def step(pixels):
    feats = model.get_image_features(pixel_values=pixels)
    feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    logits = F.normalize(feats, dim=-1) @ class_embeds.T * logit_scale
    ce = F.cross_entropy(logits, labels)
    mmd, count = 0.0, 0
    for a in attns:
        cls = a.heads[:, :, 0, :].reshape(batch, H * DH)
        for i in range(4):
            for j in range(i + 1, 4):
                mmd = mmd + mmd2(cls[domains == i], cls[domains == j])
                count += 1
    mmd = mmd / count
    opt_lora.zero_grad(set_to_none=True)
    opt_gate.zero_grad(set_to_none=True)
    mmd_gate_grads = torch.autograd.grad(mmd, gates, retain_graph=True)
    ce.backward()
    for g, mg in zip(gates, mmd_gate_grads):
        g.grad = g.grad + mg
    torch.nn.utils.clip_grad_norm_(lora + gates, 1.0)
    opt_lora.step()
    opt_gate.step()
    return ce.item()


pixels = torch.randn(batch, 3, 224, 224)
step(pixels)  # warmup
t0 = time.perf_counter()
for _ in range(steps):
    step(pixels)
dt = (time.perf_counter() - t0) / steps
print(f"torch {batch / dt:.2f} images/s ({dt * 1e3:.0f} ms/step, {threads} threads)")
sys.stdout.flush()
