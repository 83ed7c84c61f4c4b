//! `kith.v1.ChangeService`.

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use super::caller_of;
use crate::domain::change::{ChangeBatchSize, ChangeCursor, ChangeFilter};
use crate::domain::{Caller, WorkspaceId};
use crate::error::{Error, FieldPath, Result};
use crate::pb::kith::v1::change_service_server::ChangeService;
use crate::pb::kith::v1::{
    self as pb, ListChangesRequest, ListChangesResponse, WatchRequest, WatchResponse,
};
use crate::pb::records::change_to_proto;
use crate::service::{ChangePage, Service};

pub struct ChangeApi {
    service: Service,
}

impl ChangeApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ChangeService for ChangeApi {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter = filter(request.filter)?;
        let from = cursor(&request.cursor, &caller)?;
        let size = ChangeBatchSize::parse(request.max_changes, "max_changes")?;
        // An expired cursor fails the call rather than the stream's first
        // message.
        if let Some(from) = from {
            self.service
                .list_changes(&caller, &filter, Some(from), ChangeBatchSize(1))
                .await?;
        }
        let workspace = caller.workspace;
        let stream = self
            .service
            .watch(caller, filter, from, size)
            .map(move |page| {
                page.and_then(|page| response(&page, workspace))
                    .map(|(changes, cursor)| WatchResponse { changes, cursor })
                    .map_err(Status::from)
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_changes(
        &self,
        request: Request<ListChangesRequest>,
    ) -> Result<Response<ListChangesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter = filter(request.filter)?;
        let after = cursor(&request.cursor, &caller)?;
        let size = ChangeBatchSize::parse(request.page_size, "page_size")?;
        let page = self
            .service
            .list_changes(&caller, &filter, after, size)
            .await?;
        let (changes, next_cursor) = response(&page, caller.workspace)?;
        Ok(Response::new(ListChangesResponse {
            changes,
            next_cursor,
        }))
    }
}

fn filter(filter: Option<pb::ChangeFilter>) -> Result<ChangeFilter> {
    let filter = filter.unwrap_or_default();
    let (kinds, unknown) =
        super::convert::change_kinds(&filter.kinds, &FieldPath::field("filter").then("kinds"));
    let parsed = ChangeFilter::parse(kinds, &filter.owner_id, &filter.record_id);
    Error::with_wire_violations(unknown, parsed)
}

/// The request's cursor; empty means none.
fn cursor(text: &str, caller: &Caller) -> Result<Option<ChangeCursor>> {
    if text.is_empty() {
        Ok(None)
    } else {
        ChangeCursor::parse(text, caller.workspace, "cursor").map(Some)
    }
}

fn response(page: &ChangePage, workspace: WorkspaceId) -> Result<(Vec<pb::Change>, String)> {
    let changes = page
        .changes
        .iter()
        .map(change_to_proto)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::internal)?;
    Ok((changes, page.next.encode(workspace)))
}
