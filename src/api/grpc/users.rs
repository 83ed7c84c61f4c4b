//! `kith.v1.UserService`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{
    json_to_struct, role_to_proto, struct_to_json, timestamp, timestamp_from_proto,
};
use super::workspace_of;
use crate::domain::page::PageRequest;
use crate::domain::user::{
    Company, Keys, MembershipDetail, MembershipInput, TraitChange, TraitChangeInput, TraitUpdate,
    Upsert, UpsertInput, UserDetail, UserLookup, parse_uuid,
};
use crate::error::{Error, FieldViolation, Result};
use crate::pb::kith::v1::user_service_server::UserService;
use crate::pb::kith::v1::{
    self as pb, DeleteCompanyMembershipRequest, DeleteCompanyMembershipResponse,
    DeleteCompanyRequest, DeleteCompanyResponse, DeleteUserRequest, DeleteUserResponse,
    GetOrCreateCompanyMembershipRequest, GetOrCreateCompanyMembershipResponse, GetUserRequest,
    GetUserResponse, ListCompanyMembershipsRequest, ListCompanyMembershipsResponse,
    ListUsersRequest, ListUsersResponse, LookupCompanyRequest, LookupCompanyResponse,
    LookupUserRequest, LookupUserResponse, UpsertCompanyRequest, UpsertCompanyResponse,
    UpsertCompanyTraitRequest, UpsertCompanyTraitResponse, UpsertUserRequest, UpsertUserResponse,
    UpsertUserTraitRequest, UpsertUserTraitResponse,
};
use crate::store::Store;

pub struct UserApi {
    store: Arc<dyn Store>,
}

impl UserApi {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn upsert_user(
        &self,
        request: Request<UpsertUserRequest>,
    ) -> Result<Response<UpsertUserResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let memberships = MembershipInput {
            company: request.company.map(|c| sorted(c.keys)),
            company_id: request.company_id,
            replace: request.replace_companies
                || !request.companies.is_empty()
                || !request.company_ids.is_empty(),
            companies: request
                .companies
                .into_iter()
                .map(|c| sorted(c.keys))
                .collect(),
            company_ids: request.company_ids,
        };
        let (input, wire) = upsert_input(
            request.id,
            request.keys,
            request.name,
            request.traits,
            request.last_seen_at.as_ref(),
            request.update_only,
        );
        let upsert = Error::with_wire_violations(wire, Upsert::parse(input, memberships))?;
        let (user, created) = self.store.upsert_user(workspace, &upsert).await?;
        Ok(Response::new(UpsertUserResponse {
            user: Some(user_to_proto(&user)),
            created,
        }))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let lookup = UserLookup::by_id(&request.into_inner().id)?;
        let user = self.store.get_user(workspace, &lookup).await?;
        Ok(Response::new(GetUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn lookup_user(
        &self,
        request: Request<LookupUserRequest>,
    ) -> Result<Response<LookupUserResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let lookup = UserLookup::by_keys(sorted(request.into_inner().keys))?;
        let user = self.store.get_user(workspace, &lookup).await?;
        Ok(Response::new(LookupUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let company = optional_uuid(&request.company_id, "company_id")?;
        let query = format!("users|{workspace}|{}", request.company_id);
        let page = PageRequest::parse(request.page_size.into(), &request.page_token, &query)?;
        let page = self.store.list_users(workspace, company, &page).await?;
        Ok(Response::new(ListUsersResponse {
            users: page.items.iter().map(user_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        use pb::delete_user_request::Lookup;
        let workspace = workspace_of(&request)?;
        let lookup = match request.into_inner().lookup {
            Some(Lookup::Id(id)) => UserLookup::by_id(&id)?,
            Some(Lookup::Keys(keys)) => UserLookup::by_keys(sorted(keys.keys))?,
            None => return Err(Error::invalid("id", "set id or keys").into()),
        };
        let user = self.store.delete_user(workspace, &lookup).await?;
        Ok(Response::new(DeleteUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn upsert_user_trait(
        &self,
        request: Request<UpsertUserTraitRequest>,
    ) -> Result<Response<UpsertUserTraitResponse>, Status> {
        use pb::upsert_user_trait_request::Change;
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let update = TraitUpdate::parse(TraitChangeInput {
            keys: sorted(request.keys),
            name: request.r#trait,
            change: request.change.map(|change| match change {
                Change::Incr(by) => TraitChange::Incr(by),
                Change::Set(value) => TraitChange::Set(value),
            }),
            update_only: request.update_only,
        })?;
        let user = self.store.update_user_trait(workspace, &update).await?;
        Ok(Response::new(UpsertUserTraitResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn upsert_company(
        &self,
        request: Request<UpsertCompanyRequest>,
    ) -> Result<Response<UpsertCompanyResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let (input, wire) = upsert_input(
            request.id,
            request.keys,
            request.name,
            request.traits,
            request.last_seen_at.as_ref(),
            request.update_only,
        );
        let upsert =
            Error::with_wire_violations(wire, Upsert::parse(input, MembershipInput::default()))?;
        let (company, created) = self.store.upsert_company(workspace, &upsert).await?;
        Ok(Response::new(UpsertCompanyResponse {
            company: Some(company_to_proto(&company)),
            created,
        }))
    }

    async fn lookup_company(
        &self,
        request: Request<LookupCompanyRequest>,
    ) -> Result<Response<LookupCompanyResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let keys = required_keys(request.into_inner().keys)?;
        let company = self.store.lookup_company(workspace, &keys).await?;
        Ok(Response::new(LookupCompanyResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn delete_company(
        &self,
        request: Request<DeleteCompanyRequest>,
    ) -> Result<Response<DeleteCompanyResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let keys = required_keys(request.into_inner().keys)?;
        let company = self.store.delete_company(workspace, &keys).await?;
        Ok(Response::new(DeleteCompanyResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn upsert_company_trait(
        &self,
        request: Request<UpsertCompanyTraitRequest>,
    ) -> Result<Response<UpsertCompanyTraitResponse>, Status> {
        use pb::upsert_company_trait_request::Change;
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let update = TraitUpdate::parse(TraitChangeInput {
            keys: sorted(request.keys),
            name: request.r#trait,
            change: request.change.map(|change| match change {
                Change::Incr(by) => TraitChange::Incr(by),
                Change::Set(value) => TraitChange::Set(value),
            }),
            update_only: request.update_only,
        })?;
        let company = self.store.update_company_trait(workspace, &update).await?;
        Ok(Response::new(UpsertCompanyTraitResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn get_or_create_company_membership(
        &self,
        request: Request<GetOrCreateCompanyMembershipRequest>,
    ) -> Result<Response<GetOrCreateCompanyMembershipResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let company = parse_uuid(&request.company_id, "company_id")?;
        let user = parse_uuid(&request.user_id, "user_id")?;
        let (membership, created) = self
            .store
            .get_or_create_membership(workspace, company, user, None)
            .await?;
        Ok(Response::new(GetOrCreateCompanyMembershipResponse {
            membership: Some(membership_to_proto(&membership)),
            created,
        }))
    }

    async fn list_company_memberships(
        &self,
        request: Request<ListCompanyMembershipsRequest>,
    ) -> Result<Response<ListCompanyMembershipsResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let request = request.into_inner();
        let company = optional_uuid(&request.company_id, "company_id")?;
        let user = optional_uuid(&request.user_id, "user_id")?;
        if company.is_none() && user.is_none() {
            return Err(Error::invalid("company_id", "set company_id, user_id or both").into());
        }
        let query = format!(
            "memberships|{workspace}|{}|{}",
            request.company_id, request.user_id
        );
        let page = PageRequest::parse(request.page_size.into(), &request.page_token, &query)?;
        let page = self
            .store
            .list_memberships(workspace, company, user, &page)
            .await?;
        Ok(Response::new(ListCompanyMembershipsResponse {
            memberships: page.items.iter().map(membership_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn delete_company_membership(
        &self,
        request: Request<DeleteCompanyMembershipRequest>,
    ) -> Result<Response<DeleteCompanyMembershipResponse>, Status> {
        let workspace = workspace_of(&request)?;
        let id = parse_uuid(&request.into_inner().id, "id")?;
        let membership = self.store.delete_membership(workspace, id, None).await?;
        Ok(Response::new(DeleteCompanyMembershipResponse {
            membership: Some(membership_to_proto(&membership)),
        }))
    }
}

fn sorted(keys: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    keys.into_iter().collect()
}

fn required_keys(keys: std::collections::HashMap<String, String>) -> Result<Keys> {
    Keys::parse(sorted(keys), "keys", true).map_err(Error::InvalidArgument)
}

fn optional_uuid(text: &str, field: &str) -> Result<Option<uuid::Uuid>> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_uuid(text, field).map(Some)
    }
}

/// The shared shape of user and company upserts, and what the wire format
/// itself got wrong.
fn upsert_input(
    id: Option<String>,
    keys: std::collections::HashMap<String, String>,
    name: Option<String>,
    traits: Option<prost_types::Struct>,
    last_seen_at: Option<&prost_types::Timestamp>,
    update_only: bool,
) -> (UpsertInput, Vec<FieldViolation>) {
    let mut wire = Vec::new();
    let last_seen_at = last_seen_at.and_then(|t| {
        timestamp_from_proto(t, "last_seen_at")
            .map_err(|v| wire.push(v))
            .ok()
    });
    let input = UpsertInput {
        id,
        keys: sorted(keys),
        name,
        traits: traits.map(struct_to_json).unwrap_or_default(),
        last_seen_at,
        update_only,
    };
    (input, wire)
}

fn company_to_proto(company: &Company) -> pb::Company {
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

fn membership_to_proto(detail: &MembershipDetail) -> pb::CompanyMembership {
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

fn user_to_proto(detail: &UserDetail) -> pb::User {
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
