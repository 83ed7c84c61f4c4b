//! `kith import`: a file's rows, read on a thread of their own, written
//! through the contract while the next ones are read.
//!
//! - People stream through `ImportPeople`, in segments: one call per
//!   segment keeps the rows it may have to report in memory, and no more,
//!   and a segment's reply says which of them it rejected.
//! - Entities and entity types go in batches of up to 100, several in
//!   flight. A batch is all or nothing, so when the server names bad rows
//!   (`entities[3].type_id`) they are rejected and the rest is sent again.
//! - Customers and users have no batch method: one call per row, several in
//!   flight.
//!
//! Whatever stops an import early (Ctrl-C, a server failure, a file that
//! cannot be read further), the calls in flight finish and are counted, and
//! the summary says up to which line the file was imported. Everything is
//! an upsert by the kind's keys, so running the same command again
//! finishes the job.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::Status;

use super::client::{self, Connection};
use super::format::{Rejects, RowError, RowReader, Source};
use super::progress::{Progress, Tally};
use super::records::{self, BatchWriter, RowWriter, Written};
use super::{Failure, exit};
use crate::config::{FileFormat, ImportArgs, RecordKind};
use crate::pb::kith::v1 as pb;

/// People per `ImportPeople` call, as long as the server itemises every
/// rejection; smaller ones after a call rejected more than it itemises.
const SEGMENT_ROWS: [usize; 3] = [20_000, 1_000, 100];
/// Rejections an `ImportPeople` reply itemises (the contract's "first 100").
const ITEMISED_REJECTIONS: usize = 100;
/// People per message of the stream ("100 to 1000 stream best").
const CHUNK_ROWS: usize = 500;
/// Messages read ahead of the stream.
const CHUNKS_AHEAD: usize = 4;
/// Rows read ahead of the writes, checked and waiting.
const ROWS_AHEAD: usize = 4_096;
/// Rows the reader hands over at once.
const ROWS_PER_SEND: usize = 256;
/// Records per batch call: the batch methods' limit.
const BATCH_ROWS: usize = 100;

pub async fn run(args: &ImportArgs) -> Result<u8, Failure> {
    let format = args.format.unwrap_or_else(|| format_of(&args.file));
    let reader = RowReader::open(&args.file, format, records::codec(args.kind))?;
    let connection = Connection::open(&args.server).await?;
    let what = format!("{} from {}", kind_name(args.kind), file_name(&args.file));
    let mut import = Import {
        progress: Progress::new(what.clone(), reader.size()),
        rejects: Rejects::create(args.rejects.as_deref(), reader.csv_header())?,
        tally: Tally::default(),
        unlisted: 0,
        last_line: 0,
        offset: 0,
        stop: Arc::new(AtomicBool::new(false)),
        stopped_by: None,
    };
    let interrupted = import.stop_on_ctrl_c();
    let in_flight = usize::try_from(args.in_flight.get()).unwrap_or(usize::MAX);
    match args.kind {
        RecordKind::People => {
            let rows = import.read(reader, records::person_upsert);
            import.people(&connection, rows).await;
        }
        RecordKind::Customers => {
            let rows = import.read(reader, Ok);
            let writer = records::Customers(connection.clone());
            import.rows(writer, rows, in_flight).await;
        }
        RecordKind::Users => {
            let rows = import.read(reader, Ok);
            let writer = records::Users(connection.clone());
            import.rows(writer, rows, in_flight).await;
        }
        RecordKind::Entities => {
            let rows = import.read(reader, Ok);
            let writer = records::Entities(connection.clone());
            import.batches(writer, rows, in_flight).await;
        }
        RecordKind::EntityTypes => {
            let rows = import.read(reader, Ok);
            let writer = records::EntityTypes(connection.clone());
            import.batches(writer, rows, in_flight).await;
        }
    }
    if let Err(failure) = import.rejects.finish() {
        import.halt(Stop::Failed(failure));
    }
    import.progress.finish();
    let interrupted = interrupted.load(Ordering::Relaxed);
    let stopped_by = import.stopped_by.take().map(|stop| match stop {
        Stop::Failed(failure) => failure,
        Stop::Status(status) => connection.failure(&status),
    });
    // A call refused at once (a bad key) has nothing to sum up.
    if stopped_by.is_none() || import.tally.done() > 0 {
        import.summarise(
            &what,
            args.rejects.as_deref(),
            interrupted,
            stopped_by.is_some(),
        );
    }
    if let Some(failure) = stopped_by {
        return Err(failure);
    }
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if import.tally.rejected > 0 {
        exit::REJECTED
    } else {
        0
    })
}

/// What stopped an import before the end of its file.
enum Stop {
    /// The file could not be read further, or the rejects file written.
    Failed(Failure),
    /// A call failed for a reason that is not its rows'.
    Status(Status),
}

/// A row of the file: ready to write, or already known to be bad.
struct Checked<W> {
    line: u64,
    offset: u64,
    source: Source,
    record: Result<W, Vec<RowError>>,
}

/// The rows the reader thread sends, a few hundred at a time: one wake-up
/// per row cost a tenth of the command's CPU.
struct Rows<W> {
    receiver: mpsc::Receiver<Vec<Result<Checked<W>, Failure>>>,
    taken: std::vec::IntoIter<Result<Checked<W>, Failure>>,
}

impl<W> Rows<W> {
    async fn next(&mut self) -> Option<Result<Checked<W>, Failure>> {
        loop {
            if let Some(row) = self.taken.next() {
                return Some(row);
            }
            self.taken = self.receiver.recv().await?.into_iter();
        }
    }
}

struct Import {
    progress: Progress,
    rejects: Rejects,
    tally: Tally,
    /// Rejections the server counted and did not itemise: in the tally,
    /// not in the rejects file.
    unlisted: u64,
    /// The last line taken: every row up to it is written or rejected once
    /// the calls in flight have finished.
    last_line: u64,
    /// Where in the file that line ends, in bytes.
    offset: u64,
    /// Set by Ctrl-C, or when the import must stop: no row is taken after.
    stop: Arc<AtomicBool>,
    stopped_by: Option<Stop>,
}

impl Import {
    /// Ctrl-C stops taking rows; a second one exits at once. The flag it
    /// returns says whether the first came.
    fn stop_on_ctrl_c(&self) -> Arc<AtomicBool> {
        let interrupted = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&self.stop);
        let flag = Arc::clone(&interrupted);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            flag.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            eprintln!("stopping after the calls in flight; Ctrl-C again stops at once");
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopped at once: the calls in flight may or may not have been written");
                std::process::exit(exit::INTERRUPTED.into());
            }
        });
        interrupted
    }

    /// Stops taking rows; the first reason is the one reported.
    fn halt(&mut self, why: Stop) {
        self.stop.store(true, Ordering::Relaxed);
        self.stopped_by.get_or_insert(why);
    }

    /// Reads the file on a thread, each record turned into what the writer
    /// takes by `check`, a few thousand rows ahead of the writes.
    fn read<R, W>(
        &self,
        mut reader: RowReader,
        check: impl Fn(R) -> Result<W, Vec<RowError>> + Send + 'static,
    ) -> Rows<W>
    where
        R: prost::Message + Default + 'static,
        W: Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(ROWS_AHEAD / ROWS_PER_SEND);
        let stop = Arc::clone(&self.stop);
        std::thread::spawn(move || {
            let mut rows = Vec::with_capacity(ROWS_PER_SEND);
            while !stop.load(Ordering::Relaxed) {
                let Some(row) = reader.next_row::<R>() else {
                    break;
                };
                let unreadable = row.is_err();
                rows.push(row.map(|row| Checked {
                    line: row.line,
                    offset: row.offset,
                    source: row.source,
                    record: row.record.map_err(|e| vec![e]).and_then(&check),
                }));
                if rows.len() == ROWS_PER_SEND || unreadable {
                    let full = std::mem::replace(&mut rows, Vec::with_capacity(ROWS_PER_SEND));
                    if sender.blocking_send(full).is_err() || unreadable {
                        return;
                    }
                }
            }
            if !rows.is_empty() {
                let _ = sender.blocking_send(rows);
            }
        });
        Rows {
            receiver,
            taken: Vec::new().into_iter(),
        }
    }

    /// The next row that can be written; bad rows on the way are rejected.
    /// `None` at the end of the file, or once the import is stopping.
    async fn next<W>(&mut self, rows: &mut Rows<W>) -> Option<(u64, Source, W)> {
        // Rows read ahead but not yet taken are not in flight: an
        // interrupted import leaves them for the next run.
        while !self.stop.load(Ordering::Relaxed)
            && let Some(row) = rows.next().await
        {
            let row = match row {
                Ok(row) => row,
                Err(failure) => {
                    self.halt(Stop::Failed(failure));
                    return None;
                }
            };
            self.tally.read += 1;
            self.last_line = row.line;
            self.offset = row.offset;
            match row.record {
                Ok(record) => return Some((row.line, row.source, record)),
                Err(errors) => self.reject(row.line, &row.source, &errors),
            }
        }
        None
    }

    fn reject(&mut self, line: u64, source: &Source, errors: &[RowError]) {
        self.tally.rejected += 1;
        let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
        self.progress
            .println(&format!("line {line}: {}", reasons.join("; ")));
        if let Err(failure) = self.rejects.write(source) {
            self.halt(Stop::Failed(failure));
        }
    }

    fn count(&mut self, written: Written) {
        match written {
            Written::Created => self.tally.created += 1,
            Written::Updated => self.tally.updated += 1,
        }
    }

    async fn people(&mut self, connection: &Connection, mut rows: Rows<pb::PersonUpsert>) {
        let client = connection.people();
        let mut segment_rows = SEGMENT_ROWS.iter().copied().peekable();
        let mut size = SEGMENT_ROWS[0];
        while let Some(first) = self.next(&mut rows).await {
            // The segment streams out as it is read: only a few chunks are
            // held at once, and the sources to report rejections by.
            let (chunks, stream) = mpsc::channel(CHUNKS_AHEAD);
            let mut call = client.clone();
            let call = tokio::spawn(async move {
                call.import_people(tokio_stream::wrappers::ReceiverStream::new(stream))
                    .await
            });
            let mut sources = Vec::with_capacity(size);
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            let mut next = Some(first);
            while let Some((line, source, person)) = next {
                sources.push((line, source));
                chunk.push(person);
                if chunk.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    // A call that has failed takes no more: its status says why.
                    if chunks
                        .send(pb::ImportPeopleRequest { people: full })
                        .await
                        .is_err()
                    {
                        break;
                    }
                    self.progress.update(&self.tally, self.offset);
                }
                next = if sources.len() < size {
                    self.next(&mut rows).await
                } else {
                    None
                };
            }
            if !chunk.is_empty() {
                let _ = chunks.send(pb::ImportPeopleRequest { people: chunk }).await;
            }
            drop(chunks);
            let reply = match call.await.expect("the import call does not panic") {
                Ok(reply) => reply.into_inner(),
                Err(status) => return self.halt(Stop::Status(status)),
            };
            self.tally.created += u64::try_from(reply.created_count).unwrap_or(0);
            self.tally.updated += u64::try_from(reply.updated_count).unwrap_or(0);
            // One rejection per violation: a row is rejected once, with all.
            let mut by_row: BTreeMap<usize, Vec<RowError>> = BTreeMap::new();
            for rejection in &reply.rejections {
                if let Ok(at) = usize::try_from(rejection.position) {
                    let field = records::person_field(&rejection.field);
                    by_row
                        .entry(at)
                        .or_default()
                        .push(RowError::new(field, &rejection.description));
                }
            }
            let itemised = by_row.len() as u64;
            for (at, errors) in by_row {
                if let Some((line, source)) = sources.get(at) {
                    self.reject(*line, source, &errors);
                }
            }
            let unlisted = u64::try_from(reply.rejected_count)
                .unwrap_or(0)
                .saturating_sub(itemised);
            if unlisted > 0 {
                // Only conflicts between people get here (invalid rows are
                // caught before they are sent), and more than one reply
                // itemises: count them, name the lines, and send smaller
                // segments from now on, so that every later one is named.
                self.tally.rejected += unlisted;
                self.unlisted += unlisted;
                let first = sources.first().map_or(0, |s| s.0);
                let last = sources.last().map_or(0, |s| s.0);
                self.progress.println(&format!(
                    "lines {first}-{last}: {unlisted} more people were rejected than the server \
                     itemises ({ITEMISED_REJECTIONS} a call); they are not in the rejects file"
                ));
                segment_rows.next();
                size = segment_rows.peek().copied().unwrap_or(size);
            }
            self.progress.update(&self.tally, self.offset);
        }
    }

    async fn rows<Writer: RowWriter>(
        &mut self,
        writer: Writer,
        mut rows: Rows<Writer::Record>,
        in_flight: usize,
    ) {
        let mut calls = JoinSet::new();
        let mut reading = true;
        loop {
            if reading && calls.len() < in_flight {
                match self.next(&mut rows).await {
                    Some((line, source, record)) => {
                        let writer = writer.clone();
                        calls.spawn(async move {
                            let written = client::retrying(|| writer.write(&record)).await;
                            (line, source, written)
                        });
                        continue;
                    }
                    None => reading = false,
                }
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (line, source, written) = done.expect("a write task does not panic");
            match written {
                Ok(written) => self.count(written),
                Err(status) if client::is_about_the_row(&status) => {
                    let errors = row_errors(&status, Writer::WITHIN);
                    self.reject(line, &source, &errors);
                }
                Err(status) => self.halt(Stop::Status(status)),
            }
            self.progress.update(&self.tally, self.offset);
        }
    }

    async fn batches<Writer: BatchWriter>(
        &mut self,
        writer: Writer,
        mut rows: Rows<Writer::Record>,
        in_flight: usize,
    ) {
        let mut calls: JoinSet<Outcome> = JoinSet::new();
        let mut batch = Batch::default();
        let mut reading = true;
        loop {
            if reading && calls.len() < in_flight {
                match self.next(&mut rows).await {
                    Some(row) => {
                        if let Some(full) = batch.add::<Writer>(row) {
                            calls.spawn(write_batch(writer.clone(), full));
                        }
                        continue;
                    }
                    // What was taken is written, stopping or not.
                    None => {
                        reading = false;
                        if !batch.rows.is_empty() {
                            calls.spawn(write_batch(writer.clone(), std::mem::take(&mut batch)));
                        }
                    }
                }
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let outcome = done.expect("a write task does not panic");
            for written in outcome.written {
                self.count(written);
            }
            for (line, source, errors) in &outcome.rejected {
                self.reject(*line, source, errors);
            }
            if let Some(status) = outcome.failed {
                self.halt(Stop::Status(status));
            }
            self.progress.update(&self.tally, self.offset);
        }
    }

    fn summarise(&self, what: &str, rejects: Option<&Path>, interrupted: bool, failed: bool) {
        let tally = &self.tally;
        let seconds = self.progress.elapsed().as_secs_f64();
        let listed = tally.rejected - self.unlisted;
        let mut where_rejects = Vec::new();
        if let Some(path) = rejects
            && listed > 0
        {
            where_rejects.push(if self.unlisted > 0 {
                format!("{listed} written to {}", path.display())
            } else {
                format!("written to {}", path.display())
            });
        }
        if self.unlisted > 0 {
            where_rejects.push(format!("{} not itemised by the server", self.unlisted));
        }
        let where_rejects = if where_rejects.is_empty() {
            String::new()
        } else {
            format!(" ({})", where_rejects.join("; "))
        };
        let verb = if failed {
            "stopped importing"
        } else if interrupted {
            "interrupted importing"
        } else {
            "imported"
        };
        eprintln!(
            "{verb} {what}: {} rows in {seconds:.1} s ({:.0} rows/s): {} created, {} updated, {} rejected{where_rejects}",
            tally.done(),
            self.progress.rate(tally.done()),
            tally.created,
            tally.updated,
            tally.rejected,
        );
        if interrupted || failed {
            eprintln!(
                "stopped after line {}; run the same command again to finish: rows already \
                 imported are updated, not duplicated",
                self.last_line
            );
        }
    }
}

/// Rows of one batch: one group, distinct ids, at most `BATCH_ROWS`.
struct Batch<R> {
    rows: Vec<(u64, Source, R)>,
    ids: HashSet<String>,
}

impl<R> Default for Batch<R> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            ids: HashSet::new(),
        }
    }
}

impl<R> Batch<R> {
    /// Adds a row; returns the batch before it when the row could not join
    /// it (another group, a repeated id) or when it is full.
    fn add<Writer: BatchWriter<Record = R>>(&mut self, row: (u64, Source, R)) -> Option<Self> {
        let fits = self
            .rows
            .first()
            .is_none_or(|(_, _, first)| Writer::group(first) == Writer::group(&row.2))
            && !self.ids.contains(Writer::id(&row.2));
        let closed = if fits {
            None
        } else {
            Some(std::mem::take(self))
        };
        self.ids.insert(Writer::id(&row.2).to_owned());
        self.rows.push(row);
        if closed.is_none() && self.rows.len() == BATCH_ROWS {
            return Some(std::mem::take(self));
        }
        closed
    }
}

/// What one batch did: its written rows, the rows the server refused, and
/// a failure that is not its rows' (the import stops).
struct Outcome {
    written: Vec<Written>,
    rejected: Vec<(u64, Source, Vec<RowError>)>,
    failed: Option<Status>,
}

/// Writes a batch; rows the server names as bad are taken out and the rest
/// is sent again, until it is written or empty.
async fn write_batch<Writer: BatchWriter>(writer: Writer, batch: Batch<Writer::Record>) -> Outcome {
    let mut outcome = Outcome {
        written: Vec::new(),
        rejected: Vec::new(),
        failed: None,
    };
    let group = batch
        .rows
        .first()
        .map(|(_, _, r)| Writer::group(r).to_owned())
        .unwrap_or_default();
    let mut rows: Vec<_> = batch.rows.into_iter().map(Some).collect();
    loop {
        let pending: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].is_some()).collect();
        if pending.is_empty() {
            return outcome;
        }
        let records: Vec<&Writer::Record> = pending
            .iter()
            .filter_map(|&i| rows[i].as_ref().map(|row| &row.2))
            .collect();
        let written = client::retrying(|| writer.write(&group, records.clone())).await;
        let status = match written {
            Ok(written) => {
                outcome.written = written;
                return outcome;
            }
            Err(status) if client::is_about_the_row(&status) => status,
            Err(status) => {
                outcome.failed = Some(status);
                return outcome;
            }
        };
        let mut by_row: Vec<Vec<RowError>> = vec![Vec::new(); pending.len()];
        let mut whole_batch = Vec::new();
        for (field, reason) in client::violations(&status) {
            match item_of(&field, Writer::LIST) {
                Some((at, rest)) if at < pending.len() => {
                    by_row[at].push(RowError::new(rest, reason));
                }
                _ => whole_batch.push(RowError::new(field, reason)),
            }
        }
        let named: Vec<usize> = (0..pending.len())
            .filter(|&at| !by_row[at].is_empty())
            .collect();
        // Nothing names a row (the owner does not exist): every row of the
        // batch is refused for that.
        let refused: Vec<(usize, Vec<RowError>)> = if named.is_empty() {
            (0..pending.len())
                .map(|at| (at, whole_batch.clone()))
                .collect()
        } else {
            named
                .into_iter()
                .map(|at| (at, std::mem::take(&mut by_row[at])))
                .collect()
        };
        for (at, errors) in refused {
            if let Some((line, source, _)) = rows[pending[at]].take() {
                outcome.rejected.push((line, source, errors));
            }
        }
    }
}

/// `entities[3].type_id` as (3, `type_id`).
fn item_of(field: &str, list: &str) -> Option<(usize, String)> {
    let rest = field.strip_prefix(list)?.strip_prefix('[')?;
    let (index, rest) = rest.split_once(']')?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    Some((index.parse().ok()?, rest.to_owned()))
}

/// A refused row's violations, relative to the row.
fn row_errors(status: &Status, within: &str) -> Vec<RowError> {
    client::violations(status)
        .into_iter()
        .map(|(field, reason)| {
            let field = if within.is_empty() {
                field
            } else {
                field
                    .strip_prefix(within)
                    .map(|rest| rest.trim_start_matches('.').to_owned())
                    .unwrap_or(field)
            };
            RowError::new(field, reason)
        })
        .collect()
}

fn format_of(path: &Path) -> FileFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("csv") => FileFormat::Csv,
        _ => FileFormat::Jsonl,
    }
}

fn file_name(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

pub fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::People => "people",
        RecordKind::Customers => "customers",
        RecordKind::Users => "users",
        RecordKind::Entities => "entities",
        RecordKind::EntityTypes => "entity types",
    }
}

#[cfg(test)]
mod tests {
    use super::item_of;

    #[test]
    fn batch_paths_name_their_row() {
        assert_eq!(
            item_of("entities[3].type_id", "entities"),
            Some((3, "type_id".into()))
        );
        assert_eq!(item_of("types[0]", "types"), Some((0, String::new())));
        assert_eq!(item_of("customer_external_id", "entities"), None);
        assert_eq!(item_of("entities[x].id", "entities"), None);
    }
}
