//! Streaming import of people: any number of them, written in store-sized
//! batches with the rules of a batch upsert. A person who is invalid, or who
//! conflicts with another, is rejected on their own and the import goes on.

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::WorkspaceId;
use crate::domain::customer::Email;
use crate::domain::person::{PersonUpsert, PersonUpsertInput};
use crate::error::{FieldViolation, Result};
use crate::store::Store;

/// People per store batch: large enough to amortise a transaction, small
/// enough for both backends' bind limits (18 columns × 500 rows).
pub const BATCH_SIZE: usize = 500;
/// Rejections reported by position; the rest are only counted.
pub const MAX_REPORTED_REJECTIONS: usize = 100;
const PROGRESS_EVERY: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based position in the stream.
    pub position: u64,
    /// Relative to the person: `email`, `traits.timezone`.
    pub field: String,
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
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    positions: Vec<u64>,
    pending: Vec<PersonUpsert>,
    /// User ids and email keys pending, so one batch never names a person
    /// twice (a repeat starts a new batch, and so wins over the earlier one).
    pending_keys: HashSet<String>,
    /// The batch being written while the next one is read and checked. One
    /// at a time, in stream order, so a person repeated across batches is
    /// applied in order.
    writing: Option<tokio::task::JoinHandle<Result<Written>>>,
    tally: ImportTally,
}

/// What writing one batch did.
#[derive(Debug, Default)]
struct Written {
    created: u64,
    updated: u64,
    refused: Vec<(u64, FieldViolation)>,
}

impl Importer {
    pub fn new(store: Arc<dyn Store>, workspace: WorkspaceId) -> Self {
        Self {
            store,
            workspace,
            positions: Vec::with_capacity(BATCH_SIZE),
            pending: Vec::with_capacity(BATCH_SIZE),
            pending_keys: HashSet::new(),
            writing: None,
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
        self.settle().await?;
        self.tally.rejections.sort_by_key(|r| r.position);
        Ok(self.tally)
    }

    /// Counts a rejection and keeps the first ones by position: a batch's
    /// refusals come back after later people were already checked.
    fn reject(&mut self, position: u64, violations: Vec<FieldViolation>) {
        self.tally.rejected += 1;
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

    /// Waits for the batch being written and counts what it did.
    async fn settle(&mut self) -> Result<()> {
        if let Some(writing) = self.writing.take() {
            let written = writing.await.map_err(crate::error::Error::internal)??;
            self.tally.created += written.created;
            self.tally.updated += written.updated;
            for (position, violation) in written.refused {
                self.reject(position, vec![violation]);
            }
        }
        Ok(())
    }

    /// Hands the pending batch to the writer, once the previous one is done.
    async fn flush(&mut self) -> Result<()> {
        self.pending_keys.clear();
        let positions = std::mem::replace(&mut self.positions, Vec::with_capacity(BATCH_SIZE));
        let pending = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH_SIZE));
        self.settle().await?;
        if !pending.is_empty() {
            let (store, workspace) = (self.store.clone(), self.workspace);
            self.writing = Some(tokio::spawn(write(store, workspace, positions, pending)));
        }
        Ok(())
    }
}

/// Writes one batch. People it refuses by position (a conflict) are set
/// aside and the rest written again; any other failure ends the import.
async fn write(
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    mut positions: Vec<u64>,
    mut pending: Vec<PersonUpsert>,
) -> Result<Written> {
    let mut written = Written::default();
    while !pending.is_empty() {
        match store.upsert_people(workspace, &pending).await {
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
                        item_of(&v.field)
                            .map(|(i, field)| (i, FieldViolation::new(field, &v.description)))
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

/// `people[12].email` → (12, `email`); `people[3]` → (3, ``).
fn item_of(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("people[")?;
    let (index, field) = rest.split_once(']')?;
    Some((
        index.parse().ok()?,
        field.strip_prefix('.').unwrap_or(field),
    ))
}

#[cfg(test)]
mod tests {
    use super::item_of;

    #[test]
    fn item_paths_split_into_position_and_field() {
        assert_eq!(item_of("people[12].email"), Some((12, "email")));
        assert_eq!(item_of("people[3]"), Some((3, "")));
        assert_eq!(item_of("people"), None);
        assert_eq!(item_of("entities[1].id"), None);
    }
}
