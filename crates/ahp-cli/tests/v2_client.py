"""The official Triton client (`tritonclient.http`) against a live `ahp serve`.

    python v2_client.py URL MODEL_NAME MODEL.onnx

Checks, against python onnxruntime on the same ONNX file: server and model health, model
metadata, inference with binary tensors (tritonclient's default) and with JSON tensors at batch
sizes 1, 3 and 8 (logits and image_embeds within 1e-4), the classification extension, bad
shapes, datatypes, input names and model names refused with clear errors, concurrent requests
micro-batched together (async_infer, 8 connections); then parses GET /metrics with prometheus_client's parser. Prints one
JSON line of findings; exits non-zero on the first failed check.
"""

import json
import sys
import urllib.request

import numpy as np
import onnxruntime as ort
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

TOL = 1e-4


def fail(message):
    print(f"v2_client: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(cond, message):
    if not cond:
        fail(message)


def infer(client, name, pixels, binary, outputs=None):
    inp = httpclient.InferInput("pixel_values", list(pixels.shape), "FP32")
    inp.set_data_from_numpy(pixels, binary_data=binary)
    return client.infer(name, [inp], outputs=outputs)


def expect_error(what, fn, *needles):
    try:
        fn()
    except InferenceServerException as e:
        text = str(e)
        for n in needles:
            check(n in text, f"{what}: error {text!r} does not mention {n!r}")
        return text
    fail(f"{what}: the server accepted it")


def main():
    url, name, model = sys.argv[1], sys.argv[2], sys.argv[3]
    host = url.removeprefix("http://")
    client = httpclient.InferenceServerClient(host, concurrency=8)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    check(client.is_server_live(), "server not live")
    check(client.is_server_ready(), "server not ready")
    check(client.is_model_ready(name), "model not ready")
    check(client.is_model_ready(name, "1"), "model version 1 not ready")
    check(not client.is_model_ready("no_such_model"), "unknown model reported ready")

    meta = client.get_model_metadata(name)
    (inp,) = meta["inputs"]
    check(inp["name"] == "pixel_values" and inp["datatype"] == "FP32", f"input {inp}")
    h, w = inp["shape"][2], inp["shape"][3]
    check(inp["shape"] == [-1, 3, h, w], f"input shape {inp['shape']}")
    out_names = [o["name"] for o in meta["outputs"]]
    check(out_names[0] == "logits", f"outputs {out_names}")
    classes = meta["outputs"][0]["shape"][1]
    check(client.get_server_metadata()["name"] == "ahp-serve", "server metadata")
    index = client.get_model_repository_index()
    check(index == [{"name": name, "version": "1", "state": "READY"}], f"index {index}")

    rng = np.random.default_rng(7)
    worst = 0.0
    for batch in (1, 3, 8):
        pixels = rng.standard_normal((batch, 3, h, w), dtype=np.float32)
        want = dict(zip(out_names, session.run(out_names, {"pixel_values": pixels})))
        for binary in (True, False):
            result = infer(client, name, pixels, binary)
            for o in out_names:
                got = result.as_numpy(o)
                check(got is not None, f"batch {batch} binary={binary}: no output {o}")
                check(got.shape == want[o].shape, f"{o} shape {got.shape} vs {want[o].shape}")
                diff = float(np.max(np.abs(got - want[o])))
                worst = max(worst, diff)
                check(diff <= TOL, f"batch {batch} binary={binary}: {o} differs by {diff}")

    # JSON outputs requested explicitly, and the classification extension.
    pixels = rng.standard_normal((2, 3, h, w), dtype=np.float32)
    logits = session.run(["logits"], {"pixel_values": pixels})[0]
    result = infer(client, name, pixels, True, [httpclient.InferRequestedOutput("logits", binary_data=False)])
    check(result.get_output("logits").get("data") is not None, "logits not sent as JSON")
    diff = float(np.max(np.abs(result.as_numpy("logits") - logits)))
    check(diff <= TOL, f"JSON logits differ by {diff}")
    outs = [httpclient.InferRequestedOutput("logits", binary_data=True, class_count=3)]
    result = infer(client, name, pixels, True, outs)
    top = result.as_numpy("logits")
    check(top.shape == (2, 3), f"classification shape {top.shape}")
    for row, entries in zip(logits, top):
        order = np.argsort(-row, kind="stable")[:3]
        got = [int(e.decode().split(":")[1]) for e in entries]
        check(got == list(order), f"classification order {got} vs {list(order)}")

    # Bad requests are refused clearly and the server keeps serving.
    bad_shape = rng.standard_normal((1, 3, h + 1, w), dtype=np.float32)
    expect_error("wrong image size", lambda: infer(client, name, bad_shape, True), "shape")
    too_many = rng.standard_normal((9, 3, h, w), dtype=np.float32)
    expect_error("batch over max_batch", lambda: infer(client, name, too_many, True), "batch size 9")

    def fp16():
        i = httpclient.InferInput("pixel_values", [1, 3, h, w], "FP16")
        i.set_data_from_numpy(np.zeros((1, 3, h, w), dtype=np.float16))
        return client.infer(name, [i])

    expect_error("FP16 input", fp16, "FP16", "FP32")

    def wrong_input():
        i = httpclient.InferInput("images", [1, 3, h, w], "FP32")
        i.set_data_from_numpy(np.zeros((1, 3, h, w), dtype=np.float32))
        return client.infer(name, [i])

    expect_error("wrong input name", wrong_input, "unknown input `images`")
    one = rng.standard_normal((1, 3, h, w), dtype=np.float32)
    expect_error("unknown model", lambda: infer(client, "nope", one, True), "unknown model")
    expect_error(
        "unknown output",
        lambda: infer(client, name, one, True, [httpclient.InferRequestedOutput("probs")]),
        "unknown output `probs`",
    )

    # Concurrent single-image requests: answered right, micro-batched by the server.
    stats_before = json.load(urllib.request.urlopen(f"{url}/v1/stats"))
    singles = rng.standard_normal((32, 1, 3, h, w), dtype=np.float32)
    expected = [session.run(["logits"], {"pixel_values": p})[0] for p in singles]
    # tritonclient's HTTP client is gevent-based: concurrency through async_infer, not threads
    pending = []
    for p in singles:
        inp = httpclient.InferInput("pixel_values", list(p.shape), "FP32")
        inp.set_data_from_numpy(p)
        pending.append(client.async_infer(name, [inp]))
    errors = []
    for i, request in enumerate(pending):
        got = request.get_result().as_numpy("logits")
        d = float(np.max(np.abs(got - expected[i])))
        if d > TOL:
            errors.append(f"request {i}: {d}")
    check(not errors, f"concurrent requests: {errors}")
    stats = json.load(urllib.request.urlopen(f"{url}/v1/stats"))
    runs = stats["runs"] - stats_before["runs"]
    images = stats["images"] - stats_before["images"]
    check(images == 32, f"{images} images run for 32 requests")

    # /metrics parses as Prometheus text and counts what happened.
    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for fam, kind in [
        ("ahp_http_requests", "counter"),
        ("ahp_http_request_duration_seconds", "histogram"),
        ("ahp_http_requests_in_flight", "gauge"),
        ("ahp_inference_queue_duration_seconds", "histogram"),
        ("ahp_inference_run_duration_seconds", "histogram"),
        ("ahp_inference_batch_size", "histogram"),
        ("ahp_inference_images", "counter"),
        ("ahp_model_ready", "gauge"),
    ]:
        check(fam in families, f"/metrics has no {fam}: {sorted(families)}")
        check(families[fam].type == kind, f"{fam} is {families[fam].type}, not {kind}")
    def infer_answers(status):
        return sum(
            s.value
            for s in families["ahp_http_requests"].samples
            if s.name == "ahp_http_requests_total"
            and s.labels["route"] == "/v2/models/{name}/infer"
            and s.labels["status"] == status
        )

    infer_ok, infer_bad = infer_answers("200"), infer_answers("400")
    # 3 batch sizes x 2 encodings + JSON outputs + classification + 32 concurrent = 40 answered; 5 refused with 400
    # (the unknown model is 404).
    check(infer_ok == 40, f"{infer_ok} successful infer requests counted, expected 40")
    check(infer_bad == 5, f"{infer_bad} refused infer requests counted, expected 5")
    batches = [s for s in families["ahp_inference_batch_size"].samples if s.name.endswith("_count")]
    check(batches and batches[0].value >= 1, "no batch-size observations")
    ready = [s.value for s in families["ahp_model_ready"].samples if s.labels["model"] == name]
    check(ready == [1.0], f"ahp_model_ready {ready}")
    print(json.dumps({
        "ok": True,
        "max_abs_diff": worst,
        "classes": classes,
        "concurrent_requests": 32,
        "concurrent_model_runs": runs,
        "metric_families": len(families),
    }))


if __name__ == "__main__":
    main()
