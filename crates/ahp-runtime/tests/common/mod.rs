//! Shared helpers of the integration tests.
//!
//! ONNX Runtime must be loadable (ORT_DYLIB_PATH, or `scripts/fetch-onnxruntime.sh`'s default
//! directory): when it is not, tests fail with the loader's message, they do not skip.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ahp_runtime::Classifier;

#[cfg(feature = "serve")]
pub mod test_server;

/// The six classes of the fixture models, in logit order.
pub const CLASSES: [&str; 6] = ["dog", "cat", "car", "tree", "house", "star"];

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// The committed ONNX export of `clip-tiny-a`.
pub fn model_a() -> PathBuf {
    fixture("onnx/clip-tiny-a.onnx")
}

/// The committed ONNX export of `clip-tiny-b`.
pub fn model_b() -> PathBuf {
    fixture("onnx/clip-tiny-b.onnx")
}

/// The parity images, sorted by name (the order of the reference tensors).
pub fn images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture("images"))
        .expect("tests/fixtures/images")
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    assert_eq!(v.len(), 7, "expected the 7 parity images");
    v
}

/// Loads a model on the CPU, failing the test with the full message (including how to get ONNX
/// Runtime) when it cannot.
pub fn load(path: &Path) -> Classifier {
    match Classifier::builder()
        .device(ahp_runtime::ExecutionProvider::Cpu)
        .intra_threads(2)
        .commit_from_file(path)
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot load {} with ONNX Runtime: {e}\n(ORT_DYLIB_PATH={:?})",
            path.display(),
            std::env::var("ORT_DYLIB_PATH").ok()
        ),
    }
}

/// `clip-tiny-a`, loaded once per test binary.
pub fn classifier_a() -> Arc<Classifier> {
    static C: OnceLock<Arc<Classifier>> = OnceLock::new();
    Arc::clone(C.get_or_init(|| Arc::new(load(&model_a()))))
}

/// A tensor of `reference.safetensors` of a fixture model: `(shape, values)`.
pub fn reference(model: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = fixture(&format!("models/{model}/reference.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} dtype");
    let values = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), values)
}

/// Max absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f32::max)
}

/// A response of [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON (panics with the body text when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal blocking HTTP/1.1 client (one request per connection, `Connection: close`), enough
/// for the loopback tests and without a client dependency.
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // The server may answer (e.g. 413) and close before reading all of a large body.
    let write_result = stream.write_all(body);
    let mut raw = Vec::new();
    let read_result = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        write_result?;
        read_result?;
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..nl])
                    .map_err(|_| bad("bad chunk size"))?
                    .trim(),
                16,
            )
            .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A `multipart/form-data` body with one file field; returns `(content type, body)`.
pub fn multipart(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ahpTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A PNG of `width x height` black gray pixels, as a hostile client makes one: tiny on the
/// wire, huge when decoded (1 x 10,000,000 is the 19 KB aspect-ratio bomb).
pub fn declared_png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    let pixels = vec![0u8; width as usize * height as usize];
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::L8)
    .expect("encode");
    png
}
