//! `kith watch` tails the change log; `kith history` prints one record's
//! kept changes.

use std::io::Write as _;

use super::Failure;
use super::client::Connection;
use super::format::Codec;
use crate::config::{ChangeKindArg, HistoryArgs, WatchArgs};
use crate::pb::kith::v1 as pb;

pub async fn watch(args: &WatchArgs) -> Result<u8, Failure> {
    let connection = Connection::open(&args.server).await?;
    let print = Printer::new(args.json);
    let mut stream = connection
        .changes()
        .watch(pb::WatchRequest {
            filter: Some(pb::ChangeFilter {
                kinds: args.kinds.iter().map(|k| change_kind(*k) as i32).collect(),
                ..Default::default()
            }),
            cursor: args.from.clone().unwrap_or_default(),
            max_changes: 0,
        })
        .await
        .map_err(|status| connection.failure(&status))?
        .into_inner();
    let mut cursor = args.from.clone();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let ended = loop {
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            message = stream.message() => match message {
                Ok(Some(message)) => {
                    let printed = message.changes.iter().try_for_each(|change| print.change(change));
                    match printed {
                        Ok(()) => cursor = Some(message.cursor),
                        // `kith watch | head`: the reader has what it wanted.
                        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break Ok(()),
                        Err(error) => break Err(Failure::usage(format!("cannot write: {error}"))),
                    }
                }
                Ok(None) => break Err(Failure::server("the server ended the stream")),
                Err(status) => break Err(connection.failure(&status)),
            },
        }
    };
    // Whatever ended the stream, the place to resume from.
    if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
        eprintln!("resume with: kith watch --from {cursor}");
    }
    ended.map(|()| 0)
}

pub async fn history(args: &HistoryArgs) -> Result<u8, Failure> {
    /// The largest page ListChanges serves.
    const PAGE_SIZE: i32 = 1000;
    let connection = Connection::open(&args.server).await?;
    let mut client = connection.changes();
    let print = Printer::new(args.json);
    let mut cursor = String::new();
    let mut printed = 0_usize;
    loop {
        let page = client
            .list_changes(pb::ListChangesRequest {
                filter: Some(pb::ChangeFilter {
                    kinds: vec![change_kind(args.kind) as i32],
                    record_id: args.id.clone(),
                    ..Default::default()
                }),
                cursor,
                page_size: PAGE_SIZE,
            })
            .await
            .map_err(|status| connection.failure(&status))?
            .into_inner();
        for change in &page.changes {
            match print.change(change) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                Err(error) => return Err(Failure::usage(format!("cannot write: {error}"))),
            }
        }
        printed += page.changes.len();
        // The last page is short; its cursor is only for polling.
        if page.changes.len() < PAGE_SIZE as usize {
            break;
        }
        cursor = page.next_cursor;
    }
    if printed == 0 {
        eprintln!("no changes are kept for that record");
    }
    Ok(0)
}

/// One line per change: its canonical JSON, or words.
struct Printer {
    json: Option<Codec>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self {
            json: json.then(|| Codec::new("kith.v1.Change", None, &[])),
        }
    }

    fn change(&self, change: &pb::Change) -> std::io::Result<()> {
        let line = match &self.json {
            Some(codec) => codec.to_json_line(change),
            None => describe(change),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush())
    }
}

/// `2026-12-02T07:01:02.123Z  #42  person created  0193…  (jane-1)  by key 0193…`
fn describe(change: &pb::Change) -> String {
    let at = change
        .committed_at
        .as_ref()
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        })
        .map_or_else(String::new, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    let kind = pb::ChangeKind::try_from(change.kind).map_or("unknown", |k| {
        k.as_str_name().trim_start_matches("CHANGE_KIND_")
    });
    let operation = pb::ChangeOperation::try_from(change.operation).map_or("unknown", |o| {
        o.as_str_name().trim_start_matches("CHANGE_OPERATION_")
    });
    let mut line = format!(
        "{at}  #{}  {} {}  {}",
        change.seq,
        kind.to_ascii_lowercase().replace('_', " "),
        operation.to_ascii_lowercase(),
        change.record_id
    );
    if let Some(external_id) = &change.external_id {
        line.push_str(&format!("  ({external_id})"));
    }
    if let Some(owner) = &change.owner_id {
        line.push_str(&format!("  of {owner}"));
    }
    line.push_str(&format!("  by key {}", change.api_key_id));
    line
}

fn change_kind(kind: ChangeKindArg) -> pb::ChangeKind {
    match kind {
        ChangeKindArg::Customer => pb::ChangeKind::Customer,
        ChangeKindArg::Entity => pb::ChangeKind::Entity,
        ChangeKindArg::EntityType => pb::ChangeKind::EntityType,
        ChangeKindArg::Person => pb::ChangeKind::Person,
        ChangeKindArg::User => pb::ChangeKind::User,
        ChangeKindArg::Company => pb::ChangeKind::Company,
        ChangeKindArg::Membership => pb::ChangeKind::Membership,
    }
}
