//! Helpers for reading gRPC results in tests.

use std::collections::HashSet;

use kith::pb::kith::v1::change_service_client::ChangeServiceClient;
use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::{Change, ListChangesRequest, ListPeopleRequest};
use tonic::codegen::{Body, Bytes, StdError};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::harness::Bearer;
use tonic_types::StatusExt;

/// The whole change log, page by page, through any kind of client.
pub async fn whole_log<T>(changes: &mut ChangeServiceClient<T>) -> Vec<Change>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = changes
            .list_changes(ListChangesRequest {
                cursor: cursor.clone(),
                page_size: 1000,
                ..ListChangesRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        if page.changes.is_empty() {
            return all;
        }
        all.extend(page.changes);
        cursor = page.next_cursor;
    }
}

/// The code, the ErrorInfo reason and the BadRequest field paths of an error.
pub fn error_of<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String, Vec<String>) {
    let status = result.expect_err("the call should fail");
    let details = status.get_error_details();
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.domain, "kith");
    let fields = details
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default();
    (status.code(), info.reason.clone(), fields)
}

/// Asserts a call failed with `code` and exactly these field paths.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, fields: &[&str]) {
    let (actual_code, reason, actual_fields) = error_of(result);
    assert_eq!(
        actual_code, code,
        "reason {reason}, fields {actual_fields:?}"
    );
    let mut actual_fields = actual_fields;
    actual_fields.sort();
    let mut fields: Vec<_> = fields.iter().map(ToString::to_string).collect();
    fields.sort();
    assert_eq!(actual_fields, fields);
}

/// The external id of every person the key's workspace holds, page by page.
pub async fn stored_person_ids(channel: Channel, key: &str) -> HashSet<String> {
    let mut client = PeopleServiceClient::with_interceptor(channel, Bearer::new(Some(key)));
    let mut ids = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_people(ListPeopleRequest {
                page_size: 100,
                page_token,
                ..ListPeopleRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.people.into_iter().map(|p| p.external_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}
