//! An in-process `ahp-serve` on a loopback port for the server tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ahp_runtime::server::{self, ServerConfig};

use super::{classifier_a, http, HttpResponse};

/// A server running on its own tokio runtime; shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    rt: tokio::runtime::Runtime,
}

impl TestServer {
    /// Serves `clip-tiny-a` with `config` on a free loopback port.
    pub fn start(config: ServerConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = rt.spawn(server::serve(listener, classifier_a(), config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
            rt,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> HttpResponse {
        http(self.addr, "GET", path, &[], b"").expect("GET")
    }

    /// `POST path`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http(self.addr, "POST", path, headers, body).expect("POST")
    }

    /// Signals shutdown without waiting for it.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for the server to finish; returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let t = Instant::now();
        self.signal_shutdown();
        if let Some(handle) = self.handle.take() {
            self.rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(20), handle).await })
                .expect("server did not stop within 20 s")
                .expect("server task")
                .expect("server error");
        }
        t.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
