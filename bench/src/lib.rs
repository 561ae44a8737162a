//! Shared pieces of the benchmarks: a lean HTTP/1.1 load generator and latency statistics.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Figures from one load run.
#[derive(Debug)]
pub struct LoadReport {
    /// Requests completed (any status).
    pub requests: usize,
    /// Requests that did not answer 200.
    pub errors: usize,
    /// Wall time of the measured window.
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`-th percentile latency in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p / 100.0).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// What a connection asks for next, given the body of its previous answer (empty at first).
pub type NextPath = Box<dyn FnMut(&[u8]) -> String + Send>;

/// Drives `connections` keep-alive HTTP/1.1 connections against `addr` for `duration` after a
/// `warmup`. Each connection gets its headers and its [`NextPath`] from `client(connection)`
/// and sends GETs one at a time.
pub async fn load(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    client: impl Fn(usize) -> (Vec<(&'static str, String)>, NextPath),
) -> anyhow::Result<LoadReport> {
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let (headers, mut next_path) = client(c);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut body = Bytes::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let mut request = Request::get(next_path(&body)).header("host", "bench");
                for (name, value) in &headers {
                    request = request.header(*name, value);
                }
                let request = request.body(Empty::<Bytes>::new())?;
                let response = sender.send_request(request).await?;
                let ok = response.status() == 200;
                body = response.into_body().collect().await?.to_bytes();
                if sent >= start {
                    latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    errors += usize::from(!ok);
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    LoadReport::gather(duration, tasks).await
}

/// What one connection measured: its latencies (µs) and its error count.
pub type ConnectionRun = tokio::task::JoinHandle<anyhow::Result<(Vec<u32>, usize)>>;

impl LoadReport {
    /// Adds up the connections' runs over a window of `elapsed`.
    pub async fn gather(elapsed: Duration, runs: Vec<ConnectionRun>) -> anyhow::Result<Self> {
        let mut report = LoadReport {
            requests: 0,
            errors: 0,
            elapsed,
            latencies_us: Vec::new(),
        };
        for run in runs {
            let (latencies, errors) = run.await??;
            report.requests += latencies.len();
            report.errors += errors;
            report.latencies_us.extend(latencies);
        }
        report.latencies_us.sort_unstable();
        Ok(report)
    }
}

/// The `next_cursor` of a list answer, found without parsing the whole body.
pub fn next_cursor(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"next_cursor\":\"";
    let start = body.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok()
}
