"""The client half of scripts/triton-check.sh: waits for a Triton model to be READY, then compares
its logits with ONNX Runtime's on the same exported file. Standard library + numpy + onnxruntime
(KServe v2 over HTTP with JSON tensors), so it needs no tritonclient.

Exit code 0 when every comparison is within TOLERANCE, 1 otherwise (with the reason)."""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

# Same ONNX Runtime version on both sides; the tolerance allows for a different batch shape.
TOLERANCE = 1e-4
READY_TIMEOUT_S = 120


def request(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{req.get_method()} {url}: HTTP {e.code}: {e.read().decode(errors='replace')}")


def inference_stats(base, model):
    """(inference_count, execution_count) of the model so far: fewer executions than
    inferences means the dynamic batcher merged requests."""
    _, stats = request(f"{base}/v2/models/{model}/stats")
    s = stats["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])


def wait_ready(base, model, pid):
    t0 = time.time()
    while time.time() - t0 < READY_TIMEOUT_S:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"triton-check: tritonserver (pid {pid}) exited before the model was ready")
        try:
            if request(f"{base}/v2/models/{model}/ready")[0] == 200:
                return time.time() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError):
            pass
        time.sleep(0.25)
    sys.exit(f"triton-check: model {model} not READY within {READY_TIMEOUT_S} s")


def infer(base, model, pixels, classification=0):
    output = {"name": "logits"}
    if classification:
        output["parameters"] = {"classification": classification}
    body = {
        "inputs": [{
            "name": "pixel_values",
            "shape": list(pixels.shape),
            "datatype": "FP32",
            "data": pixels.ravel().tolist(),
        }],
        "outputs": [output],
    }
    _, reply = request(f"{base}/v2/models/{model}/infer", body)
    out = reply["outputs"][0]
    if classification:
        return out["data"]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def check_config(base, model):
    _, cfg = request(f"{base}/v2/models/{model}/config")
    kinds = [g.get("kind") for g in cfg.get("instance_group", [])]
    if kinds != ["KIND_CPU"]:
        sys.exit(f"triton-check: instance groups {kinds}, expected one KIND_CPU")
    labels = [o.get("label_filename") for o in cfg["output"] if o["name"] == "logits"]
    if labels != ["labels.txt"]:
        sys.exit(f"triton-check: logits label_filename {labels}, expected labels.txt")
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    a = ap.parse_args()

    ready_s = wait_ready(a.url, a.model, a.server_pid)
    cfg = check_config(a.url, a.model)
    dims = cfg["input"][0]["dims"]
    session = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    # Triton splits label_filename on "\n" only; the export's own labels are its metadata.
    labels = open(a.labels, encoding="utf-8").read().split("\n")
    if labels and labels[-1] == "":
        labels.pop()
    meta = session.get_modelmeta().custom_metadata_map
    exported = json.loads(meta["ahp.labels"])
    if labels != exported:
        sys.exit(f"triton-check: {a.labels} {labels} differs from the model's ahp.labels {exported}")
    rng = np.random.default_rng(0)

    worst = 0.0
    for batch in (1, 3, 5):
        pixels = rng.standard_normal([batch, *map(int, dims)]).astype(np.float32)
        want = session.run(["logits"], {"pixel_values": pixels})[0]
        got = infer(a.url, a.model, pixels)
        if got.shape != want.shape:
            sys.exit(f"triton-check: batch {batch}: logits shape {got.shape}, onnxruntime {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
        top = infer(a.url, a.model, pixels, classification=1)
        if len(top) != batch:
            sys.exit(f"triton-check: batch {batch}: {len(top)} classification results")
        for i, entry in enumerate(top):
            _score, index, label = entry.split(":", 2)
            expected = int(want[i].argmax())
            if int(index) != expected or label != labels[expected]:
                sys.exit(f"triton-check: batch {batch} image {i}: Triton's top-1 {entry!r}, "
                         f"onnxruntime's {expected}:{labels[expected]}")

    before = inference_stats(a.url, a.model)
    singles = [rng.standard_normal([1, *map(int, dims)]).astype(np.float32) for _ in range(32)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda p: infer(a.url, a.model, p), singles))
    for pixels, got in zip(singles, replies):
        want = session.run(["logits"], {"pixel_values": pixels})[0]
        worst = max(worst, float(np.abs(got - want).max()))
    after = inference_stats(a.url, a.model)
    images, executions = after[0] - before[0], after[1] - before[1]

    ok = worst <= TOLERANCE
    print(f"triton-check: {a.model} READY in {ready_s:.1f} s (KIND_CPU, label_filename labels.txt "
          f"== the model's ahp.labels); top-1 labels agree on batches 1, 3, 5; "
          f"32 single-image requests from 8 threads ran as {executions} executions "
          f"(dynamic batching); max |triton - onnxruntime| logits = {worst:.2e} "
          f"(tolerance {TOLERANCE:.0e}): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
