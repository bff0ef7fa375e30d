//! The KServe v2 routes and `/metrics` of `ahp-serve` over loopback, byte by byte (the official
//! `tritonclient` is exercised end to end by `crates/ahp-cli/tests/serve_v2.rs`).

#![cfg(feature = "serve")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ahp_runtime::server::ServerConfig;
use common::test_server::TestServer;
use common::*;
use serde_json::{json, Value};

const NAME: &str = "tiny_a";

fn start() -> TestServer {
    start_with(std::time::Duration::ZERO)
}

fn start_with(batch_window: std::time::Duration) -> TestServer {
    TestServer::start(ServerConfig {
        model_name: NAME.to_string(),
        max_batch: 4,
        batch_window,
        ..ServerConfig::default()
    })
}

/// Preprocessed pixels of the first `n` parity images.
fn pixels(n: usize) -> Vec<f32> {
    let c = classifier_a();
    images()
        .iter()
        .take(n)
        .flat_map(|p| {
            let image = ahp_runtime::preprocess::load_image(p).expect("image");
            c.preprocess(&image).expect("preprocess")
        })
        .collect()
}

fn json_request(n: usize, data: &[f32]) -> Value {
    json!({
        "id": "req-1",
        "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [n, 3, 32, 32], "data": data}],
    })
}

/// `(header, binary)` of a binary-extension request with binary outputs.
fn binary_request(n: usize, data: &[f32]) -> (String, Vec<u8>) {
    let header = json!({
        "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [n, 3, 32, 32],
                    "parameters": {"binary_data_size": data.len() * 4}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for v in data {
        body.extend_from_slice(&v.to_le_bytes());
    }
    (header.len().to_string(), body)
}

fn infer_path() -> String {
    format!("/v2/models/{NAME}/infer")
}

#[test]
fn metadata_health_and_index() {
    let s = start();
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/tiny_a/ready",
    ] {
        assert_eq!(s.get(path).status, 200, "{path}");
    }
    assert_eq!(s.get("/v2/models/tiny_a/versions/1/ready").status, 200);
    let server = s.get("/v2").json();
    assert_eq!(server["name"], "ahp-serve");
    assert!(server["extensions"]
        .as_array()
        .expect("extensions")
        .contains(&json!("binary_tensor_data")));
    let c = classifier_a();
    let meta = s.get("/v2/models/tiny_a").json();
    assert_eq!(meta["name"], NAME);
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["inputs"],
        json!([{"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, 32, 32]}])
    );
    assert_eq!(
        meta["outputs"][0],
        json!({"name": "logits", "datatype": "FP32", "shape": [-1, 6]})
    );
    assert_eq!(meta["outputs"][1]["name"], "image_embeds");
    assert_eq!(
        meta["outputs"][1]["shape"][1],
        json!(c.image_embed_dim().expect("embed dim"))
    );
    assert_eq!(s.get("/v2/models/tiny_a/versions/1").json(), meta);
    let config = s.get("/v2/models/tiny_a/config").json();
    assert_eq!(config["max_batch_size"], 4);
    assert_eq!(config["input"][0]["dims"], json!([3, 32, 32]));
    assert_eq!(config["output"][0]["dims"], json!([6]));
    let index = s.post("/v2/repository/index", &[], b"");
    assert_eq!(
        index.json(),
        json!([{"name": NAME, "version": "1", "state": "READY"}])
    );
    let index = s.post("/v2/repository/index", &[], br#"{"ready": true}"#);
    assert_eq!(index.json().as_array().map(Vec::len), Some(1));
}

#[test]
fn json_and_binary_inference_equal_the_classifier() {
    let s = start();
    let c = classifier_a();
    let n = 3;
    let px = pixels(n);
    let want = c.run(&px, n).expect("run");
    let r = s.post(
        &infer_path(),
        &[("Content-Type", "application/json")],
        json_request(n, &px).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["id"], "req-1");
    assert_eq!(j["model_name"], NAME);
    assert_eq!(j["outputs"][0]["shape"], json!([3, 6]));
    let logits: Vec<f32> = serde_json::from_value(j["outputs"][0]["data"].clone()).expect("data");
    assert_eq!(max_abs_diff(&logits, &want.logits.concat()), 0.0);

    let (len, body) = binary_request(n, &px);
    let r = s.post(
        &infer_path(),
        &[("Inference-Header-Content-Length", &len)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let header_len: usize = r
        .header("inference-header-content-length")
        .expect("header length")
        .parse()
        .expect("number");
    let header: Value = serde_json::from_slice(&r.body[..header_len]).expect("header JSON");
    let mut rest = &r.body[header_len..];
    for (o, want) in header["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .zip([&want.logits, want.image_embeds.as_ref().expect("embeds")])
    {
        let size = o["parameters"]["binary_data_size"].as_u64().expect("size") as usize;
        let got: Vec<f32> = rest[..size]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        rest = &rest[size..];
        assert_eq!(max_abs_diff(&got, &want.concat()), 0.0, "{}", o["name"]);
    }
    assert!(rest.is_empty());
}

#[test]
fn errors_are_in_the_protocol_form() {
    let s = start();
    let px = pixels(1);
    let gzip = [("Content-Encoding", "gzip")];
    let too_many = json_request(5, &vec![0.0; 5 * 3 * 32 * 32]).to_string();
    let mut nan_px = px.clone();
    nan_px[100] = f32::NAN;
    let (nan_len, nan_request) = binary_request(1, &nan_px);
    let nan_headers = [("Inference-Header-Content-Length", nan_len.as_str())];
    let mut twice = json_request(1, &px);
    twice["outputs"] = json!([{"name": "logits"}, {"name": "logits"}]);
    let twice = twice.to_string();
    // (method, path, headers, body, status, what the message says)
    type Case<'a> = (
        &'a str,
        String,
        &'a [(&'a str, &'a str)],
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            infer_path(),
            &[],
            b"{".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            infer_path(),
            &[],
            json_request(1, &px[..10]).to_string().into_bytes(),
            400,
            "10 values were sent",
        ),
        (
            "POST",
            infer_path(),
            &[],
            too_many.into_bytes(),
            400,
            "batch size 5",
        ),
        (
            "POST",
            infer_path(),
            &gzip,
            json_request(1, &px).to_string().into_bytes(),
            400,
            "Content-Encoding",
        ),
        (
            "POST",
            "/v2/models/other/infer".into(),
            &[],
            json_request(1, &px).to_string().into_bytes(),
            404,
            "unknown model `other`",
        ),
        (
            "POST",
            format!("/v2/models/{NAME}/versions/2/infer"),
            &[],
            json_request(1, &px).to_string().into_bytes(),
            404,
            "no version `2`",
        ),
        ("GET", infer_path(), &[], vec![], 405, "not allowed"),
        (
            "POST",
            infer_path(),
            &nan_headers,
            nan_request,
            400,
            "must be finite",
        ),
        (
            "POST",
            infer_path(),
            &[],
            twice.into_bytes(),
            400,
            "requested twice",
        ),
        (
            "GET",
            "/v2/models/%FF/ready".into(),
            &[],
            vec![],
            400,
            "bad model path",
        ),
        ("GET", "/v2/nothing".into(), &[], vec![], 404, "no route"),
        (
            "GET",
            "/v2/models/other".into(),
            &[],
            vec![],
            404,
            "unknown model",
        ),
    ];
    for (method, path, headers, body, status, needle) in cases {
        let r = http(s.addr, method, &path, headers, &body).expect("request");
        assert_eq!(
            r.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        let message = j["error"].as_str().unwrap_or_else(|| panic!("{path}: {j}"));
        assert!(message.contains(needle), "{path}: {message}");
        assert!(
            j.get("code").is_none(),
            "v2 errors are {{\"error\": ...}} only: {j}"
        );
    }
    // and the server keeps serving
    let r = s.post(
        &infer_path(),
        &[],
        json_request(1, &px).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn v1_and_v2_requests_share_the_batcher_and_are_counted() {
    // a window long enough for the 12 concurrent requests to meet in the batcher
    let s = start_with(std::time::Duration::from_millis(100));
    let px = pixels(2);
    let png = std::fs::read(fixture("images/rgb_square.png")).expect("png");
    std::thread::scope(|scope| {
        for i in 0..12 {
            let (s, px, png) = (&s, &px, &png);
            scope.spawn(move || {
                let r = if i % 2 == 0 {
                    s.post(
                        &infer_path(),
                        &[],
                        json_request(2, px).to_string().as_bytes(),
                    )
                } else {
                    s.post("/v1/classify", &[], png)
                };
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            });
        }
    });
    assert_eq!(s.get("/nowhere").status, 404);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .expect("type")
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).expect("utf-8");
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no `{line}` in\n{text}"))
    };
    assert_eq!(value("ahp_http_requests_total{route=\"/v2/models/{name}/infer\",method=\"POST\",status=\"200\"}"), 6.0);
    assert_eq!(
        value("ahp_http_requests_total{route=\"/v1/classify\",method=\"POST\",status=\"200\"}"),
        6.0
    );
    assert_eq!(
        value("ahp_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"),
        1.0
    );
    // 6 v2 requests of 2 images and 6 v1 requests of 1: 18 images, in at most 4 per run.
    assert_eq!(value("ahp_inference_images_total"), 18.0);
    let runs = value("ahp_inference_runs_total");
    assert!(
        (5.0..12.0).contains(&runs),
        "{runs} runs: v1 and v2 jobs were not batched"
    );
    assert_eq!(value("ahp_inference_batch_size_count"), runs);
    assert_eq!(
        value("ahp_inference_batch_size_bucket{le=\"4\"}"),
        runs,
        "no run over max_batch 4"
    );
    assert_eq!(value("ahp_inference_queue_duration_seconds_count"), 12.0);
    assert_eq!(
        value("ahp_model_ready{model=\"tiny_a\",version=\"1\"}"),
        1.0
    );
    assert_eq!(
        value("ahp_http_requests_in_flight"),
        1.0,
        "only the /metrics request itself"
    );
    for family in [
        "ahp_http_request_duration_seconds",
        "ahp_inference_run_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} histogram")),
            "{family}"
        );
    }
}
