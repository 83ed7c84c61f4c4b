//! UserService and customer members over the wire: the seed 001 upsert by
//! keys, traits, memberships, companies as customers, members in seed 003's
//! shape, tenancy and two 32-way races.

use std::collections::HashMap;

use kith::pb::kith::v1::customer_service_client::CustomerServiceClient;
use kith::pb::kith::v1::user_service_client::UserServiceClient;
use kith::pb::kith::v1::{
    self as pb, AddCustomerMemberRequest, CompanyKeys, DeleteCompanyMembershipRequest,
    DeleteCompanyRequest, DeleteUserRequest, GetCompanyRequest, GetCustomerRequest,
    GetOrCreateCompanyMembershipRequest, ListCompanyMembershipsRequest, ListCustomerMembersRequest,
    ListUsersRequest, LookupCompanyRequest, LookupUserRequest, MemberRole,
    RemoveCustomerMemberRequest, UpdateCustomerMemberRequest, UpsertCompanyRequest,
    UpsertCompanyTraitRequest, UpsertUserRequest, UpsertUserTraitRequest, get_customer_request,
    upsert_user_trait_request,
};
use prost_types::{Struct, Value, value::Kind};
use tonic::Code;

use crate::grpc_support::{assert_error, error_of};
use crate::harness::{Authed, Backend, TestApp, backend_tests, require};

backend_tests!(
    the_seed_user_is_created_with_keys_traits_and_company,
    users_resolve_by_id_or_any_key_and_gain_keys,
    keys_of_two_users_are_an_error_never_a_merge,
    update_only_never_creates,
    company_fields_add_one_and_lists_replace_all,
    traits_increment_and_set_atomically,
    thirty_two_racing_upserts_of_one_new_user_make_one_user,
    thirty_two_racing_increments_add_up,
    companies_are_customers,
    memberships_are_got_or_created_listed_and_deleted,
    customer_members_show_the_users,
    customer_members_come_in_pages,
    companies_are_got_by_id,
    bad_fields_are_named,
    users_and_companies_are_deleted_by_keys,
    another_workspace_sees_no_users_or_companies,
    thirty_two_users_racing_into_one_new_company_by_external_id,
);

type Users = UserServiceClient<Authed>;

fn users(app: &TestApp) -> Users {
    app.users()
}

fn keys(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn traits(pairs: &[(&str, Kind)]) -> Option<Struct> {
    Some(Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    Value {
                        kind: Some(v.clone()),
                    },
                )
            })
            .collect(),
    })
}

fn by_keys(pairs: &[(&str, &str)]) -> UpsertUserRequest {
    UpsertUserRequest {
        keys: keys(pairs),
        ..UpsertUserRequest::default()
    }
}

async fn upsert(
    client: &mut Users,
    request: UpsertUserRequest,
) -> Result<(pb::User, bool), tonic::Status> {
    client.upsert_user(request).await.map(|r| {
        let r = r.into_inner();
        (r.user.unwrap(), r.created)
    })
}

fn trait_of(user: &pb::User, name: &str) -> Option<Kind> {
    user.traits.as_ref()?.fields.get(name)?.kind.clone()
}

async fn the_seed_user_is_created_with_keys_traits_and_company(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (user, created) = upsert(
        &mut client,
        UpsertUserRequest {
            name: Some("Jane Doe".into()),
            traits: traits(&[
                ("is_admin", Kind::BoolValue(true)),
                ("seats", Kind::NumberValue(3.0)),
            ]),
            company: Some(CompanyKeys {
                keys: keys(&[("domain", "acme.com")]),
            }),
            ..by_keys(&[("email", "jane.doe@example.com")])
        },
    )
    .await
    .unwrap();
    assert!(created);
    assert_eq!(user.name, "Jane Doe");
    assert_eq!(user.keys, keys(&[("email", "jane.doe@example.com")]));
    assert_eq!(trait_of(&user, "is_admin"), Some(Kind::BoolValue(true)));
    assert_eq!(user.company_memberships.len(), 1);
    let membership = &user.company_memberships[0];
    let company = membership.company.as_ref().unwrap();
    assert_eq!(
        company.keys,
        keys(&[("domain", "acme.com")]),
        "the unknown company was created"
    );
    assert_eq!(membership.company_id, company.id);
    assert_eq!(membership.user_id, user.id);
    assert_eq!(membership.role, MemberRole::Member as i32);
}

async fn users_resolve_by_id_or_any_key_and_gain_keys(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (jane, _) = upsert(&mut client, by_keys(&[("email", "jane@example.com")]))
        .await
        .unwrap();
    // Any matching key finds her; a key she lacks is added.
    let (again, created) = upsert(
        &mut client,
        by_keys(&[("email", "jane@example.com"), ("user_id", "u-1")]),
    )
    .await
    .unwrap();
    assert!(!created);
    assert_eq!(again.id, jane.id);
    assert_eq!(
        again.keys,
        keys(&[("email", "jane@example.com"), ("user_id", "u-1")])
    );
    // A key with a new value is re-pointed.
    let (repointed, _) = upsert(
        &mut client,
        by_keys(&[("user_id", "u-1"), ("email", "jane@new.example.com")]),
    )
    .await
    .unwrap();
    assert_eq!(repointed.id, jane.id);
    assert_eq!(repointed.keys["email"], "jane@new.example.com");
    // By id, with a new key.
    let (by_id, _) = upsert(
        &mut client,
        UpsertUserRequest {
            id: Some(jane.id.clone()),
            ..by_keys(&[("stripe", "cus_1")])
        },
    )
    .await
    .unwrap();
    assert_eq!(by_id.keys.len(), 3);
    let looked_up = client
        .lookup_user(LookupUserRequest {
            keys: keys(&[("stripe", "cus_1")]),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(looked_up.id, jane.id);
    let traits_merged = upsert(
        &mut client,
        UpsertUserRequest {
            traits: traits(&[("plan", Kind::StringValue("pro".into()))]),
            ..by_keys(&[("stripe", "cus_1")])
        },
    )
    .await
    .unwrap()
    .0;
    let more = upsert(
        &mut client,
        UpsertUserRequest {
            traits: traits(&[("seats", Kind::NumberValue(2.0))]),
            ..by_keys(&[("stripe", "cus_1")])
        },
    )
    .await
    .unwrap()
    .0;
    assert_eq!(
        trait_of(&traits_merged, "plan"),
        trait_of(&more, "plan"),
        "traits merge key by key"
    );
    assert_eq!(trait_of(&more, "seats"), Some(Kind::NumberValue(2.0)));
    let missing = upsert(
        &mut client,
        UpsertUserRequest {
            id: Some(uuid::Uuid::new_v4().to_string()),
            ..UpsertUserRequest::default()
        },
    )
    .await;
    assert_error(missing, Code::NotFound, &[]);
}

async fn keys_of_two_users_are_an_error_never_a_merge(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (a, _) = upsert(&mut client, by_keys(&[("email", "a@example.com")]))
        .await
        .unwrap();
    let (b, _) = upsert(
        &mut client,
        by_keys(&[("email", "b@example.com"), ("user_id", "b")]),
    )
    .await
    .unwrap();
    let (code, reason, fields) = error_of(
        upsert(
            &mut client,
            by_keys(&[("email", "a@example.com"), ("user_id", "b")]),
        )
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "ERROR_REASON_INVALID_FIELD")
    );
    assert_eq!(fields, ["keys"]);
    let with_id = upsert(
        &mut client,
        UpsertUserRequest {
            id: Some(a.id.clone()),
            ..by_keys(&[("user_id", "b")])
        },
    )
    .await;
    assert_error(with_id, Code::InvalidArgument, &["keys.user_id"]);
    let listed = client
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(listed.len(), 2);
    let b_now = listed.iter().find(|u| u.id == b.id).unwrap();
    assert_eq!(b_now.keys, b.keys, "nothing moved");
}

async fn update_only_never_creates(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let missing = upsert(
        &mut client,
        UpsertUserRequest {
            update_only: true,
            ..by_keys(&[("email", "x@example.com")])
        },
    )
    .await;
    assert_error(missing, Code::NotFound, &[]);
    assert!(
        client
            .list_users(ListUsersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .users
            .is_empty()
    );
    upsert(&mut client, by_keys(&[("email", "x@example.com")]))
        .await
        .unwrap();
    let (updated, created) = upsert(
        &mut client,
        UpsertUserRequest {
            update_only: true,
            name: Some("X".into()),
            ..by_keys(&[("email", "x@example.com")])
        },
    )
    .await
    .unwrap();
    assert!(!created);
    assert_eq!(updated.name, "X");
}

async fn company_fields_add_one_and_lists_replace_all(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let company = |domain: &str| CompanyKeys {
        keys: keys(&[("domain", domain)]),
    };
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            companies: vec![company("a.com"), company("b.com")],
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert_eq!(user.company_memberships.len(), 2);
    let domains = |user: &pb::User| {
        let mut d: Vec<_> = user
            .company_memberships
            .iter()
            .map(|m| m.company.as_ref().unwrap().keys["domain"].clone())
            .collect();
        d.sort();
        d
    };
    // `company` adds one and wins over the list.
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            company: Some(company("c.com")),
            companies: vec![company("z.com")],
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert_eq!(domains(&user), ["a.com", "b.com", "c.com"]);
    // The list replaces every membership.
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            companies: vec![company("b.com")],
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert_eq!(domains(&user), ["b.com"]);
    let b_id = user.company_memberships[0].company_id.clone();
    // By id: company_id adds, company_ids replaces; an explicit empty list clears.
    let c_id = client
        .lookup_company(LookupCompanyRequest {
            keys: keys(&[("domain", "c.com")]),
        })
        .await
        .unwrap()
        .into_inner()
        .company
        .unwrap()
        .id;
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            company_id: Some(c_id.clone()),
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert_eq!(domains(&user), ["b.com", "c.com"]);
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            company_ids: vec![b_id],
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert_eq!(domains(&user), ["b.com"]);
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            replace_companies: true,
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await
    .unwrap();
    assert!(user.company_memberships.is_empty());
    let unknown = upsert(
        &mut client,
        UpsertUserRequest {
            company_id: Some(uuid::Uuid::new_v4().to_string()),
            ..by_keys(&[("email", "u@example.com")])
        },
    )
    .await;
    assert_error(unknown, Code::NotFound, &[]);
}

async fn traits_increment_and_set_atomically(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let change = |change, update_only| UpsertUserTraitRequest {
        keys: keys(&[("email", "t@example.com")]),
        r#trait: "seats".into(),
        change: Some(change),
        update_only,
    };
    let missing = client
        .upsert_user_trait(change(upsert_user_trait_request::Change::Incr(1), true))
        .await;
    assert_error(missing, Code::NotFound, &[]);
    let user = client
        .upsert_user_trait(change(upsert_user_trait_request::Change::Incr(5), false))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(trait_of(&user, "seats"), Some(Kind::NumberValue(5.0)));
    let user = client
        .upsert_user_trait(change(upsert_user_trait_request::Change::Incr(-7), false))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(trait_of(&user, "seats"), Some(Kind::NumberValue(-2.0)));
    let user = client
        .upsert_user_trait(change(
            upsert_user_trait_request::Change::Set("many".into()),
            false,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        trait_of(&user, "seats"),
        Some(Kind::StringValue("many".into()))
    );
    let not_integer = client
        .upsert_user_trait(change(upsert_user_trait_request::Change::Incr(1), false))
        .await;
    assert_error(not_integer, Code::InvalidArgument, &["trait"]);
    let too_long = client
        .upsert_user_trait(change(
            upsert_user_trait_request::Change::Set("x".repeat(1025)),
            false,
        ))
        .await;
    assert_error(too_long, Code::InvalidArgument, &["set"]);
    let long_name = UpsertUserTraitRequest {
        r#trait: "t".repeat(256),
        ..change(upsert_user_trait_request::Change::Incr(1), false)
    };
    assert_error(
        client.upsert_user_trait(long_name).await,
        Code::InvalidArgument,
        &["trait"],
    );
}

async fn thirty_two_racing_upserts_of_one_new_user_make_one_user(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let mut client = users(&app);
            tokio::spawn(async move {
                let request = UpsertUserRequest {
                    traits: traits(&[(&format!("t{i}"), Kind::BoolValue(true))]),
                    ..by_keys(&[("email", "race@example.com")])
                };
                upsert(&mut client, request).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut created = 0;
    for handle in handles {
        let (user, was_created) = handle.await.unwrap().expect("every racing upsert succeeds");
        ids.push(user.id);
        created += usize::from(was_created);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one user");
    assert_eq!(created, 1, "created once");
    let listed = users(&app)
        .list_users(ListUsersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].traits.as_ref().unwrap().fields.len(),
        32,
        "every caller's trait merged"
    );
}

async fn thirty_two_racing_increments_add_up(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    upsert(&mut users(&app), by_keys(&[("email", "c@example.com")]))
        .await
        .unwrap();
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let mut client = users(&app);
            tokio::spawn(async move {
                client
                    .upsert_user_trait(UpsertUserTraitRequest {
                        keys: keys(&[("email", "c@example.com")]),
                        r#trait: "logins".into(),
                        change: Some(upsert_user_trait_request::Change::Incr(1)),
                        update_only: true,
                    })
                    .await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().expect("every increment succeeds");
    }
    let user = users(&app)
        .lookup_user(LookupUserRequest {
            keys: keys(&[("email", "c@example.com")]),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(trait_of(&user, "logins"), Some(Kind::NumberValue(32.0)));
}

async fn companies_are_customers(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let company = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("external_id", "acme"), ("domain", "acme.com")]),
            name: Some("Acme".into()),
            traits: traits(&[("plan", Kind::StringValue("enterprise".into()))]),
            ..UpsertCompanyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(company.created);
    let company = company.company.unwrap();
    let customer = app
        .customers()
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::ExternalId("acme".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(customer.id, company.id, "one record, whichever API made it");
    assert_eq!(customer.name.as_deref(), Some("Acme"));
    assert_eq!(customer.r#type, pb::CustomerType::Team as i32);

    // The same record by another key; the external id never changes.
    let again = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("domain", "acme.com")]),
            name: Some("Acme Inc".into()),
            ..UpsertCompanyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.company.as_ref().unwrap().keys["external_id"], "acme");
    let renamed = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("domain", "acme.com"), ("external_id", "acme-2")]),
            ..UpsertCompanyRequest::default()
        })
        .await;
    assert_error(renamed, Code::FailedPrecondition, &["external_id"]);

    let traited = client
        .upsert_company_trait(UpsertCompanyTraitRequest {
            keys: keys(&[("external_id", "acme")]),
            r#trait: "seats".into(),
            change: Some(pb::upsert_company_trait_request::Change::Incr(10)),
            update_only: true,
        })
        .await
        .unwrap()
        .into_inner()
        .company
        .unwrap();
    assert_eq!(
        traited.traits.unwrap().fields["seats"].kind,
        Some(Kind::NumberValue(10.0))
    );
}

async fn memberships_are_got_or_created_listed_and_deleted(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (user, _) = upsert(&mut client, by_keys(&[("email", "m@example.com")]))
        .await
        .unwrap();
    let company = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("domain", "m.com")]),
            ..UpsertCompanyRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .company
        .unwrap();
    let request = GetOrCreateCompanyMembershipRequest {
        company_id: company.id.clone(),
        user_id: user.id.clone(),
    };
    let first = client
        .get_or_create_company_membership(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client
        .get_or_create_company_membership(request)
        .await
        .unwrap()
        .into_inner();
    assert!(first.created && !second.created);
    assert_eq!(first.membership, second.membership);
    let by_user = client
        .list_company_memberships(ListCompanyMembershipsRequest {
            user_id: user.id.clone(),
            ..ListCompanyMembershipsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let by_company = client
        .list_company_memberships(ListCompanyMembershipsRequest {
            company_id: company.id.clone(),
            ..ListCompanyMembershipsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_user.memberships, by_company.memberships);
    assert_eq!(by_user.memberships.len(), 1);
    let members_only = client
        .list_users(ListUsersRequest {
            company_id: company.id.clone(),
            ..ListUsersRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(members_only.into_inner().users.len(), 1);
    let id = first.membership.unwrap().id;
    client
        .delete_company_membership(DeleteCompanyMembershipRequest { id: id.clone() })
        .await
        .unwrap();
    assert_error(
        client
            .delete_company_membership(DeleteCompanyMembershipRequest { id })
            .await,
        Code::NotFound,
        &[],
    );
    let none = client
        .list_company_memberships(ListCompanyMembershipsRequest {
            user_id: user.id,
            ..ListCompanyMembershipsRequest::default()
        })
        .await;
    assert!(none.unwrap().into_inner().memberships.is_empty());
    let neither = client
        .list_company_memberships(ListCompanyMembershipsRequest::default())
        .await;
    assert_error(neither, Code::InvalidArgument, &["company_id"]);
}

async fn customer_members_show_the_users(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let mut customers: CustomerServiceClient<Authed> = app.customers();
    let team = customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                name: Some("Team".into()),
                r#type: pb::CustomerType::Team.into(),
                ..pb::Customer::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let (jane, _) = upsert(
        &mut client,
        UpsertUserRequest {
            name: Some("Jane Doe".into()),
            ..by_keys(&[("email", "jane@example.com"), ("external_id", "usr_1337")])
        },
    )
    .await
    .unwrap();
    let added = customers
        .add_customer_member(AddCustomerMemberRequest {
            customer_id: team.id.clone(),
            user_id: jane.id.clone(),
            role: MemberRole::Owner.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    assert_eq!(added.email, "jane@example.com");
    assert_eq!(added.name.as_deref(), Some("Jane Doe"));
    assert_eq!(added.external_id.as_deref(), Some("usr_1337"));
    assert_eq!(added.role, MemberRole::Owner as i32);
    assert_eq!(added.customer_id, team.id);

    let fetched = customers
        .get_customer(GetCustomerRequest {
            lookup: Some(get_customer_request::Lookup::Id(team.id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(
        fetched.members,
        std::slice::from_ref(&added),
        "GetCustomer carries the members"
    );

    let changed = customers
        .update_customer_member(UpdateCustomerMemberRequest {
            customer_id: team.id.clone(),
            member_id: added.id.clone(),
            role: MemberRole::BillingManager.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    assert_eq!(changed.role, MemberRole::BillingManager as i32);
    let readded = customers
        .add_customer_member(AddCustomerMemberRequest {
            customer_id: team.id.clone(),
            user_id: jane.id.clone(),
            role: MemberRole::Unspecified.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    assert_eq!(
        readded.role,
        MemberRole::BillingManager as i32,
        "re-adding without a role keeps it"
    );
    assert_ne!(
        changed.updated_at, changed.created_at,
        "a role change moves updated_at"
    );
    let listed = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: team.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.into_inner().members, std::slice::from_ref(&changed));
    customers
        .remove_customer_member(RemoveCustomerMemberRequest {
            customer_id: team.id.clone(),
            member_id: added.id.clone(),
        })
        .await
        .unwrap();
    let listed = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: team.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.into_inner().members.is_empty());
    let unknown = customers
        .update_customer_member(UpdateCustomerMemberRequest {
            customer_id: team.id,
            member_id: added.id,
            role: MemberRole::Member.into(),
        })
        .await;
    assert_error(unknown, Code::NotFound, &[]);
}

async fn customer_members_come_in_pages(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let mut customers: CustomerServiceClient<Authed> = app.customers();
    let mut teams = Vec::new();
    for name in ["Team", "Other team"] {
        let team = customers
            .create_customer(pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: Some(name.into()),
                    r#type: pb::CustomerType::Team.into(),
                    ..pb::Customer::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        teams.push(team.id);
    }
    let mut added = Vec::new();
    for n in 0..5 {
        let (user, _) = upsert(
            &mut client,
            by_keys(&[("email", &format!("member{n}@example.com"))]),
        )
        .await
        .unwrap();
        let member = customers
            .add_customer_member(AddCustomerMemberRequest {
                customer_id: teams[0].clone(),
                user_id: user.id,
                role: MemberRole::Member.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap();
        added.push(member.email);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = customers
            .list_customer_members(ListCustomerMembersRequest {
                customer_id: teams[0].clone(),
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.members.len() <= 2);
        seen.extend(page.members.into_iter().map(|member| member.email));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, added, "every member once, oldest first");
    assert_eq!(pages, 3);

    let first = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: teams[0].clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let replayed = customers
        .list_customer_members(ListCustomerMembersRequest {
            customer_id: teams[1].clone(),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await;
    assert_error(replayed, Code::InvalidArgument, &["page_token"]);
}

async fn companies_are_got_by_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let upserted = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("domain", "acme.com")]),
            name: Some("Acme".to_owned()),
            ..UpsertCompanyRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .company
        .unwrap();
    let got = client
        .get_company(GetCompanyRequest {
            id: upserted.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .company
        .unwrap();
    assert_eq!(got, upserted);
    let not_an_id = client
        .get_company(GetCompanyRequest {
            id: "acme.com".to_owned(),
        })
        .await;
    assert_error(not_an_id, Code::InvalidArgument, &["id"]);
    let unknown = client
        .get_company(GetCompanyRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await;
    assert_error(unknown, Code::NotFound, &[]);
}

async fn bad_fields_are_named(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (code, _, mut fields) = error_of(
        upsert(
            &mut client,
            UpsertUserRequest {
                name: Some("n".repeat(257)),
                traits: traits(&[("nested", Kind::StructValue(Struct::default()))]),
                company: Some(CompanyKeys {
                    keys: HashMap::new(),
                }),
                ..by_keys(&[("email", "")])
            },
        )
        .await,
    );
    fields.sort();
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(fields, ["company", "keys.email", "name", "traits.nested"]);
    assert_error(
        upsert(&mut client, UpsertUserRequest::default()).await,
        Code::InvalidArgument,
        &["keys"],
    );
    let bad_id = UpsertUserRequest {
        company_id: Some("nope".into()),
        ..by_keys(&[("email", "a@b.co")])
    };
    assert_error(
        upsert(&mut client, bad_id).await,
        Code::InvalidArgument,
        &["company_id"],
    );
}

async fn users_and_companies_are_deleted_by_keys(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut client = users(&app);
    let (user, _) = upsert(
        &mut client,
        UpsertUserRequest {
            company: Some(CompanyKeys {
                keys: keys(&[("domain", "d.com")]),
            }),
            ..by_keys(&[("email", "d@example.com")])
        },
    )
    .await
    .unwrap();
    let deleted = client
        .delete_user(DeleteUserRequest {
            lookup: Some(pb::delete_user_request::Lookup::Keys(CompanyKeys {
                keys: keys(&[("email", "d@example.com")]),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(deleted.id, user.id);
    let gone = client
        .lookup_user(LookupUserRequest {
            keys: keys(&[("email", "d@example.com")]),
        })
        .await;
    assert_error(gone, Code::NotFound, &[]);
    let (reborn, created) = upsert(&mut client, by_keys(&[("email", "d@example.com")]))
        .await
        .unwrap();
    assert!(created && reborn.id != user.id, "the key was freed");

    client
        .delete_company(DeleteCompanyRequest {
            keys: keys(&[("domain", "d.com")]),
        })
        .await
        .unwrap();
    let gone = client
        .lookup_company(LookupCompanyRequest {
            keys: keys(&[("domain", "d.com")]),
        })
        .await;
    assert_error(gone, Code::NotFound, &[]);
    let fresh = client
        .upsert_company(UpsertCompanyRequest {
            keys: keys(&[("domain", "d.com")]),
            ..UpsertCompanyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.created, "a deleted company's keys are free again");
}

async fn another_workspace_sees_no_users_or_companies(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut mine = users(&app);
    let (user, _) = upsert(
        &mut mine,
        UpsertUserRequest {
            company: Some(CompanyKeys {
                keys: keys(&[("domain", "i.com")]),
            }),
            ..by_keys(&[("email", "i@example.com")])
        },
    )
    .await
    .unwrap();
    let key = app.other_workspace_key().await;
    let mut theirs = app.users_with(Some(&key));
    assert_error(
        theirs
            .lookup_user(LookupUserRequest {
                keys: keys(&[("email", "i@example.com")]),
            })
            .await,
        Code::NotFound,
        &[],
    );
    assert_error(
        theirs
            .get_user(pb::GetUserRequest {
                id: user.id.clone(),
            })
            .await,
        Code::NotFound,
        &[],
    );
    assert_error(
        theirs
            .lookup_company(LookupCompanyRequest {
                keys: keys(&[("domain", "i.com")]),
            })
            .await,
        Code::NotFound,
        &[],
    );
    let membership = theirs
        .get_or_create_company_membership(GetOrCreateCompanyMembershipRequest {
            company_id: user.company_memberships[0].company_id.clone(),
            user_id: user.id.clone(),
        })
        .await;
    assert_error(membership, Code::NotFound, &[]);
    assert_error(
        theirs
            .delete_user(DeleteUserRequest {
                lookup: Some(pb::delete_user_request::Lookup::Id(user.id.clone())),
            })
            .await,
        Code::NotFound,
        &[],
    );
    assert!(
        theirs
            .list_users(ListUsersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .users
            .is_empty()
    );
    // Their own user with the same key is a different user.
    let (their_user, created) = upsert(&mut theirs, by_keys(&[("email", "i@example.com")]))
        .await
        .unwrap();
    assert!(created && their_user.id != user.id);
    let still = mine
        .lookup_user(LookupUserRequest {
            keys: keys(&[("email", "i@example.com")]),
        })
        .await
        .unwrap();
    assert_eq!(still.into_inner().user.unwrap().id, user.id);
}

async fn thirty_two_users_racing_into_one_new_company_by_external_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let mut client = users(&app);
            tokio::spawn(async move {
                let request = UpsertUserRequest {
                    company: Some(CompanyKeys {
                        keys: keys(&[("external_id", "acme")]),
                    }),
                    ..by_keys(&[("email", &format!("u{i}@acme.com"))])
                };
                upsert(&mut client, request).await
            })
        })
        .collect();
    let mut companies = Vec::new();
    for handle in handles {
        let (user, _) = handle.await.unwrap().expect("every racing upsert succeeds");
        companies.push(user.company_memberships[0].company_id.clone());
    }
    companies.dedup();
    assert_eq!(companies.len(), 1, "one company for all 32 users");
    let members = users(&app)
        .list_users(ListUsersRequest {
            company_id: companies[0].clone(),
            page_size: 100,
            ..ListUsersRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(members.len(), 32);
}
