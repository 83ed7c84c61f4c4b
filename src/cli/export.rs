//! `kith export`: every record of a kind, page by page, written to
//! standard output as each page arrives (constant memory for any size), in
//! the format `kith import` reads back.

use std::io::{BufWriter, Write};

use super::client::Connection;
use super::format::Codec;
use super::import::kind_name;
use super::{Failure, records};
use crate::config::{ExportArgs, FileFormat, RecordKind};
use crate::pb::kith::v1 as pb;

/// The largest page every list method serves.
const PAGE_SIZE: i32 = 100;

pub async fn run(args: &ExportArgs) -> Result<u8, Failure> {
    if args.query.is_some() && args.kind != RecordKind::People {
        return Err(Failure::usage("--query searches people only"));
    }
    let connection = Connection::open(&args.server).await?;
    let mut out = Output::new(args.format, records::codec(args.kind))?;
    let exported = match args.kind {
        RecordKind::People => people(&connection, args.query.clone(), &mut out).await,
        RecordKind::Customers => customers(&connection, &mut out).await,
        RecordKind::Users => users(&connection, &mut out).await,
        RecordKind::Entities => entities(&connection, &mut out).await,
        RecordKind::EntityTypes => entity_types(&connection, &mut out).await,
    };
    match exported.and_then(|()| out.finish()) {
        Ok(()) => {}
        // `kith export … | head`: the reader has all it wanted.
        Err(Ended::Closed) => return Ok(0),
        Err(Ended::Status(status)) => return Err(connection.failure(&status)),
        Err(Ended::Failed(failure)) => return Err(failure),
    }
    eprintln!("exported {} {}", out.records, kind_name(args.kind));
    Ok(0)
}

enum Ended {
    /// Standard output was closed.
    Closed,
    Status(tonic::Status),
    Failed(Failure),
}

impl From<tonic::Status> for Ended {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

/// Standard output, as JSONL or CSV with a header line.
struct Output {
    codec: Codec,
    sink: Sink,
    records: u64,
}

enum Sink {
    Jsonl(BufWriter<std::io::Stdout>),
    Csv(Box<csv::Writer<std::io::Stdout>>),
}

impl Output {
    fn new(format: FileFormat, codec: Codec) -> Result<Self, Failure> {
        let sink = match format {
            FileFormat::Jsonl => Sink::Jsonl(BufWriter::with_capacity(1 << 16, std::io::stdout())),
            FileFormat::Csv => {
                let mut writer = csv::Writer::from_writer(std::io::stdout());
                writer
                    .write_record(codec.csv_header())
                    .map_err(|e| Failure::usage(format!("cannot write: {e}")))?;
                Sink::Csv(Box::new(writer))
            }
        };
        Ok(Self {
            codec,
            sink,
            records: 0,
        })
    }

    fn write<R: prost::Message>(&mut self, record: &R) -> Result<(), Ended> {
        self.records += 1;
        let written = match &mut self.sink {
            Sink::Jsonl(out) => writeln!(out, "{}", self.codec.to_json_line(record)),
            Sink::Csv(out) => out
                .write_record(self.codec.to_csv(record))
                .map_err(|error| match error.into_kind() {
                    csv::ErrorKind::Io(error) => error,
                    other => std::io::Error::other(format!("{other:?}")),
                }),
        };
        written.map_err(io_ended)
    }

    fn finish(&mut self) -> Result<(), Ended> {
        match &mut self.sink {
            Sink::Jsonl(out) => out.flush(),
            Sink::Csv(out) => out.flush(),
        }
        .map_err(io_ended)
    }
}

fn io_ended(error: std::io::Error) -> Ended {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ended::Closed
    } else {
        Ended::Failed(Failure::usage(format!("cannot write: {error}")))
    }
}

async fn people(
    connection: &Connection,
    query: Option<String>,
    out: &mut Output,
) -> Result<(), Ended> {
    let mut client = connection.people();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_people(pb::ListPeopleRequest {
                page_size: PAGE_SIZE,
                page_token,
                search: query.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await?
            .into_inner();
        for person in &page.people {
            out.write(person)?;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

async fn customers(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let mut client = connection.customers();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_customers(pb::ListCustomersRequest {
                page_size: PAGE_SIZE,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for customer in &page.customers {
            out.write(customer)?;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

async fn users(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let mut client = connection.users();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_users(pb::ListUsersRequest {
                page_size: PAGE_SIZE,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for user in &page.users {
            out.write(user)?;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

/// Entities belong to customers with an external id: each one's entities,
/// archived ones included, customer by customer.
async fn entities(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let mut customers = connection.customers();
    let mut client = connection.entities();
    let mut customer_token = String::new();
    loop {
        let page = customers
            .list_customers(pb::ListCustomersRequest {
                page_size: PAGE_SIZE,
                page_token: customer_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for owner in page.customers.iter().filter_map(|c| c.external_id.clone()) {
            let mut page_token = String::new();
            loop {
                let entities = client
                    .list_entities(pb::ListEntitiesRequest {
                        customer_external_id: owner.clone(),
                        page_size: PAGE_SIZE,
                        page_token,
                        include_archived: true,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                for entity in &entities.entities {
                    out.write(entity)?;
                }
                if entities.next_page_token.is_empty() {
                    break;
                }
                page_token = entities.next_page_token;
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        customer_token = page.next_page_token;
    }
}

async fn entity_types(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let mut client = connection.entities();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_entity_types(pb::ListEntityTypesRequest {
                page_size: PAGE_SIZE,
                page_token,
            })
            .await?
            .into_inner();
        for entity_type in &page.types {
            out.write(entity_type)?;
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}
