#!/usr/bin/env python3
"""Cross-check an ahp-export ONNX file with the reference ONNX tooling.

1. onnx.checker.check_model(path, full_check=True) (structure, types, shape inference);
2. onnxruntime (CPUExecutionProvider) runs the given input;
3. each output is compared with an expected .npy (e.g. written by the Rust tests from tract
   or candle outputs) within an absolute tolerance.

Usage:
  check_onnx.py MODEL.onnx --input pixel_values.npy \
      --expected logits=logits.npy --expected image_embeds=embeds.npy [--tol 1e-4]

Prints one JSON line {"checker": "ok", "outputs": {name: max_abs_diff}, ...} and exits
non-zero (with a message on stderr) on any failure.
"""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--input", required=True, help="pixel_values as .npy (float32)")
    parser.add_argument(
        "--expected",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="expected value of an output",
    )
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()

    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
    except ImportError as e:  # the Rust test turns this into a failure
        print(f"error: cannot import onnx/onnxruntime/numpy: {e}", file=sys.stderr)
        return 3

    onnx.checker.check_model(args.model, full_check=True)
    model = onnx.load(args.model)
    meta = {p.key: p.value for p in model.metadata_props}

    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    if inputs != ["pixel_values"]:
        print(f"error: inputs are {inputs}, expected ['pixel_values']", file=sys.stderr)
        return 1
    pixels = np.load(args.input).astype(np.float32)
    results = dict(zip(outputs, sess.run(outputs, {"pixel_values": pixels})))

    diffs = {}
    failed = []
    for spec in args.expected:
        name, path = spec.split("=", 1)
        if name not in results:
            print(f"error: no output `{name}` (outputs: {outputs})", file=sys.stderr)
            return 1
        want = np.load(path)
        got = results[name]
        if got.shape != want.shape:
            print(
                f"error: output `{name}` has shape {got.shape}, expected {want.shape}",
                file=sys.stderr,
            )
            return 1
        d = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        if not np.isfinite(d):
            d = float("inf")
        diffs[name] = d
        if not d <= args.tol:
            failed.append(f"{name}: max |onnxruntime - expected| = {d:.3e} > {args.tol:.1e}")

    print(
        json.dumps(
            {
                "checker": "ok",
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
                "outputs": diffs,
                "shapes": {k: list(v.shape) for k, v in results.items()},
                "metadata_keys": sorted(meta),
            }
        )
    )
    if failed:
        print("error: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
