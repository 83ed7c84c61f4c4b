//! Domain records as the contract's messages: what the Get methods return,
//! and what the change log records of every change. One conversion each,
//! shared by the gRPC transport and the change log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use prost_types::Timestamp;

use super::kith::v1 as pb;
use crate::domain::WorkspaceId;
use crate::domain::change::{ChangeCursor, ChangeKind, ChangeOperation, LoggedChange};
use crate::domain::customer::{
    BillingAddress, Customer, CustomerDetail, CustomerType, ExternalId, MetadataValue,
};
use crate::domain::entity::{Entity, EntityType};
use crate::domain::person::{Person, PersonStatus};
use crate::domain::user::{Company, Member, MemberRole, MembershipDetail, UserDetail};
use crate::domain::webhook::{DeliveryAttempt, WebhookEndpoint, webhook_id};

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).expect("below one second"),
    }
}

pub fn metadata_to_proto<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a MetadataValue)>,
) -> HashMap<String, pb::MetadataValue> {
    pairs
        .map(|(key, value)| {
            let kind = match value {
                MetadataValue::Bool(b) => pb::metadata_value::Kind::BoolValue(*b),
                MetadataValue::Int(i) => pb::metadata_value::Kind::IntValue(*i),
                MetadataValue::Float(f) => pb::metadata_value::Kind::FloatValue(*f),
                MetadataValue::String(s) => pb::metadata_value::Kind::StringValue(s.clone()),
            };
            (key.clone(), pb::MetadataValue { kind: Some(kind) })
        })
        .collect()
}

pub fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

pub fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn role_to_proto(role: MemberRole) -> pb::MemberRole {
    match role {
        MemberRole::Owner => pb::MemberRole::Owner,
        MemberRole::BillingManager => pb::MemberRole::BillingManager,
        MemberRole::Member => pb::MemberRole::Member,
    }
}

pub fn address_to_proto(address: &BillingAddress) -> pb::BillingAddress {
    let lines = address.lines();
    pb::BillingAddress {
        country: lines.country,
        line1: lines.line1,
        line2: lines.line2,
        postal_code: lines.postal_code,
        city: lines.city,
        state: lines.state,
    }
}

pub fn member_to_proto(member: &Member) -> pb::Member {
    let membership = &member.membership;
    pb::Member {
        id: membership.id.to_string(),
        created_at: Some(timestamp(membership.created_at)),
        updated_at: Some(timestamp(membership.updated_at)),
        customer_id: membership.company_id.to_string(),
        email: member.email.clone().unwrap_or_default(),
        name: member.name.clone(),
        external_id: member.external_id.clone(),
        role: role_to_proto(membership.role).into(),
    }
}

pub fn customer_to_proto(detail: &CustomerDetail) -> pb::Customer {
    let customer: &Customer = &detail.customer;
    let kind = match customer.kind {
        CustomerType::Individual => pb::CustomerType::Individual,
        CustomerType::Team => pb::CustomerType::Team,
    };
    pb::Customer {
        id: customer.id.to_string(),
        external_id: customer
            .external_id
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        email: customer
            .email
            .as_ref()
            .map(|email| email.as_str().to_owned()),
        email_verified: customer.email_verified,
        name: customer.name.as_ref().map(|name| name.as_str().to_owned()),
        billing_address: customer.billing_address.as_ref().map(address_to_proto),
        metadata: metadata_to_proto(customer.metadata.iter()),
        r#type: kind.into(),
        avatar_url: customer.avatar_url().unwrap_or_default(),
        workspace_id: customer.workspace_id.to_string(),
        created_at: Some(timestamp(customer.created_at)),
        updated_at: Some(timestamp(
            customer.modified_at.unwrap_or(customer.created_at),
        )),
        deleted_at: customer.deleted_at.map(timestamp),
        members: detail.members.iter().map(member_to_proto).collect(),
    }
}

pub fn entity_to_proto(entity: &Entity, owner: &ExternalId) -> pb::Entity {
    pb::Entity {
        id: entity.id.as_str().to_owned(),
        customer_external_id: owner.as_str().to_owned(),
        type_id: entity.type_id.as_str().to_owned(),
        display_name: entity.display_name.clone(),
        metadata: entity.metadata.clone().into_iter().collect(),
        created_at: Some(timestamp(entity.created_at)),
        updated_at: Some(timestamp(entity.updated_at)),
        archived_at: entity.archived_at.map(timestamp),
    }
}

pub fn entity_type_to_proto(entity_type: &EntityType) -> pb::EntityType {
    pb::EntityType {
        id: entity_type.id.as_str().to_owned(),
        display_name: entity_type.display_name.clone(),
        attribution_keys: entity_type.attribution_keys.clone(),
        created_at: Some(timestamp(entity_type.created_at)),
        updated_at: Some(timestamp(entity_type.updated_at)),
        archived_at: entity_type.archived_at.map(timestamp),
    }
}

pub fn person_to_proto(person: &Person) -> pb::Person {
    let status = match person.status {
        PersonStatus::Active => pb::PersonStatus::Active,
        PersonStatus::Unsubscribed => pb::PersonStatus::Unsubscribed,
        PersonStatus::Bounced => pb::PersonStatus::Bounced,
    };
    let field = |name: &str| person.profile.get(name).map(str::to_owned);
    pb::Person {
        id: person.id.to_string(),
        workspace_id: person.workspace_id.to_string(),
        external_id: person.external_id.clone(),
        email: person.email.as_ref().map(|e| e.as_str().to_owned()),
        phone: field("phone"),
        first_name: field("first_name"),
        last_name: field("last_name"),
        avatar_url: field("avatar_url"),
        timezone: field("timezone"),
        locale: field("locale"),
        status: status.into(),
        attributes: Some(json_to_struct(&person.attributes)),
        created_at: Some(timestamp(person.created_at)),
        updated_at: Some(timestamp(person.updated_at)),
        first_seen_at: Some(timestamp(person.first_seen_at)),
        last_seen_at: Some(timestamp(person.last_seen_at)),
    }
}

pub fn company_to_proto(company: &Company) -> pb::Company {
    pb::Company {
        id: company.id.to_string(),
        keys: company
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        name: company.name.clone().unwrap_or_default(),
        traits: Some(json_to_struct(&company.traits)),
        last_seen_at: company.last_seen_at.map(timestamp),
        created_at: Some(timestamp(company.created_at)),
        updated_at: Some(timestamp(company.updated_at)),
    }
}

pub fn membership_to_proto(detail: &MembershipDetail) -> pb::CompanyMembership {
    let membership = &detail.membership;
    pb::CompanyMembership {
        id: membership.id.to_string(),
        company_id: membership.company_id.to_string(),
        user_id: membership.user_id.to_string(),
        role: role_to_proto(membership.role).into(),
        company: Some(company_to_proto(&detail.company)),
        created_at: Some(timestamp(membership.created_at)),
        updated_at: Some(timestamp(membership.updated_at)),
    }
}

pub fn user_to_proto(detail: &UserDetail) -> pb::User {
    let user = &detail.user;
    pb::User {
        id: user.id.to_string(),
        keys: user
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        name: user.name.clone().unwrap_or_default(),
        traits: Some(json_to_struct(&user.traits)),
        company_memberships: detail.memberships.iter().map(membership_to_proto).collect(),
        last_seen_at: user.last_seen_at.map(timestamp),
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
    }
}

/// A change of the log as the contract's message: its record decoded into
/// the message its kind's Get returns.
pub fn change_to_proto(logged: &LoggedChange) -> Result<pb::Change, prost::DecodeError> {
    use pb::change::Record;
    let change = &logged.change;
    let bytes = change.record.as_slice();
    let record = match change.kind {
        ChangeKind::Customer => Record::Customer(pb::Customer::decode(bytes)?),
        ChangeKind::Entity => Record::Entity(pb::Entity::decode(bytes)?),
        ChangeKind::EntityType => Record::EntityType(pb::EntityType::decode(bytes)?),
        ChangeKind::Person => Record::Person(pb::Person::decode(bytes)?),
        ChangeKind::User => Record::User(pb::User::decode(bytes)?),
        ChangeKind::Company => Record::Company(pb::Company::decode(bytes)?),
        ChangeKind::Membership => Record::Membership(pb::CompanyMembership::decode(bytes)?),
    };
    let kind = change_kind_to_proto(change.kind);
    let operation = match change.operation {
        ChangeOperation::Created => pb::ChangeOperation::Created,
        ChangeOperation::Updated => pb::ChangeOperation::Updated,
        ChangeOperation::Deleted => pb::ChangeOperation::Deleted,
        ChangeOperation::Archived => pb::ChangeOperation::Archived,
        ChangeOperation::Unarchived => pb::ChangeOperation::Unarchived,
    };
    Ok(pb::Change {
        seq: logged.seq,
        kind: kind.into(),
        operation: operation.into(),
        record_id: change.record_id.clone(),
        external_id: change.external_id.clone(),
        owner_id: change.owner_id.clone(),
        revision: logged.seq,
        api_key_id: logged.api_key.to_string(),
        committed_at: Some(timestamp(logged.committed_at)),
        record: Some(record),
    })
}

/// A change kind the contract names; `None` for unspecified.
pub fn change_kind_from_proto(kind: pb::ChangeKind) -> Option<ChangeKind> {
    match kind {
        pb::ChangeKind::Unspecified => None,
        pb::ChangeKind::Customer => Some(ChangeKind::Customer),
        pb::ChangeKind::Entity => Some(ChangeKind::Entity),
        pb::ChangeKind::EntityType => Some(ChangeKind::EntityType),
        pb::ChangeKind::Person => Some(ChangeKind::Person),
        pb::ChangeKind::User => Some(ChangeKind::User),
        pb::ChangeKind::Company => Some(ChangeKind::Company),
        pb::ChangeKind::Membership => Some(ChangeKind::Membership),
    }
}

pub fn change_kind_to_proto(kind: ChangeKind) -> pb::ChangeKind {
    match kind {
        ChangeKind::Customer => pb::ChangeKind::Customer,
        ChangeKind::Entity => pb::ChangeKind::Entity,
        ChangeKind::EntityType => pb::ChangeKind::EntityType,
        ChangeKind::Person => pb::ChangeKind::Person,
        ChangeKind::User => pb::ChangeKind::User,
        ChangeKind::Company => pb::ChangeKind::Company,
        ChangeKind::Membership => pb::ChangeKind::Membership,
    }
}

/// An endpoint as the contract shows it: never its secret.
pub fn webhook_endpoint_to_proto(endpoint: &WebhookEndpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        id: endpoint.id.to_string(),
        url: endpoint.url.as_str().to_owned(),
        kinds: endpoint
            .kinds
            .kinds()
            .iter()
            .map(|kind| change_kind_to_proto(*kind).into())
            .collect(),
        description: endpoint.description.clone(),
        enabled: Some(endpoint.enabled),
        disabled_reason: endpoint.disabled_reason.clone().unwrap_or_default(),
        disabled_at: endpoint.disabled_at.map(timestamp),
        cursor: ChangeCursor::at(endpoint.cursor_seq).encode(endpoint.workspace),
        consecutive_failures: i32::try_from(endpoint.failures.count).unwrap_or(i32::MAX),
        next_attempt_at: endpoint.failures.next_attempt_at.map(timestamp),
        created_at: Some(timestamp(endpoint.created_at)),
        updated_at: Some(timestamp(endpoint.updated_at)),
    }
}

pub fn webhook_delivery_to_proto(
    attempt: &DeliveryAttempt,
    workspace: WorkspaceId,
) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        seq: attempt.seq,
        webhook_id: webhook_id(workspace, attempt.seq),
        attempt: i32::try_from(attempt.attempt).unwrap_or(i32::MAX),
        http_status: i32::from(attempt.http_status),
        error: attempt.error.clone(),
        latency_ms: i64::try_from(attempt.latency.as_millis()).unwrap_or(i64::MAX),
        attempted_at: Some(timestamp(attempt.attempted_at)),
        next_retry_at: attempt.next_retry_at.map(timestamp),
        delivered: attempt.delivered,
    }
}
