//! The change log's readers: how soon a watcher in another process sees a
//! write, and how fast a watcher catches up on a long log.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use kith::pb::kith::v1::{
    ChangeFilter, ChangeKind, ListChangesRequest, UpsertPersonRequest, WatchRequest,
};

use crate::kith_process::Kith;
use crate::load::{Latencies, Measured};
use crate::people::{created_change, person};
use crate::raw::{RawPerson, RawPool};

/// Change rows per statement when filling the log.
const FILL_BATCH: usize = 1_000;
/// Changes per Watch message when catching up.
const CATCH_UP_MESSAGE: i32 = 1_000;

/// `samples` single-person upserts on `writer`, one at a time; each is
/// timed from the call to the arrival of its change at a watcher on
/// `watcher` (the same server, or another replica of its database). The
/// write's own latency is inside: commit to arrival is at most this.
pub async fn write_to_event(
    writer: &Kith,
    watcher: &Kith,
    samples: usize,
) -> anyhow::Result<Latencies> {
    let mut stream = watcher
        .changes()
        .watch(WatchRequest {
            filter: Some(ChangeFilter {
                kinds: vec![ChangeKind::Person.into()],
                ..ChangeFilter::default()
            }),
            max_changes: 100,
            ..WatchRequest::default()
        })
        .await?
        .into_inner();
    stream.message().await?.context("the opening checkpoint")?;
    let mut people = writer.people();
    let mut all = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = Instant::now();
        let written = people
            .upsert_person(UpsertPersonRequest {
                person: Some(person("latency", i)),
            })
            .await?
            .into_inner()
            .person
            .context("the written person")?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .context("no change within 10 s")??
                .context("the watch ended")?;
            if message.changes.iter().any(|c| c.record_id == written.id) {
                break;
            }
        }
        all.push(sent.elapsed());
    }
    Ok(Latencies::from_unsorted(all))
}

/// Fills a bootstrapped database's log with `count` person changes the raw
/// way (setup, not measured), logging progress.
pub async fn fill_log(database_url: &str, count: usize) -> anyhow::Result<()> {
    let pool = RawPool::open(database_url, 1).await?;
    let writer = pool.default_writer().await?;
    let started = Instant::now();
    let report_every = (count / FILL_BATCH / 10).max(1);
    for (batch, from) in (0..count).step_by(FILL_BATCH).enumerate() {
        let changes: Vec<_> = (from..count.min(from + FILL_BATCH))
            .map(|i| created_change(&RawPerson::from(&person("logged", i)), writer.workspace))
            .collect();
        pool.append_changes(writer, &changes).await?;
        if batch % report_every == 0 {
            eprintln!("  logged {from} of {count} changes");
        }
    }
    eprintln!(
        "  logged {count} changes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A watcher from the oldest change to the last of `count`, in messages of
/// up to 1000: changes per second.
pub async fn catch_up(kith: &Kith, count: usize) -> anyhow::Result<Measured> {
    let mut changes = kith.changes();
    // The cursor after the first change: the log's oldest end.
    let first = changes
        .list_changes(ListChangesRequest {
            page_size: 1,
            ..ListChangesRequest::default()
        })
        .await?
        .into_inner();
    let started = Instant::now();
    let mut stream = changes
        .watch(WatchRequest {
            cursor: first.next_cursor,
            max_changes: CATCH_UP_MESSAGE,
            ..WatchRequest::default()
        })
        .await?
        .into_inner();
    let mut received = first.changes.len();
    while received < count {
        let message = stream.message().await?.context("the watch ended")?;
        received += message.changes.len();
    }
    Ok(Measured::new(
        received,
        started.elapsed(),
        Latencies::default(),
    ))
}
