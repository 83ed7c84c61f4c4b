//! PeopleService over the wire: the seed 002 batch, matching and counts,
//! validation with field paths, tenancy, a 16-way race and a streaming
//! import of 100 000 people.

use kith::pb::kith::v1::people_service_client::PeopleServiceClient;
use kith::pb::kith::v1::{
    self as pb, BatchUpsertPeopleRequest, DeletePersonRequest, GetPersonRequest,
    ImportPeopleRequest, ListPeopleRequest, PersonStatus, PersonUpsert, UpdatePersonRequest,
    UpsertPersonRequest, get_person_request,
};
use prost_types::{FieldMask, Struct, Value, value::Kind};
use tonic::Code;

use crate::grpc_support::{assert_error, error_of};
use crate::harness::{Authed, Backend, TestApp, backend_tests, require};

backend_tests!(
    the_seed_batch_creates_then_updates_with_counts,
    people_match_by_external_id_then_email,
    an_email_owned_by_another_person_is_a_conflict,
    every_field_rule_names_its_path,
    batches_are_whole_and_reject_duplicates,
    single_upserts_get_update_list_and_delete,
    another_workspace_sees_no_people,
    sixteen_racing_batches_count_exactly,
    importing_100_000_people_streams_in_batches,
    an_import_applies_people_in_stream_order,
    batches_and_updates_of_the_same_people_never_lose_writes,
);

type Client = PeopleServiceClient<Authed>;

fn client(app: &TestApp) -> Client {
    app.people()
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn traits(pairs: &[(&str, Value)]) -> Option<Struct> {
    Some(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    })
}

fn person(user_id: &str, email: Option<&str>) -> PersonUpsert {
    PersonUpsert {
        user_id: user_id.to_owned(),
        email: email.map(str::to_owned),
        ..PersonUpsert::default()
    }
}

async fn batch(
    client: &mut Client,
    people: Vec<PersonUpsert>,
) -> Result<pb::BatchUpsertPeopleResponse, tonic::Status> {
    client
        .batch_upsert_people(BatchUpsertPeopleRequest { people })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_external(client: &mut Client, id: &str) -> Result<pb::Person, tonic::Status> {
    client
        .get_person(GetPersonRequest {
            lookup: Some(get_person_request::Lookup::ExternalId(id.to_owned())),
        })
        .await
        .map(|r| r.into_inner().person.unwrap())
}

async fn count_all(client: &mut Client) -> usize {
    let mut total = 0;
    let mut token = String::new();
    loop {
        let page = client
            .list_people(ListPeopleRequest {
                page_size: 100,
                page_token: token,
                ..ListPeopleRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        total += page.people.len();
        if page.next_page_token.is_empty() {
            return total;
        }
        token = page.next_page_token;
    }
}

async fn the_seed_batch_creates_then_updates_with_counts(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let seed = PersonUpsert {
        traits: traits(&[
            ("first_name", string("John Doe")),
            ("last_name", string("John Doe")),
            ("phone", string("+1-555-0123")),
            ("avatar_url", string("example_string")),
            ("timezone", string("America/New_York")),
            ("locale", string("en-US")),
            ("plan", string("pro")),
        ]),
        ..person("example_string", Some("user@example.com"))
    };
    let first = batch(&mut client, vec![seed.clone()]).await.unwrap();
    assert_eq!((first.created_count, first.updated_count), (1, 0));
    let created = &first.people[0];
    assert_eq!(created.external_id, "example_string");
    assert_eq!(created.email.as_deref(), Some("user@example.com"));
    assert_eq!(created.first_name.as_deref(), Some("John Doe"));
    assert_eq!(created.phone.as_deref(), Some("+1-555-0123"));
    assert_eq!(created.timezone.as_deref(), Some("America/New_York"));
    assert_eq!(created.status, PersonStatus::Active as i32);
    assert_eq!(
        created.attributes,
        traits(&[("plan", string("pro"))]),
        "unknown traits become attributes"
    );
    assert_eq!(created.first_seen_at, created.created_at);
    assert_eq!(created.workspace_id.len(), 36);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = PersonUpsert {
        traits: traits(&[
            (
                "seats",
                Value {
                    kind: Some(Kind::NumberValue(3.0)),
                },
            ),
            (
                "first_name",
                Value {
                    kind: Some(Kind::NullValue(0)),
                },
            ),
        ]),
        ..person("example_string", None)
    };
    let second = batch(&mut client, vec![again]).await.unwrap();
    assert_eq!((second.created_count, second.updated_count), (0, 1));
    let updated = &second.people[0];
    assert_eq!(updated.id, created.id);
    assert_eq!(
        updated.first_seen_at, created.first_seen_at,
        "first seen is kept"
    );
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(
        seconds(&updated.last_seen_at) > seconds(&created.last_seen_at),
        "last seen moves"
    );
    assert!(
        seconds(&updated.updated_at) > seconds(&created.updated_at),
        "updated moves"
    );
    assert_eq!(updated.first_name, None, "a null known trait clears it");
    assert_eq!(
        updated.email.as_deref(),
        Some("user@example.com"),
        "an omitted email is kept"
    );
    assert_eq!(
        updated.attributes,
        traits(&[
            ("plan", string("pro")),
            (
                "seats",
                Value {
                    kind: Some(Kind::NumberValue(3.0))
                }
            )
        ]),
        "attributes merge key by key"
    );
}

async fn people_match_by_external_id_then_email(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let created = batch(&mut client, vec![person("u1", Some("a@example.com"))])
        .await
        .unwrap()
        .people
        .remove(0);
    let by_email = batch(
        &mut client,
        vec![person("u1-renamed", Some("A@EXAMPLE.COM"))],
    )
    .await
    .unwrap();
    assert_eq!((by_email.created_count, by_email.updated_count), (0, 1));
    assert_eq!(by_email.people[0].id, created.id, "matched by email");
    assert_eq!(by_email.people[0].external_id, "u1-renamed");
    let fresh = batch(&mut client, vec![person("u2", Some("b@example.com"))])
        .await
        .unwrap();
    assert_eq!((fresh.created_count, fresh.updated_count), (1, 0));
    assert_eq!(count_all(&mut client).await, 2);
}

async fn an_email_owned_by_another_person_is_a_conflict(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    batch(
        &mut client,
        vec![
            person("u1", Some("a@example.com")),
            person("u2", Some("b@example.com")),
        ],
    )
    .await
    .unwrap();
    let (code, reason, fields) = error_of(
        batch(
            &mut client,
            vec![
                person("u3", Some("c@example.com")),
                person("u1", Some("b@example.com")),
            ],
        )
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::AlreadyExists, "ERROR_REASON_ALREADY_EXISTS")
    );
    assert_eq!(fields, ["people[1].email"]);
    assert_eq!(count_all(&mut client).await, 2, "u3 was not written either");
    assert_eq!(
        get_external(&mut client, "u1")
            .await
            .unwrap()
            .email
            .as_deref(),
        Some("a@example.com")
    );
}

async fn every_field_rule_names_its_path(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let bad = |traits_: Option<Struct>, user_id: &str, email: Option<&str>| PersonUpsert {
        traits: traits_,
        ..person(user_id, email)
    };
    let (code, _, mut fields) = error_of(
        batch(
            &mut client,
            vec![
                bad(None, "", Some("ok@example.com")),
                bad(None, &"u".repeat(256), None),
                bad(None, "u2", Some("not-an-email")),
                bad(traits(&[("phone", string(&"1".repeat(51)))]), "u3", None),
                bad(traits(&[("timezone", string("Mars/Olympus"))]), "u4", None),
                bad(traits(&[("locale", string("not a tag"))]), "u5", None),
                bad(
                    traits(&[(
                        "first_name",
                        Value {
                            kind: Some(Kind::NumberValue(1.0)),
                        },
                    )]),
                    "u6",
                    None,
                ),
            ],
        )
        .await,
    );
    fields.sort();
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        fields,
        [
            "people[0].user_id",
            "people[1].user_id",
            "people[2].email",
            "people[3].traits.phone",
            "people[4].traits.timezone",
            "people[5].traits.locale",
            "people[6].traits.first_name",
        ]
    );
    assert_eq!(count_all(&mut client).await, 0);
}

async fn batches_are_whole_and_reject_duplicates(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let many = |n: usize| {
        (0..n)
            .map(|i| person(&format!("u{i}"), Some(&format!("u{i}@example.com"))))
            .collect::<Vec<_>>()
    };
    assert_error(
        batch(&mut client, many(101)).await,
        Code::InvalidArgument,
        &["people"],
    );
    assert_error(
        batch(&mut client, Vec::new()).await,
        Code::InvalidArgument,
        &["people"],
    );
    let mut twice = many(5);
    twice[4].user_id = "u1".into();
    assert_error(
        batch(&mut client, twice).await,
        Code::InvalidArgument,
        &["people[1].user_id", "people[4].user_id"],
    );
    let mut same_email = many(5);
    same_email[3].email = Some("U0@example.com".into());
    assert_error(
        batch(&mut client, same_email).await,
        Code::InvalidArgument,
        &["people[0].email", "people[3].email"],
    );
    assert_eq!(count_all(&mut client).await, 0);
    let full = batch(&mut client, many(100)).await.unwrap();
    assert_eq!(
        (full.created_count, full.updated_count, full.people.len()),
        (100, 0, 100)
    );
}

async fn single_upserts_get_update_list_and_delete(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let upserted = client
        .upsert_person(UpsertPersonRequest {
            person: Some(PersonUpsert {
                traits: traits(&[
                    ("first_name", string("Grace")),
                    ("last_name", string("Hopper")),
                ]),
                ..person("g1", Some("grace@navy.mil"))
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(upserted.created);
    let grace = upserted.person.unwrap();
    let bad = client
        .upsert_person(UpsertPersonRequest {
            person: Some(person("g2", Some("bad"))),
        })
        .await;
    assert_error(bad, Code::InvalidArgument, &["person.email"]);
    client
        .upsert_person(UpsertPersonRequest {
            person: Some(person("a1", Some("alan@example.com"))),
        })
        .await
        .unwrap();

    for lookup in [
        get_person_request::Lookup::Id(grace.id.clone()),
        get_person_request::Lookup::ExternalId("g1".into()),
        get_person_request::Lookup::Email("GRACE@navy.mil".into()),
    ] {
        let found = client
            .get_person(GetPersonRequest {
                lookup: Some(lookup),
            })
            .await
            .unwrap()
            .into_inner()
            .person
            .unwrap();
        assert_eq!(found, grace);
    }

    let updated = client
        .update_person(UpdatePersonRequest {
            lookup: Some(pb::update_person_request::Lookup::ExternalId("g1".into())),
            person: Some(pb::Person {
                status: PersonStatus::Unsubscribed.into(),
                timezone: Some("Europe/Paris".into()),
                ..pb::Person::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into(), "timezone".into(), "last_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap();
    assert_eq!(updated.status, PersonStatus::Unsubscribed as i32);
    assert_eq!(updated.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(updated.last_name, None, "named and unset: cleared");
    assert_eq!(
        updated.first_name.as_deref(),
        Some("Grace"),
        "not named: kept"
    );
    let taken = client
        .update_person(UpdatePersonRequest {
            lookup: Some(pb::update_person_request::Lookup::ExternalId("g1".into())),
            person: Some(pb::Person {
                email: Some("alan@example.com".into()),
                ..pb::Person::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await;
    assert_error(taken, Code::AlreadyExists, &["email"]);

    let list = |status: PersonStatus, search: &str| ListPeopleRequest {
        status: status.into(),
        search: search.to_owned(),
        ..ListPeopleRequest::default()
    };
    let unsubscribed = client
        .list_people(list(PersonStatus::Unsubscribed, ""))
        .await
        .unwrap()
        .into_inner()
        .people;
    assert_eq!(
        unsubscribed
            .iter()
            .map(|p| p.external_id.as_str())
            .collect::<Vec<_>>(),
        ["g1"]
    );
    let hopper = client
        .list_people(list(PersonStatus::Unspecified, "GRACE"))
        .await
        .unwrap()
        .into_inner()
        .people;
    assert_eq!(hopper.len(), 1);
    let by_email = client
        .list_people(list(PersonStatus::Unspecified, "alan@"))
        .await
        .unwrap()
        .into_inner()
        .people;
    assert_eq!(by_email[0].external_id, "a1");
    let literal = client
        .list_people(list(PersonStatus::Unspecified, "%"))
        .await
        .unwrap()
        .into_inner()
        .people;
    assert!(literal.is_empty(), "search text is literal, not a pattern");

    let deleted = client
        .delete_person(DeletePersonRequest {
            lookup: Some(pb::delete_person_request::Lookup::Id(grace.id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap();
    assert_eq!(deleted.id, grace.id);
    assert_error(get_external(&mut client, "g1").await, Code::NotFound, &[]);
}

async fn another_workspace_sees_no_people(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut mine = client(&app);
    let created = batch(&mut mine, vec![person("u1", Some("a@example.com"))])
        .await
        .unwrap()
        .people
        .remove(0);
    let key = app.other_workspace_key().await;
    let mut theirs = app.people_with(Some(&key));
    assert_error(get_external(&mut theirs, "u1").await, Code::NotFound, &[]);
    let by_id = theirs
        .get_person(GetPersonRequest {
            lookup: Some(get_person_request::Lookup::Id(created.id.clone())),
        })
        .await;
    assert_error(by_id, Code::NotFound, &[]);
    let deleted = theirs
        .delete_person(DeletePersonRequest {
            lookup: Some(pb::delete_person_request::Lookup::Id(created.id.clone())),
        })
        .await;
    assert_error(deleted, Code::NotFound, &[]);
    let updated = theirs
        .update_person(UpdatePersonRequest {
            lookup: Some(pb::update_person_request::Lookup::Id(created.id.clone())),
            person: Some(pb::Person {
                first_name: Some("hijack".into()),
                ..pb::Person::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["first_name".into()],
            }),
        })
        .await;
    assert_error(updated, Code::NotFound, &[]);
    assert_eq!(count_all(&mut theirs).await, 0);
    // The same user id and email are a new person in the other workspace.
    let theirs_created = batch(&mut theirs, vec![person("u1", Some("a@example.com"))])
        .await
        .unwrap();
    assert_eq!(theirs_created.created_count, 1);
    assert_eq!(get_external(&mut mine, "u1").await.unwrap(), created);
}

async fn sixteen_racing_batches_count_exactly(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let handles: Vec<_> = (0..16)
        .map(|caller| {
            let mut client = client(&app);
            tokio::spawn(async move {
                let people = (caller * 5..caller * 5 + 20)
                    .map(|i| person(&format!("u{i}"), Some(&format!("u{i}@example.com"))))
                    .collect();
                batch(&mut client, people).await
            })
        })
        .collect();
    let (mut created, mut updated) = (0, 0);
    for handle in handles {
        let reply = handle.await.unwrap().expect("every racing batch succeeds");
        created += reply.created_count;
        updated += reply.updated_count;
    }
    let stored = count_all(&mut client(&app)).await;
    assert_eq!(stored, 95, "u0..u94");
    assert_eq!(
        usize::try_from(created).unwrap(),
        stored,
        "each person was created exactly once"
    );
    assert_eq!(created + updated, 16 * 20);
}

async fn importing_100_000_people_streams_in_batches(backend: Backend) {
    const TOTAL: usize = 100_000;
    const CHUNK: usize = 1_000;
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    batch(&mut client, vec![person("p7", Some("old@example.com"))])
        .await
        .unwrap();

    let generated = |i: usize| -> PersonUpsert {
        match i {
            // Invalid: rejected on their own.
            13 => person("", None),
            4242 => person("p4242", Some("broken")),
            // p1 again, with p2's email: a conflict, rejected on its own.
            77_777 => person("p1", Some("p2@example.com")),
            _ => PersonUpsert {
                traits: traits(&[
                    ("first_name", string(&format!("Person {i}"))),
                    ("cohort", string(&(i % 7).to_string())),
                ]),
                ..person(&format!("p{i}"), Some(&format!("p{i}@example.com")))
            },
        }
    };
    let chunks: Vec<ImportPeopleRequest> = (0..TOTAL / CHUNK)
        .map(|c| ImportPeopleRequest {
            people: (c * CHUNK..(c + 1) * CHUNK).map(generated).collect(),
        })
        .collect();
    let reply = client
        .import_people(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.received_count, 100_000);
    assert_eq!(reply.rejected_count, 3);
    assert_eq!(reply.updated_count, 1, "p7 existed");
    assert_eq!(reply.created_count, 100_000 - 3 - 1);
    let positions: Vec<_> = reply
        .rejections
        .iter()
        .map(|r| (r.position, r.field.as_str()))
        .collect();
    assert_eq!(
        positions,
        [(13, "user_id"), (4242, "email"), (77_777, "email")]
    );

    for i in [0, 7, 999, 1_000, 54_321, 99_999] {
        let stored = get_external(&mut client, &format!("p{i}")).await.unwrap();
        assert_eq!(stored.email, Some(format!("p{i}@example.com")));
        assert_eq!(stored.first_name, Some(format!("Person {i}")));
        assert_eq!(
            stored.attributes,
            traits(&[("cohort", string(&(i % 7).to_string()))])
        );
    }
    assert_error(
        get_external(&mut client, "p77777").await,
        Code::NotFound,
        &[],
    );
    let p1 = get_external(&mut client, "p1").await.unwrap();
    assert_eq!(
        p1.email.as_deref(),
        Some("p1@example.com"),
        "the conflicting row changed nothing"
    );
}

/// Batches are written several at a time, yet the outcome is the stream
/// order's: a later mention of a person wins, and a batch that takes an
/// email an earlier batch frees sees it freed.
async fn an_import_applies_people_in_stream_order(backend: Backend) {
    const TOTAL: usize = 4_000;
    let app = require!(TestApp::spawn(backend).await);
    let mut client = client(&app);
    let stored = batch(
        &mut client,
        vec![person("moved", Some("shared@example.com"))],
    )
    .await
    .unwrap()
    .people
    .remove(0);

    let named = |i: usize, first_name: &str| PersonUpsert {
        traits: traits(&[("first_name", string(first_name))]),
        ..person(&format!("p{i}"), Some(&format!("p{i}@example.com")))
    };
    let generated = |i: usize| -> PersonUpsert {
        match i {
            // `moved` gives up its email in the first batch of 500 …
            10 => person("moved", Some("moved@example.com")),
            // … which a new person takes in the second.
            600 => person("taker", Some("shared@example.com")),
            // p5 named in the first batch and again in the last.
            5 => named(5, "First"),
            3_900 => named(5, "Last"),
            _ => named(i, "Filler"),
        }
    };
    let chunks: Vec<ImportPeopleRequest> = (0..TOTAL / 100)
        .map(|c| ImportPeopleRequest {
            people: (c * 100..(c + 1) * 100).map(generated).collect(),
        })
        .collect();
    let reply = client
        .import_people(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.rejected_count, 0, "{:?}", reply.rejections);
    assert_eq!((reply.created_count, reply.updated_count), (3_998, 2));

    let moved = get_external(&mut client, "moved").await.unwrap();
    assert_eq!(
        moved.id, stored.id,
        "matched by external id, not re-created"
    );
    assert_eq!(moved.email.as_deref(), Some("moved@example.com"));
    let taker = get_external(&mut client, "taker").await.unwrap();
    assert_ne!(taker.id, stored.id, "the freed email went to a new person");
    assert_eq!(taker.email.as_deref(), Some("shared@example.com"));
    let p5 = get_external(&mut client, "p5").await.unwrap();
    assert_eq!(p5.first_name.as_deref(), Some("Last"));
}

/// Batches racing single updates of the same people: every call succeeds
/// and no write is lost (a batch reads the rows it rewrites under lock).
async fn batches_and_updates_of_the_same_people_never_lose_writes(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut setup = client(&app);
    let people: Vec<_> = (0..20)
        .map(|i| person(&format!("u{i}"), Some(&format!("u{i}@example.com"))))
        .collect();
    batch(&mut setup, people).await.unwrap();

    let mut handles = Vec::new();
    for caller in 0..8 {
        let mut client = client(&app);
        handles.push(tokio::spawn(async move {
            let items = (0..20)
                .map(|i| {
                    let name = format!("by{caller}");
                    PersonUpsert {
                        traits: traits(&[(name.as_str(), string("1"))]),
                        ..person(&format!("u{i}"), None)
                    }
                })
                .collect();
            batch(&mut client, items).await.map(|_| ())
        }));
    }
    for i in 0..4 {
        let mut client = client(&app);
        handles.push(tokio::spawn(async move {
            client
                .update_person(UpdatePersonRequest {
                    lookup: Some(pb::update_person_request::Lookup::ExternalId(format!(
                        "u{i}"
                    ))),
                    person: Some(pb::Person {
                        last_name: Some("Updated".into()),
                        ..pb::Person::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["last_name".into()],
                    }),
                })
                .await
                .map(|_| ())
        }));
    }
    for handle in handles {
        handle.await.unwrap().expect("every writer succeeds");
    }
    let mut check = client(&app);
    for i in 0..20 {
        let stored = get_external(&mut check, &format!("u{i}")).await.unwrap();
        let fields = &stored.attributes.unwrap().fields;
        assert_eq!(
            fields.len(),
            8,
            "u{i} keeps every caller's trait: {fields:?}"
        );
        if i < 4 {
            assert_eq!(
                stored.last_name.as_deref(),
                Some("Updated"),
                "u{i} keeps the update"
            );
        }
    }
    assert_eq!(count_all(&mut check).await, 20, "nobody was created twice");
}
