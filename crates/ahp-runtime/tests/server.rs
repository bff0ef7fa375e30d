//! `ahp-serve` over loopback: routes, JSON errors for bad input (and the server keeps serving),
//! 200 concurrent requests, graceful shutdown (in-process and SIGTERM on the binary).

#![cfg(feature = "serve")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ahp_runtime::server::{self, ServerConfig};
use common::test_server::TestServer;
use common::*;

fn image_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}"))).expect("image")
}

fn assert_classifies(s: &TestServer) {
    let r = s.post("/v1/classify?top_k=2", &[], &image_bytes("rgb_square.png"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["top"].as_array().expect("top").len(), 2);
}

#[test]
fn routes_and_classification() {
    let s = TestServer::start(ServerConfig::default());
    let h = s.get("/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");

    let m = s.get("/v1/model").json();
    assert_eq!(m["labels"], serde_json::json!(CLASSES));
    assert_eq!(m["execution_provider"], "cpu");
    assert_eq!(m["image_size"], serde_json::json!([32, 32]));
    assert!(m["metadata"]["ahp.resize"].is_string(), "{m}");

    let c = classifier_a();
    for path in images() {
        let bytes = std::fs::read(&path).expect("read");
        let image = ahp_runtime::preprocess::decode_image(&bytes, "x").expect("decode");
        let expected = c.classify(&image, 5).expect("classify");
        let r = s.post(
            "/v1/classify",
            &[("Content-Type", "application/octet-stream")],
            &bytes,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("content-type").unwrap_or("").contains("json"));
        let j = r.json();
        let top = j["top"].as_array().expect("top");
        assert_eq!(top.len(), 5, "default top_k");
        for (got, (label, prob)) in top.iter().zip(&expected) {
            assert_eq!(got["label"], label.as_str());
            assert!((got["prob"].as_f64().expect("prob") as f32 - prob).abs() < 1e-5);
        }
        assert!(j["ms"].as_f64().expect("ms") >= 0.0);
        assert!(j["batch"].as_u64().expect("batch") >= 1);

        // The same image as a multipart upload.
        let (ct, body) = multipart("image", "x.png", &bytes);
        let r = s.post("/v1/classify?top_k=6", &[("Content-Type", &ct)], &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let top = r.json()["top"].as_array().expect("top").clone();
        assert_eq!(top.len(), 6);
        assert_eq!(top[0]["label"], expected[0].0.as_str());
    }
    let stats = s.get("/v1/stats").json();
    assert_eq!(stats["requests"], 14);
    assert_eq!(stats["errors"], 0);
}

#[test]
fn bad_requests_get_json_4xx_and_the_server_keeps_serving() {
    let s = TestServer::start(ServerConfig {
        max_body_bytes: 64 << 10,
        ..ServerConfig::default()
    });
    let png = image_bytes("rgb_square.png");
    let bad = |name: &str| std::fs::read(fixture(&format!("bad/{name}"))).expect("bad file");
    let (mp_ct, mp_body) = multipart("image", "x.png", &png);
    let no_file = b"--b0undary\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b0undary--\r\n";
    let oversized = vec![7u8; 200 << 10];
    let raw = |body: Vec<u8>| (None, body);
    let typed = |ct: &str, body: Vec<u8>| (Some(ct.to_string()), body);
    // (what, query, (content type, body), status, code)
    let cases = [
        ("empty body", "", raw(vec![]), 400, "empty_body"),
        ("empty file", "", raw(bad("empty.png")), 400, "empty_body"),
        (
            "not an image",
            "",
            raw(bad("not_an_image.png")),
            422,
            "invalid_image",
        ),
        (
            "truncated",
            "",
            raw(bad("truncated.png")),
            422,
            "invalid_image",
        ),
        (
            "random bytes",
            "",
            raw(vec![0xff; 1000]),
            422,
            "invalid_image",
        ),
        (
            "oversized",
            "",
            raw(oversized.clone()),
            413,
            "payload_too_large",
        ),
        (
            "oversized multipart",
            "",
            typed(&mp_ct, multipart("image", "big.png", &oversized).1),
            413,
            "payload_too_large",
        ),
        (
            "top_k=0",
            "?top_k=0",
            raw(png.clone()),
            400,
            "invalid_top_k",
        ),
        (
            "top_k=abc",
            "?top_k=abc",
            raw(png.clone()),
            400,
            "invalid_top_k",
        ),
        (
            "top_k=7",
            "?top_k=7",
            raw(png.clone()),
            400,
            "invalid_top_k",
        ),
        (
            "malformed multipart",
            "",
            typed(&mp_ct, b"this is not a multipart body".to_vec()),
            400,
            "malformed_multipart",
        ),
        (
            "multipart without boundary",
            "",
            typed("multipart/form-data", mp_body.clone()),
            400,
            "malformed_multipart",
        ),
        (
            "multipart without a file",
            "",
            typed("multipart/form-data; boundary=b0undary", no_file.to_vec()),
            400,
            "missing_image",
        ),
    ];
    for (what, query, (content_type, body), status, code) in cases {
        let headers: Vec<(&str, &str)> = content_type
            .as_deref()
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        let r = s.post(&format!("/v1/classify{query}"), &headers, &body);
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["code"], code, "{what}: {j}");
        assert!(
            j["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {j}"
        );
        // Still serving.
        assert_eq!(s.get("/healthz").status, 200, "after {what}");
        assert_classifies(&s);
    }
    let r = s.post("/v1/nothing", &[], &png);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");
    // under /v2, the protocol's error form (no code)
    let r = s.post("/v2/classify", &[], &png);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string() && r.json().get("code").is_none());
    let r = s.get("/v1/classify");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], "method_not_allowed");

    // Malformed HTTP: hyper answers 400 (not JSON: no request to route) and the server goes on.
    let mut raw = TcpStream::connect(s.addr).expect("connect");
    raw.write_all(b"THIS IS NOT HTTP\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_classifies(&s);
}

#[test]
fn two_hundred_concurrent_requests() {
    let s = TestServer::start(ServerConfig {
        max_concurrency: 32,
        ..ServerConfig::default()
    });
    let payloads: Vec<Vec<u8>> = images()
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let start = Instant::now();
    let barrier = std::sync::Barrier::new(200);
    let results: Vec<Result<u16, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let body = &payloads[i % payloads.len()];
                let barrier = &barrier;
                let addr = s.addr;
                scope.spawn(move || {
                    barrier.wait();
                    match http(addr, "POST", "/v1/classify?top_k=1", &[], body) {
                        Ok(r) if r.status == 200 => Ok(200),
                        Ok(r) => Err(format!(
                            "{}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = start.elapsed();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "{} errors: {:?}", errors.len(), errors);
    assert!(
        elapsed < Duration::from_secs(60),
        "200 requests took {elapsed:?}"
    );
    let stats = s.get("/v1/stats").json();
    eprintln!("200 concurrent requests in {elapsed:?}; server stats: {stats}");
    assert_eq!(stats["requests"], 200);
    assert_eq!(stats["errors"], 0);
    assert_eq!(stats["images"], 200);
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut s = TestServer::start(ServerConfig::default());
    let png = image_bytes("rgb_square.png");
    // Send the headers and half of the body, then ask the server to stop.
    let mut stream = TcpStream::connect(s.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        png.len()
    )
    .expect("headers");
    let half = png.len() / 2;
    stream.write_all(&png[..half]).expect("first half");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    s.signal_shutdown();
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&png[half..]).expect("second half");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let took = s.stop();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert!(
        TcpStream::connect(s.addr).is_err(),
        "still accepting connections after shutdown"
    );
}

#[test]
#[cfg(unix)]
fn sigterm_stops_the_binary() {
    let model = model_a();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ahp-serve"))
        .args([model.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ahp-serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("listening line");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    let r = http(addr, "GET", "/healthz", &[], b"").expect("healthz");
    assert_eq!(r.status, 200);
    let r = http(addr, "POST", "/v1/classify", &[], &image_bytes("gray.png")).expect("classify");
    assert_eq!(r.status, 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ahp-serve did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(exit.success(), "exit {exit:?}; stderr:\n{stderr}");
    assert!(stderr.contains("shut down"), "{stderr}");
}

#[test]
fn bombs_are_refused_quickly_and_the_server_keeps_serving() {
    let s = TestServer::start(ServerConfig::default());
    // D1: 1 x 10,000,000 (an aspect-ratio bomb, 19 KB on the wire); D2: 1 x 100,000.
    for (w, h) in [(1, 10_000_000), (1, 100_000), (7000, 7000)] {
        let body = declared_png(w, h);
        let t = Instant::now();
        let r = s.post("/v1/classify", &[], &body);
        assert_eq!(
            r.status,
            422,
            "{w}x{h}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains("over the limit"), "{text}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{w}x{h} took {:?}",
            t.elapsed()
        );
        assert_classifies(&s);
    }
}

#[test]
fn stalled_clients_are_cut_off_and_do_not_hold_the_slots() {
    let s = TestServer::start(ServerConfig {
        max_concurrency: 2,
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    // D3: clients that send half their headers, and clients that send a body's first byte.
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        let head = if i % 2 == 0 {
            "POST /v1/classify HTTP/1.1\r\nHost: x\r\n".to_string()
        } else {
            "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx".to_string()
        };
        c.write_all(head.as_bytes()).expect("write");
        stalled.push(c);
    }
    let t = Instant::now();
    // The slots free within the body timeout; the server answers a real client meanwhile.
    assert_classifies(&s);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for (i, mut c) in stalled.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        if i % 2 == 1 {
            assert!(
                answer.starts_with("HTTP/1.1 408"),
                "stalled body: {answer:?}"
            );
        }
        // Stalled headers: the connection is closed (hyper may or may not answer 408 first).
    }
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn shutdown_has_a_deadline_with_a_stalled_client() {
    let mut s = TestServer::start(ServerConfig {
        body_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    // D4: a client stalled mid-body would keep a graceful shutdown waiting forever.
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let took = s.stop();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn out_of_range_settings_are_refused() {
    // D5: a batch window of 1e22 s once started and then panicked in the batcher.
    for (config, field) in [
        (
            ServerConfig {
                batch_window: Duration::from_secs(1 << 40),
                ..ServerConfig::default()
            },
            "batch_window",
        ),
        (
            ServerConfig {
                header_timeout: Duration::ZERO,
                ..ServerConfig::default()
            },
            "header_timeout",
        ),
        (
            ServerConfig {
                decode_concurrency: 0,
                ..ServerConfig::default()
            },
            "decode_concurrency",
        ),
    ] {
        let err = config.validate().expect_err(field);
        assert!(err.contains(field), "{err}");
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let config = ServerConfig {
            batch_window: Duration::from_secs(3600),
            ..ServerConfig::default()
        };
        server::serve(listener, classifier_a(), config, std::future::pending()).await
    });
    let err = err.expect_err("refused at start");
    assert!(err.to_string().contains("batch_window"), "{err}");
}

#[test]
fn absurd_flags_of_the_binary_are_clear_errors() {
    // D5 on the command line: `--batch-window-ms 1e300` panicked in Duration::from_secs_f64.
    for (flag, value) in [
        ("--batch-window-ms", "1e300"),
        ("--batch-window-ms", "NaN"),
        ("--batch-window-ms", "-1"),
        ("--header-timeout-s", "0"),
        ("--max-concurrency", "0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ahp-serve"))
            .arg(model_a())
            .arg(format!("{flag}={value}"))
            .output()
            .expect("run ahp-serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
