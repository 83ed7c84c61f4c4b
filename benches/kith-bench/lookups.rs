//! The other reads beside `GetCustomer`: a person, a user with its keys and
//! company, and a page of customers, each at many calls in flight over one
//! connection, as `customers::get_by_id` measures `GetCustomer`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use tonic::transport::Channel;

use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::user_service_client::UserServiceClient;
use kith::pb::kith::v1::{
    BatchUpsertPeopleRequest, CompanyKeys, GetPersonRequest, GetUserRequest, PersonUpsert,
    UpsertUserRequest, get_person_request,
};

use crate::kith_process::{Bearer, Kith};
use crate::load::{Measured, closed_loop};

/// Users per company: each company thus has this many members.
const USERS_PER_COMPANY: usize = 10;

/// Stores `count` people and returns their ids.
pub async fn people(kith: &Kith, count: usize) -> anyhow::Result<Vec<String>> {
    let mut client = kith.people();
    let mut ids = Vec::with_capacity(count);
    let upserts: Vec<PersonUpsert> = (0..count)
        .map(|i| PersonUpsert {
            user_id: format!("lookup-person-{i}"),
            email: Some(format!("person-{i}@example.com")),
            ..PersonUpsert::default()
        })
        .collect();
    for batch in upserts.chunks(100) {
        let stored = client
            .batch_upsert_people(BatchUpsertPeopleRequest {
                people: batch.to_vec(),
            })
            .await?
            .into_inner();
        ids.extend(stored.people.into_iter().map(|person| person.id));
    }
    Ok(ids)
}

/// Stores `count` users, each with an email key and a member of one company
/// among `count / USERS_PER_COMPANY`, and returns their ids.
pub async fn users(kith: &Kith, count: usize) -> anyhow::Result<Vec<String>> {
    let mut client = UserServiceClient::with_interceptor(kith.channel.clone(), kith.bearer());
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let company = CompanyKeys {
            keys: HashMap::from([(
                "domain".to_owned(),
                format!("company-{}.example", i / USERS_PER_COMPANY),
            )]),
        };
        let user = client
            .upsert_user(UpsertUserRequest {
                keys: HashMap::from([("email".to_owned(), format!("user-{i}@example.com"))]),
                name: Some(format!("User {i}")),
                company: Some(company),
                ..UpsertUserRequest::default()
            })
            .await?
            .into_inner()
            .user
            .context("an upserted user")?;
        ids.push(user.id);
    }
    Ok(ids)
}

/// `calls` `GetPerson` by id, `in_flight` at once.
pub async fn get_person(
    channel: Channel,
    bearer: Bearer,
    ids: Arc<Vec<String>>,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let client = PeopleServiceClient::with_interceptor(channel, bearer);
    closed_loop(calls, in_flight, 1, move |i| {
        let (mut client, ids) = (client.clone(), ids.clone());
        async move {
            let lookup = get_person_request::Lookup::Id(ids[i % ids.len()].clone());
            client
                .get_person(GetPersonRequest {
                    lookup: Some(lookup),
                })
                .await?;
            Ok(())
        }
    })
    .await
}

/// `calls` `GetUser` by id (keys, memberships and companies), `in_flight`
/// at once.
pub async fn get_user(
    channel: Channel,
    bearer: Bearer,
    ids: Arc<Vec<String>>,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let client = UserServiceClient::with_interceptor(channel, bearer);
    closed_loop(calls, in_flight, 1, move |i| {
        let (mut client, ids) = (client.clone(), ids.clone());
        async move {
            let id = ids[i % ids.len()].clone();
            client.get_user(GetUserRequest { id }).await?;
            Ok(())
        }
    })
    .await
}

/// `calls` fetches of the first page of `page_size` customers (members
/// included), `in_flight` at once.
pub async fn list_customers(
    kith: &Kith,
    page_size: i32,
    calls: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let client = kith.customers();
    closed_loop(calls, in_flight, 1, move |_| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_customers(kith::pb::kith::v1::ListCustomersRequest {
                    page_size,
                    ..Default::default()
                })
                .await?
                .into_inner();
            anyhow::ensure!(
                page.customers.len() == usize::try_from(page_size)?,
                "a full page"
            );
            Ok(())
        }
    })
    .await
}
