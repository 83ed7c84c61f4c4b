//! `kith export`: every record of a kind, page by page, written to
//! standard output as each page arrives (constant memory for any size), in
//! the format `kith import` reads back.

use std::future::Future;
use std::io::{BufWriter, Write};
use std::pin::Pin;

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

/// A list method's pages, one call each, until a page has no next token.
struct Pages<Fetch> {
    fetch: Fetch,
    /// The next page's token; `None` once the last page was fetched.
    token: Option<String>,
}

impl<Fetch, Page, T> Pages<Fetch>
where
    Fetch: FnMut(String) -> Page,
    Page: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    /// `fetch` gets a page token and returns its records and the next one.
    fn new(fetch: Fetch) -> Self {
        Self {
            fetch,
            token: Some(String::new()),
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<T>>, tonic::Status> {
        let Some(token) = self.token.take() else {
            return Ok(None);
        };
        let (records, next) = (self.fetch)(token).await?;
        self.token = (!next.is_empty()).then_some(next);
        Ok(Some(records))
    }

    /// Writes every record of every page.
    async fn write_all(mut self, out: &mut Output) -> Result<(), Ended>
    where
        T: prost::Message,
    {
        while let Some(records) = self.next().await? {
            for record in &records {
                out.write(record)?;
            }
        }
        Ok(())
    }
}

async fn people(
    connection: &Connection,
    query: Option<String>,
    out: &mut Output,
) -> Result<(), Ended> {
    let client = connection.people();
    let search = query.unwrap_or_default();
    Pages::new(|page_token| {
        let (mut client, search) = (client.clone(), search.clone());
        async move {
            let page = client
                .list_people(pb::ListPeopleRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    search,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.people, page.next_page_token))
        }
    })
    .write_all(out)
    .await
}

/// A page being fetched, boxed where its type must be named.
type Fetching<T> = Pin<Box<dyn Future<Output = Result<(Vec<T>, String), tonic::Status>> + Send>>;

/// Every customer, for the customers' export and the entities' owners.
fn customer_pages(connection: &Connection) -> Pages<impl FnMut(String) -> Fetching<pb::Customer>> {
    let client = connection.customers();
    Pages::new(move |page_token| -> Fetching<pb::Customer> {
        let mut client = client.clone();
        Box::pin(async move {
            let page = client
                .list_customers(pb::ListCustomersRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.customers, page.next_page_token))
        })
    })
}

async fn customers(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    customer_pages(connection).write_all(out).await
}

async fn users(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let client = connection.users();
    Pages::new(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_users(pb::ListUsersRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.users, page.next_page_token))
        }
    })
    .write_all(out)
    .await
}

/// Entities belong to customers with an external id: each one's entities,
/// archived ones included, customer by customer.
async fn entities(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let client = connection.entities();
    let mut owners = customer_pages(connection);
    while let Some(customers) = owners.next().await? {
        for owner in customers.into_iter().filter_map(|c| c.external_id) {
            Pages::new(|page_token| {
                let (mut client, owner) = (client.clone(), owner.clone());
                async move {
                    let page = client
                        .list_entities(pb::ListEntitiesRequest {
                            customer_external_id: owner,
                            page_size: PAGE_SIZE,
                            page_token,
                            include_archived: true,
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok((page.entities, page.next_page_token))
                }
            })
            .write_all(out)
            .await?;
        }
    }
    Ok(())
}

async fn entity_types(connection: &Connection, out: &mut Output) -> Result<(), Ended> {
    let client = connection.entities();
    Pages::new(|page_token| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_entity_types(pb::ListEntityTypesRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                })
                .await?
                .into_inner();
            Ok((page.types, page.next_page_token))
        }
    })
    .write_all(out)
    .await
}
