//! `kith import people` of a JSONL file against its ceiling: the same
//! people streamed through `ImportPeople` by this client, with nothing to
//! read or parse. The command runs as the user runs it, in a process of its
//! own, whose peak memory and CPU are sampled while it works.

use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prost_types::value::Kind;
use serde_json::{Map, Value, json};

use kith::pb::kith::v1::PersonUpsert;

use crate::kith_process::{self, Kith};
use crate::load::{Latencies, Measured};

/// The people as the file `kith export people` would write: one canonical
/// JSON `Person` per line, known traits as its fields.
pub fn write_jsonl(people: &[PersonUpsert], path: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for person in people {
        let mut line = Map::new();
        line.insert("externalId".into(), json!(person.user_id));
        line.insert("email".into(), json!(person.email));
        let mut attributes = Map::new();
        for (name, value) in &person
            .traits
            .as_ref()
            .context("generated with traits")?
            .fields
        {
            let value = match &value.kind {
                Some(Kind::StringValue(s)) => json!(s),
                Some(Kind::NumberValue(n)) => json!(n),
                _ => Value::Null,
            };
            match name.as_str() {
                "first_name" => line.insert("firstName".into(), value),
                "last_name" => line.insert("lastName".into(), value),
                _ => attributes.insert(name.clone(), value),
            };
        }
        line.insert("attributes".into(), Value::Object(attributes));
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// One `kith import people --file path` against `kith`.
pub struct CliRun {
    pub measured: Measured,
    /// The command's own peak resident memory and CPU time.
    pub peak_mb: f64,
    pub cpu: Duration,
}

pub async fn import(kith: &Kith, path: &Path, rows: usize) -> anyhow::Result<CliRun> {
    let key = kith.key.clone().context("a fresh server printed its key")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(["import", "people", "--file"])
        .arg(path)
        .args(["--server", &format!("http://{}", kith.grpc), "--key", &key])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kith import")?;
    let started = Instant::now();
    let pid = child.id();
    let stderr = child.stderr.take().context("piped")?;
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Sampled until the process exits: a zombie has no memory to read.
    let (mut peak_mb, mut cpu) = (0.0_f64, Duration::ZERO);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak_mb = peak_mb.max(kith_process::peak_rss_mb(pid));
        cpu = cpu.max(kith_process::cpu_time(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let lines = lines.join().expect("the reader thread does not panic");
    if !status.success() {
        let server_errors: Vec<String> = kith
            .logs()
            .into_iter()
            .filter(|line| {
                line.contains(r#""level":"ERROR""#) || line.contains(r#""level":"WARN""#)
            })
            .collect();
        anyhow::bail!("kith import failed: {lines:?}; the server logged: {server_errors:?}");
    }
    let expected = format!("{rows} created, 0 updated, 0 rejected");
    anyhow::ensure!(
        lines.iter().any(|line| line.contains(&expected)),
        "kith import did not create every person: {lines:?}"
    );
    Ok(CliRun {
        measured: Measured::new(rows, elapsed, Latencies::default()),
        peak_mb,
        cpu,
    })
}
