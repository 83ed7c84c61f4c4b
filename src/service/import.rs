//! Streaming import of people: any number of them, written in store-sized
//! batches with the rules of a batch upsert. A person who is invalid, or who
//! conflicts with another, is rejected on their own and the import goes on.

use crate::metrics::ImportOutcome;
use std::collections::{HashSet, VecDeque};

use super::Service;
use super::consistency::{self, Committed};
use crate::domain::Caller;
use crate::domain::customer::Email;
use crate::domain::person::{PersonUpsert, PersonUpsertInput, batch_item};
use crate::error::{FieldPath, FieldViolation, Result};

/// People per store batch: large enough to amortise a transaction, small
/// enough for both backends' bind limits (20 columns × 500 rows).
pub const BATCH_SIZE: usize = 500;
/// Rejections reported by position; the rest are only counted.
pub const MAX_REPORTED_REJECTIONS: usize = 100;
const PROGRESS_EVERY: u64 = 100_000;
/// Batches written at once. They never name the same person, and only
/// batches of new people are written out of stream order (see `Attempt`).
const WRITES_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based position in the stream.
    pub position: u64,
    /// Relative to the person: `email`, `traits.timezone`.
    pub field: FieldPath,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportTally {
    pub received: u64,
    pub created: u64,
    pub updated: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
}

pub struct Importer {
    service: Service,
    caller: Caller,
    positions: Vec<u64>,
    pending: Vec<PersonUpsert>,
    /// User ids and email keys pending, so one batch never names a person
    /// twice (a repeat starts a new batch, and so wins over the earlier one).
    pending_keys: HashSet<String>,
    /// Batches being written while the next ones are read and checked,
    /// oldest first.
    writing: VecDeque<InFlight>,
    tally: ImportTally,
}

/// A batch being written, and every key it names.
struct InFlight {
    keys: HashSet<String>,
    /// The batch's write, and what it committed (the call's answer says).
    task: tokio::task::JoinHandle<(Attempt, Committed)>,
}

/// What writing a batch as new people did. Batches in flight name disjoint
/// people, so creating one batch's people cannot change what another's
/// become, whatever order they commit in. A batch naming someone who
/// exists waits for every earlier batch, then merges: its outcome may
/// depend on them (an earlier batch may free an email it takes).
enum Attempt {
    Written(Written),
    NeedsMerge {
        positions: Vec<u64>,
        pending: Vec<PersonUpsert>,
    },
}

/// What writing one batch did.
#[derive(Debug, Default)]
struct Written {
    created: u64,
    updated: u64,
    refused: Vec<(u64, FieldViolation)>,
}

impl Importer {
    pub fn new(service: Service, caller: Caller) -> Self {
        Self {
            service,
            caller,
            positions: Vec::with_capacity(BATCH_SIZE),
            pending: Vec::with_capacity(BATCH_SIZE),
            pending_keys: HashSet::new(),
            writing: VecDeque::new(),
            tally: ImportTally::default(),
        }
    }

    /// Takes the next person of the stream; writes a batch when one is full.
    pub async fn push(
        &mut self,
        input: Result<PersonUpsertInput, Vec<FieldViolation>>,
    ) -> Result<()> {
        let position = self.tally.received;
        self.tally.received += 1;
        if self.tally.received.is_multiple_of(PROGRESS_EVERY) {
            tracing::info!(
                received = self.tally.received,
                created = self.tally.created,
                updated = self.tally.updated,
                rejected = self.tally.rejected,
                "import progress"
            );
        }
        let upsert = match input.and_then(PersonUpsert::parse) {
            Ok(upsert) => upsert,
            Err(violations) => {
                self.reject(position, violations);
                return Ok(());
            }
        };
        let keys = [
            Some(format!("u:{}", upsert.user_id)),
            upsert
                .email
                .as_ref()
                .map(|e| format!("e:{}", Email::key(e))),
        ];
        let keys: Vec<String> = keys.into_iter().flatten().collect();
        if self.pending.len() == BATCH_SIZE || keys.iter().any(|k| self.pending_keys.contains(k)) {
            self.flush().await?;
        }
        self.pending_keys.extend(keys);
        self.positions.push(position);
        self.pending.push(upsert);
        Ok(())
    }

    /// Writes what is pending and returns the totals.
    pub async fn finish(mut self) -> Result<ImportTally> {
        self.flush().await?;
        while !self.writing.is_empty() {
            self.settle_oldest().await?;
        }
        self.tally.rejections.sort_by_key(|r| r.position);
        Ok(std::mem::take(&mut self.tally))
    }

    /// Counts a rejection and keeps the first ones by position: a batch's
    /// refusals come back after later people were already checked.
    fn reject(&mut self, position: u64, violations: Vec<FieldViolation>) {
        self.tally.rejected += 1;
        self.service.metrics.imported(ImportOutcome::Rejected, 1);
        let rejections = &mut self.tally.rejections;
        rejections.extend(violations.into_iter().map(|violation| Rejection {
            position,
            field: violation.field,
            description: violation.description,
        }));
        if rejections.len() > MAX_REPORTED_REJECTIONS {
            rejections.sort_by_key(|r| r.position);
            rejections.truncate(MAX_REPORTED_REJECTIONS);
        }
    }

    /// Waits for the oldest batch in flight, merges it if it named someone
    /// who exists (every earlier batch is settled by then), and counts what
    /// it did.
    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(batch) = self.writing.pop_front() else {
            return Ok(());
        };
        let (attempt, committed) = batch.task.await.map_err(crate::error::Error::internal)?;
        consistency::adopt(committed);
        let written = match attempt {
            Attempt::Written(written) => written,
            Attempt::NeedsMerge { positions, pending } => {
                write(&self.service, &self.caller, positions, pending).await?
            }
        };
        self.tally.created += written.created;
        self.tally.updated += written.updated;
        let metrics = &self.service.metrics;
        metrics.imported(ImportOutcome::Created, written.created);
        metrics.imported(ImportOutcome::Updated, written.updated);
        for (position, violation) in written.refused {
            self.reject(position, vec![violation]);
        }
        Ok(())
    }

    /// Starts writing the pending batch, after any batch in flight that
    /// names one of its people (so the later mention wins).
    async fn flush(&mut self) -> Result<()> {
        let keys = std::mem::take(&mut self.pending_keys);
        let positions = std::mem::replace(&mut self.positions, Vec::with_capacity(BATCH_SIZE));
        let pending = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH_SIZE));
        if pending.is_empty() {
            return Ok(());
        }
        while self.writing.iter().any(|b| !b.keys.is_disjoint(&keys))
            || self.writing.len() >= WRITES_IN_FLIGHT
        {
            self.settle_oldest().await?;
        }
        let (service, caller) = (self.service.clone(), self.caller);
        let task = tokio::spawn(consistency::recording_commits(async move {
            match service.insert_new_people(&caller, &pending).await {
                Ok(Some(people)) => Attempt::Written(Written {
                    created: people.len() as u64,
                    ..Written::default()
                }),
                // Someone exists, or someone is refused: the ordered merge
                // sorts out which and reports any other failure.
                Ok(None) | Err(_) => Attempt::NeedsMerge { positions, pending },
            }
        }));
        self.writing.push_back(InFlight { keys, task });
        Ok(())
    }
}

/// A failed or abandoned import leaves no batch writing behind it.
impl Drop for Importer {
    fn drop(&mut self) {
        for batch in &self.writing {
            batch.task.abort();
        }
    }
}

/// Writes one batch. People it refuses by position (a conflict) are set
/// aside and the rest written again; any other failure ends the import.
async fn write(
    service: &Service,
    caller: &Caller,
    mut positions: Vec<u64>,
    mut pending: Vec<PersonUpsert>,
) -> Result<Written> {
    let mut written = Written::default();
    while !pending.is_empty() {
        match service.merge_people(caller, &pending).await {
            Ok(people) => {
                let created = people.iter().filter(|u| u.created).count() as u64;
                written.created += created;
                written.updated += people.len() as u64 - created;
                break;
            }
            Err(error) => {
                let mut refused: Vec<(usize, FieldViolation)> = error
                    .violations()
                    .iter()
                    .filter_map(|v| {
                        let (i, field) = item_of(&v.field)?;
                        Some((i, FieldViolation::new(field, &v.description)))
                    })
                    .collect();
                if refused.is_empty() {
                    return Err(error);
                }
                refused.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
                refused.dedup_by_key(|(i, _)| *i);
                for (i, violation) in refused {
                    written.refused.push((positions.remove(i), violation));
                    pending.remove(i);
                }
            }
        }
    }
    Ok(written)
}

/// `people[12].email` → (12, `email`); `people[3]` → (3, the empty path).
fn item_of(path: &FieldPath) -> Option<(usize, FieldPath)> {
    let index = path
        .strip_prefix(&FieldPath::field("people"))?
        .first_index()?;
    Some((index, path.strip_prefix(&batch_item(index))?))
}

#[cfg(test)]
mod tests {
    use super::item_of;
    use crate::error::FieldPath;

    #[test]
    fn item_paths_split_into_position_and_field() {
        let people = || FieldPath::field("people");
        assert_eq!(
            item_of(&people().index(12).then("email")),
            Some((12, FieldPath::field("email")))
        );
        assert_eq!(item_of(&people().index(3)), Some((3, FieldPath::default())));
        assert_eq!(item_of(&people()), None);
        assert_eq!(
            item_of(&FieldPath::field("entities").index(1).then("id")),
            None
        );
    }
}
