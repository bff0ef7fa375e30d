//! A KServe v2 load generator (not a test): the same closed-loop load, binary tensors in and
//! out, against one or more v2 servers, alternating them round by round; prints every run, then
//! medians over rounds and the throughput ratio of the first target to each other one.
//!
//! ```sh
//! cargo bench -p ahp-runtime --bench v2_load -- \
//!     --target ahp-serve=http://127.0.0.1:8080/v2/models/m \
//!     --target triton=http://127.0.0.1:8000/v2/models/m \
//!     --shape 3,64,64 --concurrency 1,4,16 --rounds 5 --seconds 5
//! ```
//!
//! Each of `concurrency` connections (HTTP/1.1 keep-alive, one thread each) sends one image
//! (`pixel_values` FP32 `[1, shape]`, fixed pseudo-random pixels, `binary_data_size`) and asks
//! for `logits` as binary, then sends the next as soon as the answer is read. Latency is the time
//! from writing the request to reading the whole answer. A run lasts `--seconds` after a
//! `--warmup` (default 1 s) that is not counted; a non-200 answer stops the benchmark.
//! `scripts/serve-vs-triton.sh` starts ahp-serve and Triton on the same model and runs this.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Target {
    name: String,
    host: String,
    infer_path: String,
}

struct Args {
    targets: Vec<Target>,
    shape: Vec<usize>,
    concurrency: Vec<usize>,
    rounds: usize,
    seconds: f64,
    warmup: f64,
}

fn usage(message: &str) -> ! {
    eprintln!(
        "v2_load: {message}\nusage: v2_load --target NAME=http://HOST:PORT/v2/models/MODEL [--target ...] \
         [--shape 3,64,64] [--concurrency 1,4,16] [--rounds 5] [--seconds 5] [--warmup 1]"
    );
    std::process::exit(2)
}

fn list(value: &str, flag: &str) -> Vec<usize> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: {v:?} is not a count")))
        })
        .collect()
}

fn target(value: &str) -> Target {
    let (name, url) = value
        .split_once('=')
        .unwrap_or_else(|| usage(&format!("--target {value:?}: expected NAME=URL")));
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| usage(&format!("--target {url:?}: only http:// URLs")));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Target {
        name: name.to_string(),
        host: host.to_string(),
        infer_path: format!("/{}/infer", path.trim_end_matches('/')),
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        targets: Vec::new(),
        shape: vec![3, 64, 64],
        concurrency: vec![1, 4, 16],
        rounds: 5,
        seconds: 5.0,
        warmup: 1.0,
    };
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--target" => args.targets.push(target(&value())),
            "--shape" => args.shape = list(&value(), "--shape"),
            "--concurrency" => args.concurrency = list(&value(), "--concurrency"),
            "--rounds" => args.rounds = list(&value(), "--rounds")[0],
            "--seconds" => {
                args.seconds = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--seconds: a number"))
            }
            "--warmup" => {
                args.warmup = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--warmup: a number"))
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if args.targets.is_empty() {
        usage("give at least one --target");
    }
    if args.rounds == 0
        || args.concurrency.contains(&0)
        || args.seconds.is_nan()
        || args.seconds <= 0.0
    {
        usage("--rounds, --concurrency and --seconds must be positive");
    }
    args
}

/// The request body (JSON header + binary pixels) and its header length.
fn request_body(shape: &[usize]) -> (Vec<u8>, usize) {
    let count: usize = shape.iter().product();
    let mut full_shape = vec![1];
    full_shape.extend_from_slice(shape);
    let header = serde_json::json!({
        "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": full_shape,
                    "parameters": {"binary_data_size": count * 4}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let v = (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0;
        body.extend_from_slice(&v.to_le_bytes());
    }
    (body, header.len())
}

/// One keep-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
}

impl Connection {
    fn open(t: &Target, body: &[u8], header_len: usize) -> std::io::Result<Self> {
        let stream = TcpStream::connect(&t.host)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
             Inference-Header-Content-Length: {header_len}\r\nContent-Length: {}\r\n\r\n",
            t.infer_path,
            t.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            request,
        })
    }

    /// Sends the request and reads the whole answer; errors on anything but a binary 200.
    fn round_trip(&mut self) -> Result<(), String> {
        self.writer
            .write_all(&self.request)
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let status = line.split(' ').nth(1).unwrap_or("").to_string();
        let (mut length, mut binary) = (None, false);
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse::<usize>().ok(),
                    "inference-header-content-length" => binary = true,
                    _ => {}
                }
            }
        }
        let length = length.ok_or("answer without Content-Length")?;
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        if status != "200" || !binary {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    }
}

/// Requests per second and the sorted latencies (ms) of one run.
fn run(
    t: &Target,
    concurrency: usize,
    args: &Args,
    body: &[u8],
    header_len: usize,
) -> (f64, Vec<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut conn = Connection::open(t, body, header_len)
                .unwrap_or_else(|e| panic!("{}: cannot connect to {}: {e}", t.name, t.host));
            let (stop, counting) = (Arc::clone(&stop), Arc::clone(&counting));
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let start = Instant::now();
                    if let Err(e) = conn.round_trip() {
                        panic!("request failed: {e}");
                    }
                    // only answers completed inside the measured interval count
                    if counting.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                        latencies.push(start.elapsed().as_secs_f64() * 1e3);
                    }
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    counting.store(true, Ordering::SeqCst);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_else(|_| std::process::exit(1)))
        .collect();
    all.sort_by(f64::total_cmp);
    (all.len() as f64 / elapsed, all)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args = parse_args();
    let (body, header_len) = request_body(&args.shape);
    // results[target][concurrency] = per-round (req/s, p50, p99)
    let mut results = vec![vec![Vec::new(); args.concurrency.len()]; args.targets.len()];
    for round in 0..args.rounds {
        for (ci, &c) in args.concurrency.iter().enumerate() {
            for k in 0..args.targets.len() {
                // rotate the order every round: each target goes first as often as the others
                let ti = (k + round) % args.targets.len();
                let t = &args.targets[ti];
                let (rps, lat) = run(t, c, &args, &body, header_len);
                let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
                println!(
                    "round {} {:>12} concurrency {c:>3}: {rps:8.1} req/s  p50 {p50:7.2} ms  p99 {p99:7.2} ms",
                    round + 1,
                    t.name
                );
                results[ti][ci].push((rps, p50, p99));
            }
        }
    }
    print_table(&args, &results);
}

/// `(req/s, p50 ms, p99 ms)` of one run.
type Run = (f64, f64, f64);

/// `results[target][concurrency]`: the runs of every round.
fn print_table(args: &Args, results: &[Vec<Vec<Run>>]) {
    println!(
        "\nmedians of {} rounds of {} s ({} image FP32 [1, {}], binary tensors):",
        args.rounds,
        args.seconds,
        1,
        args.shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut header = "| concurrency |".to_string();
    for t in &args.targets {
        header.push_str(&format!(
            " {} req/s | {} p50 ms | {} p99 ms |",
            t.name, t.name, t.name
        ));
    }
    for t in &args.targets[1..] {
        header.push_str(&format!(" {} / {} |", args.targets[0].name, t.name));
    }
    println!("{header}");
    println!(
        "|{}",
        "---|".repeat(1 + 3 * args.targets.len() + args.targets.len() - 1)
    );
    for (ci, c) in args.concurrency.iter().enumerate() {
        let mut row = format!("| {c} |");
        for r in results {
            let runs = &r[ci];
            row.push_str(&format!(
                " {:.1} | {:.2} | {:.2} |",
                median(runs.iter().map(|x| x.0).collect()),
                median(runs.iter().map(|x| x.1).collect()),
                median(runs.iter().map(|x| x.2).collect())
            ));
        }
        for r in &results[1..] {
            let ratios: Vec<f64> = results[0][ci]
                .iter()
                .zip(&r[ci])
                .map(|(a, b)| a.0 / b.0)
                .collect();
            row.push_str(&format!(" {:.2}x |", median(ratios)));
        }
        println!("{row}");
    }
}
