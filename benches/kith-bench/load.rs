//! Driving load and reporting it: closed-loop workers, latency percentiles
//! and the table every scenario adds a row to.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one scenario measured.
pub struct Row {
    pub scenario: String,
    pub backend: &'static str,
    /// Throughput, e.g. `12345 rows/s`; `-` where only latency matters.
    pub rate: String,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Peak resident memory of the Kith server process, where one ran.
    pub server_mb: Option<f64>,
    /// The Kith server's CPU time (all threads) per unit of work, in µs.
    pub server_cpu_us: Option<f64>,
    /// The measured ratio to this row's ceiling, as the target states it.
    pub ratio: String,
    /// DESIGN.md §6's target for the ratio, if it has one.
    pub target: &'static str,
}

/// A throughput figure with its latencies.
pub struct Measured {
    pub per_second: f64,
    pub latencies: Latencies,
}

impl Measured {
    pub fn new(units: usize, elapsed: Duration, latencies: Latencies) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let per_second = units as f64 / elapsed.as_secs_f64();
        Self {
            per_second,
            latencies,
        }
    }

    /// This rate as a share of the ceiling's.
    pub fn share_of(&self, ceiling: &Self) -> f64 {
        self.per_second / ceiling.per_second
    }
}

/// Sorted latencies of individual calls.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn from_unsorted(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Self(all)
    }

    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        Some(self.0[index])
    }

    pub fn p50(&self) -> Option<Duration> {
        self.percentile(0.50)
    }

    pub fn p99(&self) -> Option<Duration> {
        self.percentile(0.99)
    }
}

/// Runs `work(i)` for every `i` in `0..calls` with `concurrency` callers,
/// each starting its next call when the previous one returns, and measures
/// every call.
pub async fn closed_loop<F, Fut>(
    calls: usize,
    concurrency: usize,
    units_per_call: usize,
    work: F,
) -> anyhow::Result<Measured>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let call = next.fetch_add(1, Ordering::Relaxed);
                    if call >= calls {
                        return anyhow::Ok(latencies);
                    }
                    let call_started = Instant::now();
                    work(call).await?;
                    latencies.push(call_started.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(calls);
    for caller in callers {
        all.extend(caller.await??);
    }
    Ok(Measured::new(
        calls * units_per_call,
        started.elapsed(),
        Latencies::from_unsorted(all),
    ))
}

pub fn percent(share: f64) -> String {
    format!("{:.0} %", 100.0 * share)
}

pub fn times(factor: f64) -> String {
    format!("{factor:.2}×")
}

pub fn print_table(header: &str, rows: &[Row]) {
    println!("{header}");
    println!(
        "| {:<48} | {:<8} | {:>14} | {:>8} | {:>8} | {:>9} | {:>12} | {:>16} | {:>8} |",
        "scenario",
        "backend",
        "rate",
        "p50 ms",
        "p99 ms",
        "server MB",
        "server µs/u",
        "vs ceiling",
        "target"
    );
    let widths = [50, 10, 16, 10, 10, 11, 14, 18, 10];
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.2}", d.as_secs_f64() * 1000.0),
            )
        };
        let mb = row
            .server_mb
            .map_or_else(|| "-".to_owned(), |mb| format!("{mb:.1}"));
        let cpu = row
            .server_cpu_us
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
        println!(
            "| {:<48} | {:<8} | {:>14} | {:>8} | {:>8} | {:>9} | {:>12} | {:>16} | {:>8} |",
            row.scenario,
            row.backend,
            row.rate,
            ms(row.p50),
            ms(row.p99),
            mb,
            cpu,
            row.ratio,
            row.target
        );
    }
}

impl Row {
    /// A throughput row; ratio and target are filled by `against`.
    pub fn rate(scenario: &str, backend: &'static str, measured: &Measured, unit: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            backend,
            rate: format!("{:.0} {unit}", measured.per_second),
            p50: measured.latencies.p50(),
            p99: measured.latencies.p99(),
            server_mb: None,
            server_cpu_us: None,
            ratio: "-".to_owned(),
            target: "",
        }
    }

    /// A latency-only row.
    pub fn latency(scenario: &str, backend: &'static str, latencies: &Latencies) -> Self {
        Self {
            scenario: scenario.to_owned(),
            backend,
            rate: "-".to_owned(),
            p50: latencies.p50(),
            p99: latencies.p99(),
            server_mb: None,
            server_cpu_us: None,
            ratio: "-".to_owned(),
            target: "",
        }
    }

    #[must_use]
    pub fn against(mut self, ratio: String, target: &'static str) -> Self {
        self.ratio = ratio;
        self.target = target;
        self
    }

    #[must_use]
    pub fn server_mb(mut self, mb: f64) -> Self {
        self.server_mb = Some(mb);
        self
    }

    /// The server's CPU time over `units` units of work (rows, calls,
    /// events): the cost a ratio hides when the ceiling is the limit.
    #[must_use]
    pub fn server_cpu(mut self, cpu: Duration, units: usize) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let per_unit = cpu.as_secs_f64() * 1e6 / units.max(1) as f64;
        self.server_cpu_us = Some(per_unit);
        self
    }
}
