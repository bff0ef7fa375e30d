#!/usr/bin/env python3
"""The robustness suite: every ahp entry point against generated hostile inputs.

Each case runs a real binary under a virtual-memory limit (`ulimit -v`, 4 GiB by default) and a
timeout, and passes only if the outcome is the designed one: a clear error (non-zero exit or a
4xx, with a message naming what is wrong), the good inputs of the same run still answered, the
server still serving, nothing already written lost. A panic, an abort (death by a signal), a hang
(timeout) or a wrong answer fails the case.

Nothing hostile is committed: the corpus is generated here (aspect-ratio and decompression
bombs, truncated / garbage / zero-byte files, FIFOs, device nodes, symlink loops, models with
absurd metadata or NaN weights, extreme numeric options, slow and stalled clients, concurrent
runs on one directory, kill -9 mid-write).

Usage: hostile.py --bin target/debug --out target/robustness [--mem-gib 4]
Needs: ORT_DYLIB_PATH (ONNX Runtime for ahp-predict / ahp-serve) and the `onnx` module (to make
the absurd and NaN models). Prints one line per case and `robustness: N passed, M failed`.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MODEL = FIXTURES / "onnx" / "clip-tiny-a.onnx"
CLIP = FIXTURES / "models" / "clip-tiny-a"
GOOD = FIXTURES / "images" / "rgb_square.png"
EMOJI_SAMPLE = ROOT / "crates" / "ahp-data" / "tests" / "fixtures" / "emoji"


class Suite:
    def __init__(self, bin_dir, out, mem_gib):
        self.bin = Path(bin_dir)
        self.out = Path(out)
        self.mem = int(mem_gib * (1 << 30))
        self.passed = 0
        self.failed = []
        self.skipped = []

    # -- running things -------------------------------------------------------------------------

    def limit(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.mem, self.mem))

    def run(self, name, args, timeout=60, **kw):
        """Runs a binary under the memory limit; returns (returncode, stdout, stderr, seconds)
        with returncode None on a timeout (the process group is killed)."""
        cmd = [str(self.bin / name)] + [str(a) for a in args]
        t = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=self.limit, start_new_session=True, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
            return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            return None, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t

    def check(self, case, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {case}", flush=True)
        else:
            self.failed.append(case)
            print(f"FAIL  {case}: {detail}", flush=True)

    def skip(self, case, why):
        self.skipped.append(case)
        print(f"skip  {case}: {why}", flush=True)

    def clean_error(self, case, result, must_contain, code=None):
        """A non-zero exit by the program itself (no signal, no panic, no hang) whose stderr
        names the problem."""
        rc, out, err, secs = result
        text = out + err
        if rc is None:
            return self.check(case, False, f"hang: killed after {secs:.0f} s")
        if rc < 0:
            return self.check(case, False, f"killed by signal {-rc} (abort): {err[-400:]}")
        if "panicked" in text:
            return self.check(case, False, f"panic: {err[-400:]}")
        if rc == 0:
            return self.check(case, False, "exit 0 where an error was expected")
        if code is not None and rc != code:
            return self.check(case, False, f"exit {rc}, expected {code}: {err[-300:]}")
        missing = [m for m in must_contain if m not in text]
        self.check(case, not missing, f"message lacks {missing}: {err[-400:]}")

    # -- the corpus -----------------------------------------------------------------------------

    def corpus(self):
        c = self.out / "corpus"
        shutil.rmtree(c, ignore_errors=True)
        c.mkdir(parents=True)
        (c / "aspect.png").write_bytes(gray_png(1, 10_000_000))  # D1, 19 KB
        (c / "aspect_small.png").write_bytes(gray_png(1, 100_000))  # D2, ~300 bytes
        (c / "huge.png").write_bytes(gray_png(13_000, 13_000))  # D2, decompression bomb
        jpeg = (FIXTURES / "images" / "wide.jpg").read_bytes()
        (c / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # D17
        (c / "garbage.png").write_bytes(os.urandom(4096))
        (c / "zero.png").write_bytes(b"")
        shutil.copy(GOOD, c / "good.png")
        os.mkfifo(c / "fifo.png")  # D12
        os.mkfifo(c / "fifo.onnx")
        tree = c / "tree"  # D11, D12, D13
        (tree / "a" / "b").mkdir(parents=True)
        shutil.copy(GOOD, tree / "a" / "good.png")
        os.symlink("..", tree / "a" / "b" / "up")
        os.symlink(".", tree / "loop")
        os.mkfifo(tree / "a" / "pipe.png")
        return c

    def models(self, c):
        """absurd.onnx (ahp.resize shortest_edge=60000, D14) and nan.onnx (NaN weights, D15)."""
        import numpy as np
        import onnx
        from onnx import numpy_helper

        m = onnx.load(str(MODEL))
        for p in m.metadata_props:
            if p.key == "ahp.resize":
                p.value = "shortest_edge=60000,bicubic,center_crop=32x32"
        onnx.save(m, str(c / "absurd.onnx"))
        m = onnx.load(str(MODEL))
        for init in m.graph.initializer:
            a = numpy_helper.to_array(init)
            if a.dtype == np.float32 and a.size > 16:
                init.CopyFrom(numpy_helper.from_array(np.full_like(a, np.nan), init.name))
                break
        onnx.save(m, str(c / "nan.onnx"))

    # -- entry points ---------------------------------------------------------------------------

    def predict(self, c):
        r = self.run("ahp-predict", [MODEL, c / "aspect.png", c / "good.png", "--json"], timeout=30)
        lines = json_lines(r[1])
        bomb = [l for l in lines if l.get("path", "").endswith("aspect.png")]
        good = [l for l in lines if l.get("path", "").endswith("good.png")]
        self.check("D1 predict: aspect bomb is a per-image error, the good image classified",
                   r[0] == 1 and bomb and "aspect ratio" in bomb[0].get("error", "") and good
                   and "top" in good[0] and r[3] < 20,
                   f"exit {r[0]} in {r[3]:.1f} s, stdout {r[1][-300:]!r}, stderr {r[2][-300:]!r}")
        r = self.run("ahp-predict", [MODEL, c / "aspect_small.png"], timeout=30)
        self.clean_error("D2 predict: 274-byte 1x100000 PNG refused", r, ["aspect ratio"])
        self.check("D2 predict: ... within a second of the model load", r[3] < 10, f"{r[3]:.1f} s")
        r = self.run("ahp-predict", [MODEL, c / "huge.png", "--json"], timeout=30)
        self.clean_error("D2 predict: 13000x13000 decompression bomb refused", r, ["over the limit"])
        for name, needle in [("truncated.jpg", "truncated"), ("garbage.png", "unrecognized"),
                             ("zero.png", "empty file")]:
            r = self.run("ahp-predict", [MODEL, c / name, c / "good.png", "--json"], timeout=30)
            good = [l for l in json_lines(r[1]) if "top" in l]
            self.clean_error(f"D17 predict: {name} is a per-image error", r, [needle], code=1)
            self.check(f"D17 predict: {name} beside a good image, the good one classified", len(good) == 1, r[1])
        r = self.run("ahp-predict", [MODEL, c / "fifo.png"], timeout=20)
        self.clean_error("D12 predict: FIFO input refused, no hang", r, ["not a regular file (a FIFO)"], code=1)
        r = self.run("ahp-predict", [MODEL, "/dev/zero"], timeout=20)
        self.clean_error("D12 predict: /dev/zero refused, not read", r, ["character device"], code=1)
        r = self.run("ahp-predict", [c / "fifo.onnx", c / "good.png"], timeout=20)
        self.clean_error("D12 predict: FIFO as the model refused", r, ["not a regular file"], code=2)
        r = self.run("ahp-predict", [MODEL, c / "tree", "--json"], timeout=30)
        lines = json_lines(r[1])
        good = [l for l in lines if "top" in l]
        pipe = [l for l in lines if l.get("path", "").endswith("pipe.png")]
        self.check("D13 predict: symlink loops walked once", r[0] is not None and len(good) >= 1
                   and len([l for l in good if l["path"].endswith("a/good.png")]) == 1, r[1][-500:])
        self.check("D12 predict: a FIFO inside a walked directory is a per-entry error",
                   pipe and "not a regular file" in pipe[0].get("error", ""), r[1][-500:])
        self.unreadable_directory(c)
        r = self.run("ahp-predict", [c / "absurd.onnx", c / "good.png"], timeout=20)
        self.clean_error("D14 predict: absurd ahp.resize refused at load", r, ["ahp.resize", "1 to 4096"], code=2)
        r = self.run("ahp-predict", [c / "nan.onnx", c / "good.png", "--json"], timeout=30)
        self.clean_error("D15 predict: NaN outputs are an error, not a prediction", r, ["non-finite"], code=1)
        for args, needle in [(["--top-k", "0"], "top-k"), (["--batch-size", "0"], "batch-size"),
                             (["--max-image-pixels", "0"], "max-image-pixels")]:
            r = self.run("ahp-predict", [MODEL, c / "good.png"] + args, timeout=20)
            self.clean_error(f"D18 predict: {' '.join(args)} refused", r, [needle], code=2)

    def unreadable_directory(self, c):
        """D11: an unreadable subdirectory is a per-entry error while the rest is classified.
        Permissions do not bind root, so as root the case runs as `nobody` from a copy of the
        binary, the model and ONNX Runtime in a world-readable temporary directory."""
        import tempfile
        box = Path(tempfile.mkdtemp(prefix="ahp-d11-"))
        try:
            os.chmod(box, 0o755)
            shutil.copy(self.bin / "ahp-predict", box / "ahp-predict")
            shutil.copy(MODEL, box / "model.onnx")
            ort = Path(os.environ["ORT_DYLIB_PATH"]).resolve()
            shutil.copy(ort, box / ort.name)
            tree = box / "tree"
            (tree / "locked").mkdir(parents=True)
            shutil.copy(GOOD, tree / "good.png")
            shutil.copy(GOOD, tree / "locked" / "x.png")
            for p in [box / "ahp-predict", box / "model.onnx", box / ort.name, tree, tree / "good.png"]:
                os.chmod(p, 0o755)
            os.chmod(tree / "locked", 0)
            env = dict(os.environ, ORT_DYLIB_PATH=str(box / ort.name), HOME=str(box))

            def demote():
                self.limit()
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)

            p = subprocess.run([str(box / "ahp-predict"), str(box / "model.onnx"), str(tree), "--json"],
                               capture_output=True, timeout=60, preexec_fn=demote, env=env)
            lines = json_lines(p.stdout.decode(errors="replace"))
            locked = [l for l in lines if l.get("path", "").endswith("locked")]
            good = [l for l in lines if "top" in l]
            self.check("D11 predict: unreadable subdirectory is a per-entry error, the rest classified",
                       p.returncode == 1 and locked and "cannot read directory" in locked[0].get("error", "")
                       and len(good) == 1, f"exit {p.returncode}: {p.stdout[-300:]!r} {p.stderr[-300:]!r}")
        finally:
            os.chmod(box / "tree" / "locked", 0o755)
            shutil.rmtree(box, ignore_errors=True)

    def serve(self, c):
        # D5: absurd durations are refused at start, not panics.
        for args, needle in [(["--batch-window-ms", "1e300"], "batch-window-ms"),
                             (["--batch-window-ms", "1e22"], "batch-window-ms"),
                             (["--header-timeout-s", "NaN"], "header-timeout-s"),
                             (["--max-concurrency", "0"], "max-concurrency")]:
            r = self.run("ahp-serve", [MODEL, "--addr", "127.0.0.1:0"] + args, timeout=20)
            self.clean_error(f"D5 serve: {' '.join(args)} refused", r, [needle], code=2)
        r = self.run("ahp-serve", [c / "absurd.onnx", "--addr", "127.0.0.1:0"], timeout=20)
        self.clean_error("D14 serve: absurd ahp.resize refused at load", r, ["ahp.resize"], code=2)
        # 16 slots: the 32 stalled bodies hold them for two body timeouts at most.
        with Server(self, MODEL, ["--max-concurrency", "16", "--header-timeout-s", "1",
                                  "--body-timeout-s", "1", "--shutdown-grace-s", "1"]) as s:
            if not s.addr:
                return self.check("serve: starts", False, s.log())
            for name, case, needle in [("aspect.png", "D1", b"aspect ratio"), ("aspect_small.png", "D2", b"aspect ratio"),
                                       ("huge.png", "D2", b"over the limit")]:
                t = time.monotonic()
                status, body = s.post((c / name).read_bytes())
                self.check(f"{case} serve: {name} gets a 4xx naming the limit within seconds",
                           400 <= status < 500 and needle in body and time.monotonic() - t < 10,
                           f"{status} {body[:200]!r}")
                status, _ = s.post(GOOD.read_bytes())
                self.check(f"{case} serve: still serving after {name}", status == 200, str(status))
            for name in ["truncated.jpg", "garbage.png", "zero.png"]:
                status, body = s.post((c / name).read_bytes())
                self.check(f"D17 serve: {name} gets a 4xx", 400 <= status < 500, f"{status} {body[:200]!r}")
            # The KServe v2 route with hostile tensors: a 400 in the protocol's form, never a
            # panic or an allocation the shape asks for, and the server keeps serving.
            infer = f"/v2/models/{MODEL.stem}/infer"
            def v2(shape, data="[]", params=None, dtype="FP32"):
                fields = f'"name": "pixel_values", "datatype": "{dtype}", "shape": {json.dumps(shape)}'
                fields += f', "parameters": {json.dumps(params)}' if params is not None else f', "data": {data}'
                return '{"inputs": [{' + fields + '}]}'
            deep = "[" * 100000 + "]" * 100000
            header_too_long = {"Inference-Header-Content-Length": "99999999"}
            for name, body, headers in [
                ("a 10^18-image shape", v2([10**18, 3, 32, 32]), {}),
                ("a shape product that overflows", v2([2**62, 2**62, 32, 32]), {}),
                ("a negative batch", v2([-5, 3, 32, 32]), {}),
                ("100000-deep nested data", v2([1, 3, 32, 32], deep), {}),
                ("a binary_data_size of 2^63", v2([1, 3, 32, 32], params={"binary_data_size": 2**63}), {}),
                ("a header length past the body", v2([1, 3, 32, 32], params={"binary_data_size": 12}), header_too_long),
                ("a header length of -1", v2([1, 3, 32, 32]), {"Inference-Header-Content-Length": "-1"}),
                ("BYTES input", v2([1, 3, 32, 32], '["x"]', dtype="BYTES"), {}),
                ("invalid UTF-8", b"\xff\xfe{", {}),
            ]:
                raw = body.encode() if isinstance(body, str) else body
                status, answer = s.request("POST", infer, raw, headers=headers)
                self.check(f"D19 serve v2: {name} gets a 400 {{\"error\"}}",
                           status == 400 and answer.startswith(b'{"error"'), f"{status} {answer[:200]!r}")
                status, _ = s.post(GOOD.read_bytes())
                self.check(f"D19 serve v2: still serving after {name}", status == 200, str(status))
            # D3: slowloris (headers never finished) and stalled bodies hold no slot for long.
            stalled = []
            for i in range(64):
                k = socket.create_connection(s.addr)
                k.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                          b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
                stalled.append(k)
            t = time.monotonic()
            status, _ = s.post(GOOD.read_bytes(), timeout=15)
            self.check("D3 serve: 64 stalled clients do not block a classification",
                       status == 200 and time.monotonic() - t < 10, f"{status} after {time.monotonic() - t:.1f} s")
            time.sleep(1.5)
            cut = 0
            for k in stalled:
                k.settimeout(5)
                try:
                    data = k.recv(4096)
                    cut += 1 if (data == b"" or data.startswith(b"HTTP/1.1 408")) else 0
                except socket.timeout:
                    pass  # still open after 5 s more: not cut off
                except ConnectionResetError:
                    cut += 1
                k.close()
            self.check("D3 serve: stalled clients are cut off", cut == len(stalled), f"{cut} of {len(stalled)}")
            status, body = s.get("/healthz")
            self.check("serve: healthy after the hostile requests", status == 200, f"{status} {body!r}")
        # D4: SIGTERM completes within the grace period while a client is stalled mid-body (the
        # body timeout is far longer than the test: only the shutdown deadline can end it).
        with Server(self, MODEL, ["--body-timeout-s", "600", "--request-timeout-s", "600",
                                  "--shutdown-grace-s", "1"]) as s:
            if not s.addr:
                return self.check("serve: starts", False, s.log())
            k = socket.create_connection(s.addr)
            k.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
            t = time.monotonic()
            code = s.terminate(timeout=15)
            self.check("D4 serve: SIGTERM with a stalled client ends within the grace period",
                       code == 0 and time.monotonic() - t < 10, f"exit {code} after {time.monotonic() - t:.1f} s")
            k.close()
        with Server(self, c / "nan.onnx", []) as s:
            if not s.addr:
                return self.check("serve: starts with the NaN model", False, s.log())
            status, body = s.post(GOOD.read_bytes())
            self.check("D15 serve: NaN outputs are a 5xx, not a prediction",
                       status >= 500 and b"non-finite" in body, f"{status} {body[:200]!r}")
            tensor = {"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [0.0] * 3072}
            status, body = s.request("POST", "/v2/models/nan/infer", json.dumps({"inputs": [tensor]}).encode())
            self.check("D15 serve v2: NaN outputs are a 5xx {\"error\"}, not logits",
                       status >= 500 and b"non-finite" in body and body.startswith(b'{"error"'), f"{status} {body[:200]!r}")
            status, _ = s.get("/healthz")
            self.check("D15 serve: still serving after a NaN run", status == 200, str(status))

    def export(self, c, run_dir):
        if os.geteuid() == 0 and Path("/dev/full").exists():
            before = os.stat("/dev/full")
            r = self.run("ahp-export", ["--clip", CLIP, "--classes", "dog,cat", "/dev/full"], timeout=120)
            after = os.stat("/dev/full")
            self.clean_error("D6 export: a device node as the output is refused", r, ["not a regular file"])
            self.check("D6 export: the device node is untouched",
                       stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev, str(after))
        else:
            dev = Path("/dev/null")
            r = self.run("ahp-export", ["--clip", CLIP, "--classes", "dog,cat", dev], timeout=120)
            self.clean_error("D6 export: a device node as the output is refused", r, ["not a regular file"])
            self.check("D6 export: the device node is untouched", stat.S_ISCHR(os.stat(dev).st_mode))
        out = self.out / "export"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        dest = out / "model.onnx"
        dest.write_bytes(b"previous model")
        r = self.run("ahp-export", ["--run", run_dir, "--prune-heads", "100", dest], timeout=120)
        self.clean_error("D10 export: pruning every head of a block is refused", r, ["--prune-empty-blocks"])
        self.check("D10 export: the previous file is kept byte-identical", dest.read_bytes() == b"previous model")
        # D19: kill -9 mid-export leaves a temporary file; the next export removes it.
        p = subprocess.Popen([str(self.bin / "ahp-export"), "--run", str(run_dir), str(dest)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(out.glob(".model.onnx.*.tmp")):
            if p.poll() is not None:
                break
            time.sleep(0.005)
        p.kill()
        p.wait()
        left = list(out.glob(".model.onnx.*.tmp"))
        if not left:
            self.skip("D19 export: stale temporary file", "the export finished before it could be killed")
        r = self.run("ahp-export", ["--run", run_dir, dest], timeout=120)
        self.check("D19 export: the next export succeeds and removes the stale temporary file",
                   r[0] == 0 and not list(out.glob(".model.onnx.*.tmp")) and dest.stat().st_size > 1000,
                   r[2][-300:])

    def train(self, c):
        data = self.out / "data"
        shutil.rmtree(data, ignore_errors=True)
        r = self.run("ahp-data", ["synth", "--out", data, "--classes", "3", "--per-class", "10", "--size", "32"])
        self.check("data: synth", r[0] == 0, r[2][-300:])
        (data / "photo" / "circle" / "aspect.png").write_bytes((c / "aspect.png").read_bytes())
        (data / "photo" / "circle" / "fifo.png").unlink(missing_ok=True)
        os.mkfifo(data / "photo" / "circle" / "fifo.png")
        run = self.out / "run"
        shutil.rmtree(run, ignore_errors=True)
        base = ["--clip", CLIP, "--data", data, "--target-domain", "sketch", "--out", run,
                "--steps", "6", "--eval-every", "3", "--batch-size", "9", "--threads", "2", "--quiet"]
        r = self.run("ahp-train", base, timeout=300)
        self.check("D1/D12 train: a bomb and a FIFO among the images are skipped, the run completes",
                   r[0] == 0 and (run / "run.json").exists() and "panicked" not in r[2], r[2][-500:])
        run_id = json.loads((run / "run.json").read_text())["run_id"] if (run / "run.json").exists() else None
        time.sleep(1.1)  # run ids have a one-second resolution: a new one would differ
        r = self.run("ahp-train", base + ["--resume"], timeout=300)
        same = (run / "run.json").exists() and json.loads((run / "run.json").read_text())["run_id"] == run_id
        self.check("D20 train: --resume on a finished run keeps run.json's run_id", r[0] == 0 and same, r[2][-300:])
        # D7: a second training on a directory whose lock is held (by this process, standing in
        # for a running training: the same flock) is refused, and the run is left as it was.
        import fcntl
        before = (run / "run.json").read_bytes() if (run / "run.json").exists() else b""
        with open(run / ".lock", "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            r = self.run("ahp-train", base + ["--resume"], timeout=120)
        self.clean_error("D7 train: a second training on the same --out is refused", r, ["another training"])
        self.check("D7 train: the locked run is untouched", (run / "run.json").read_bytes() == before)
        # D8: changed data on resume.
        shutil.copy(data / "photo" / "circle" / "0.png", data / "photo" / "circle" / "extra.png")
        r = self.run("ahp-train", base + ["--resume"], timeout=120)
        self.clean_error("D8 train: --resume with a changed data set is refused", r, ["differs: data"])
        for args, needle in [(["--epochs", "0"], "--epochs"), (["--epochs", "NaN"], "--epochs"),
                             (["--rank", "0"], "--rank"), (["--rank", "100000"], "--rank")]:
            a = [str(x) for x in base]
            i = a.index("--steps")
            del a[i:i + 2]
            a[a.index(str(run))] = str(self.out / "run-bad")
            r = self.run("ahp-train", a + args, timeout=120)
            self.clean_error(f"D18 train: {' '.join(args)} refused", r, [needle])
        return run, data

    def data_and_classify(self, c, data):
        # D16: synth into a directory written before leaves no stale images.
        d = self.out / "synth"
        shutil.rmtree(d, ignore_errors=True)
        self.run("ahp-data", ["synth", "--out", d, "--classes", "2", "--per-class", "4", "--size", "16"])
        r = self.run("ahp-data", ["synth", "--out", d, "--classes", "2", "--per-class", "2", "--size", "16"])
        pngs = list(d.rglob("*.png"))
        self.check("D16 data: synth again leaves no stale images", r[0] == 0 and len(pngs) == 4 * 2 * 2,
                   f"{len(pngs)} images, {r[2][-200:]}")
        foreign = self.out / "foreign"
        shutil.rmtree(foreign, ignore_errors=True)
        foreign.mkdir()
        (foreign / "notes.txt").write_text("mine")
        r = self.run("ahp-data", ["synth", "--out", foreign, "--classes", "2", "--per-class", "2", "--size", "16"])
        self.clean_error("D16 data: synth into a foreign non-empty directory is refused", r, ["not empty"])
        r = self.run("ahp-data", ["preview", "--out", "/dev/null"])
        self.clean_error("D6 data: preview onto a device node is refused", r, ["not a regular file"])
        self.check("D6 data: /dev/null is still a device", stat.S_ISCHR(os.stat("/dev/null").st_mode))
        # ahp classify (candle) on the same hostile images.
        r = self.run("ahp", ["classify", "--clip", CLIP, "--classes", "dog,cat", "--json",
                             c / "aspect.png", c / "good.png"], timeout=60)
        good = [l for l in json_lines(r[1]) if "top" in l or "predictions" in l]
        self.check("D1 classify: aspect bomb is a per-image error, the good image classified",
                   r[0] not in (None, 0) and r[0] > 0 and "aspect ratio" in r[1] + r[2] and len(good) == 1,
                   f"exit {r[0]}: {r[1][-300:]!r} {r[2][-300:]!r}")
        for args, needle in [(["--top-k", "0"], "top-k"), (["--classes", ",cat"], "empty")]:
            a = ["classify", "--clip", CLIP, "--classes", "dog,cat", c / "good.png"] + args
            r = self.run("ahp", a, timeout=60)
            self.clean_error(f"D18 classify: {' '.join(map(str, args))} refused", r, [needle])


    def emoji(self):
        """D21: ahp-data emoji on hostile packages (a copy of the committed offline sample)."""
        base = self.out / "emoji"
        shutil.rmtree(base, ignore_errors=True)
        args = lambda pk, out, *more: ["emoji", "--out", base / out, "--unpacked", pk, "--quiet",
                                       "--classes", "dog", "--size", "32", *more]
        pk = base / "garbage"
        shutil.copytree(EMOJI_SAMPLE, pk)
        icons = pk / "iconify-json-emojione" / "package" / "icons.json"
        icons.write_bytes(os.urandom(2048))
        r = self.run("ahp-data", args(pk, "o1", "--designers", "emojione"))
        self.clean_error("D21 emoji: garbage icons.json is an error naming the file", r,
                         ["icons.json", "is not the expected JSON"])
        icons.unlink()
        os.mkfifo(icons)
        r = self.run("ahp-data", args(pk, "o2", "--designers", "emojione"), timeout=30)
        self.clean_error("D21 emoji: a FIFO as icons.json is refused, no hang", r, ["not a regular file"])
        pk = base / "bomb"
        shutil.copytree(EMOJI_SAMPLE, pk)
        svg = pk / "openmoji" / "package" / "color" / "svg" / "1F415.svg"
        svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
                       + "<g>" * 200_000 + "</g>" * 200_000 + "</svg>")
        r = self.run("ahp-data", args(pk, "o3", "--designers", "openmoji"), timeout=60)
        self.clean_error("D21 emoji: a 200,000-deep SVG is an error naming designer and class", r,
                         ["openmoji/dog"])
        svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="1e30" height="1e30">'
                       '<filter id="b"><feGaussianBlur stdDeviation="1e20"/></filter>'
                       '<rect width="1e30" height="1e30" filter="url(#b)"/></svg>')
        r = self.run("ahp-data", args(pk, "o4", "--designers", "openmoji"), timeout=60)
        self.check("D21 emoji: an astronomically large SVG renders into the fixed square or fails cleanly",
                   r[0] is not None and r[0] >= 0 and "panicked" not in r[1] + r[2]
                   and (r[0] == 0 or "openmoji/dog" in r[2]),
                   f"exit {r[0]}: {r[2][-300:]}")
        svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                       'viewBox="0 0 72 72"><image width="72" height="72" xlink:href="/dev/zero"/>'
                       '<image width="72" height="72" href="/etc/hostname"/></svg>')
        r = self.run("ahp-data", args(pk, "o6", "--designers", "openmoji"), timeout=30)
        self.check("D21 emoji: an SVG <image> naming a file (/dev/zero) is not read: no hang",
                   r[0] == 0 and "panicked" not in r[1] + r[2], f"exit {r[0]}: {r[2][-300:]}")
        cache = base / "cache"
        cache.mkdir()
        (cache / "iconify-json-emojione-1.2.3.tgz").write_bytes(os.urandom(4096))
        r = self.run("ahp-data", ["emoji", "--out", base / "o5", "--cache", cache, "--designers", "emojione",
                                  "--quiet"], env={**os.environ, "AHP_NPM": "/nonexistent/npm"})
        self.clean_error("D21 emoji: a corrupt cached tarball is not used; without npm the error says so", r,
                         ["@iconify-json/emojione@1.2.3", "cannot run `/nonexistent/npm`"])


    def pretrain_captions(self):
        """D22: ahp pretrain --captions on hostile image-caption trees (from the offline sample)."""
        base = self.out / "pretrain"
        shutil.rmtree(base, ignore_errors=True)
        good = base / "good"
        r = self.run("ahp-data", ["emoji", "--pretraining", "--out", good, "--unpacked", EMOJI_SAMPLE,
                                  "--size", "32", "--quiet"], timeout=120)
        if r[0] != 0:
            return self.check("D22 pretrain: the sample tree renders", False, r[2][-300:])

        def tree(name, edit):
            t = base / name
            shutil.copytree(good, t)
            edit(t)
            return t

        def pretrain(t, out, *more):
            return self.run("ahp", ["pretrain", "--captions", t, "--out", base / out, "--steps", "2",
                                    "--batch-size", "4", "--image-size", "32", "--vision", "32,1,2",
                                    "--text", "32,1,2", "--quiet", *more], timeout=120)

        def garbage(t):
            (t / "captions.jsonl").write_bytes(os.urandom(4096))

        def not_json(t):
            (t / "captions.jsonl").write_text("dog\tdog.png\n")

        def fifo(t):
            (t / "captions.jsonl").unlink()
            os.mkfifo(t / "captions.jsonl")

        def huge(t):
            with open(t / "captions.jsonl", "ab") as f:
                f.truncate(100 << 20)

        def escape(t):
            (t / "captions.jsonl").write_text('{"codepoint":"1f415","label":"dog","tags":[],'
                                              '"designers":["../../../etc"]}\n')

        def duplicate(t):
            with open(t / "captions.jsonl", "a") as f:
                f.write((t / "captions.jsonl").read_text().splitlines()[0] + "\n")

        def one_concept(t):
            (t / "captions.jsonl").write_text((t / "captions.jsonl").read_text().splitlines()[0] + "\n")

        def missing(t):
            (t / "noto" / "1f415.png").unlink()

        def bad_png(t):
            (t / "noto" / "1f415.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(512))

        cases = [
            ("random bytes as captions.jsonl are an error naming the file", garbage, ["captions.jsonl", "UTF-8"]),
            ("a line that is not JSON is an error naming the file and line", not_json, ["captions.jsonl", "line 1"]),
            ("a FIFO as captions.jsonl is refused, no hang", fifo, ["not a regular file"]),
            ("a 100 MB captions.jsonl is refused before it is read", huge, ["captions.jsonl", "larger than the limit"]),
            ("a codepoint on two lines is refused", duplicate, ["captions.jsonl", "second line"]),
            ("a one-emoji tree is refused (no negatives)", one_concept, ["two captions"]),
            ("a designer that leaves the tree is refused", escape, ["not a designer name"]),
            ("a missing drawing is an error naming it", missing, ["noto/1f415.png", "missing"]),
            ("a corrupt drawing is an error naming it", bad_png, ["noto/1f415.png"]),
        ]
        for i, (case, edit, needles) in enumerate(cases):
            r = pretrain(tree(f"t{i}", edit), f"o{i}")
            self.clean_error(f"D22 pretrain: {case}", r, needles)
        r = pretrain(good, "ob", "--benchmark", base / "no-such-dir")
        self.clean_error("D22 pretrain: a missing --benchmark is refused before training", r,
                         ["no-such-dir", "--benchmark"])
        state = base / "os" / "pretrain-state.safetensors"
        state.parent.mkdir(parents=True)
        state.write_bytes(os.urandom(4096))
        r = pretrain(good, "os")
        self.clean_error("D22 pretrain: a corrupt resumable state is an error naming it", r,
                         ["pretrain-state.safetensors"])


class Server:
    """ahp-serve on a free port, under the suite's memory limit."""

    def __init__(self, suite, model, args):
        self.suite, self.model, self.args = suite, model, args
        self.addr = None

    def __enter__(self):
        self.logf = open(self.suite.out / "serve.log", "w+b")
        self.p = subprocess.Popen([str(self.suite.bin / "ahp-serve"), str(self.model), "--addr", "127.0.0.1:0"]
                                  + self.args, stdout=subprocess.PIPE, stderr=self.logf,
                                  preexec_fn=self.suite.limit)
        import select
        ready, _, _ = select.select([self.p.stdout], [], [], 60)
        line = self.p.stdout.readline().decode() if ready else ""
        if line.startswith("listening on http://"):
            host, port = line.strip().rsplit("/", 1)[1].split(":")
            self.addr = (host, int(port))
        return self

    def log(self):
        self.logf.seek(0)
        return self.logf.read().decode(errors="replace")[-500:]

    def request(self, method, path, body=None, timeout=30, headers=None):
        conn = http.client.HTTPConnection(*self.addr, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        except OSError as e:
            return 0, str(e).encode()
        finally:
            conn.close()

    def post(self, body, timeout=30):
        return self.request("POST", "/v1/classify", body, timeout)

    def get(self, path):
        return self.request("GET", path)

    def terminate(self, timeout):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.p.returncode is not None and self.p.returncode < 0 and self.p.returncode != -signal.SIGKILL:
            self.suite.check("serve: no abort", False, f"signal {-self.p.returncode}: {self.log()}")
        self.logf.close()


def gray_png(width, height):
    """A valid 8-bit gray PNG of `width x height` black pixels, compressed as far as zlib goes."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts, rows_per_part = [], max(1, (1 << 20) // len(row))
    for start in range(0, height, rows_per_part):
        parts.append(z.compress(row * min(rows_per_part, height - start)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def json_lines(text):
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mem-gib", type=float, default=4.0)
    a = ap.parse_args()
    suite = Suite(a.bin, a.out, a.mem_gib)
    suite.out.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    c = suite.corpus()
    suite.models(c)
    suite.predict(c)
    suite.serve(c)
    run, data = suite.train(c)
    suite.export(c, run)
    suite.data_and_classify(c, data)
    suite.emoji()
    suite.pretrain_captions()
    print(f"robustness: {suite.passed} passed, {len(suite.failed)} failed, {len(suite.skipped)} skipped "
          f"({time.monotonic() - t:.0f} s, memory limit {a.mem_gib:g} GiB)")
    for f in suite.failed:
        print(f"  failed: {f}")
    sys.exit(1 if suite.failed else 0)


if __name__ == "__main__":
    main()
