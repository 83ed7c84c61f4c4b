//! `kith.v1.UserService`.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};

use super::caller_of;
use super::convert::{struct_to_json, timestamp_from_proto};
use crate::domain::page::{KITH_PAGES, PageRequest};
use crate::domain::user::{
    CompanyLookup, CompanyTraitUpdate, CompanyUpsert, MembershipFilter, MembershipInput,
    TraitChange, TraitChangeInput, TraitUpdate, Upsert, UpsertInput, UserFilter, UserLookup,
    parse_uuid,
};
use crate::error::{Error, FieldViolation, Result};
use crate::pb::kith::v1::user_service_server::UserService;
use crate::pb::kith::v1::{
    self as pb, DeleteCompanyMembershipRequest, DeleteCompanyMembershipResponse,
    DeleteCompanyRequest, DeleteCompanyResponse, DeleteUserRequest, DeleteUserResponse,
    GetCompanyRequest, GetCompanyResponse, GetOrCreateCompanyMembershipRequest,
    GetOrCreateCompanyMembershipResponse, GetUserRequest, GetUserResponse,
    ListCompanyMembershipsRequest, ListCompanyMembershipsResponse, ListUsersRequest,
    ListUsersResponse, LookupCompanyRequest, LookupCompanyResponse, LookupUserRequest,
    LookupUserResponse, UpsertCompanyRequest, UpsertCompanyResponse, UpsertCompanyTraitRequest,
    UpsertCompanyTraitResponse, UpsertUserRequest, UpsertUserResponse, UpsertUserTraitRequest,
    UpsertUserTraitResponse,
};
use crate::pb::records::{company_to_proto, membership_to_proto, user_to_proto};
use crate::service::Service;

pub struct UserApi {
    service: Service,
}

impl UserApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn upsert_user(
        &self,
        request: Request<UpsertUserRequest>,
    ) -> Result<Response<UpsertUserResponse>, Status> {
        let caller = caller_of(&request)?;
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
        let (user, created) = self.service.upsert_user(&caller, &upsert).await?;
        Ok(Response::new(UpsertUserResponse {
            user: Some(user_to_proto(&user)),
            created,
        }))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = UserLookup::by_id(&request.into_inner().id)?;
        let user = self.service.get_user(&caller, &lookup).await?;
        Ok(Response::new(GetUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn lookup_user(
        &self,
        request: Request<LookupUserRequest>,
    ) -> Result<Response<LookupUserResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = UserLookup::by_keys(sorted(request.into_inner().keys))?;
        let user = self.service.get_user(&caller, &lookup).await?;
        Ok(Response::new(LookupUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter = UserFilter::parse(&request.company_id, "query", &request.query)?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &filter.canonical(caller.workspace),
        )?;
        let listing = self.service.list_users(&caller, &filter, &page).await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListUsersResponse {
            users: page.items.iter().map(user_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        use pb::delete_user_request::Lookup;
        let caller = caller_of(&request)?;
        let lookup = match request.into_inner().lookup {
            Some(Lookup::Id(id)) => UserLookup::by_id(&id)?,
            Some(Lookup::Keys(keys)) => UserLookup::by_keys(sorted(keys.keys))?,
            None => return Err(Error::invalid("id", "set id or keys").into()),
        };
        let user = self.service.delete_user(&caller, &lookup).await?;
        Ok(Response::new(DeleteUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn upsert_user_trait(
        &self,
        request: Request<UpsertUserTraitRequest>,
    ) -> Result<Response<UpsertUserTraitResponse>, Status> {
        use pb::upsert_user_trait_request::Change;
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let update = TraitUpdate::parse(trait_input(
            request.keys,
            request.r#trait,
            request.change.map(|change| match change {
                Change::Incr(by) => TraitChange::Incr(by),
                Change::Set(value) => TraitChange::Set(value),
            }),
            request.update_only,
        ))?;
        let user = self.service.upsert_user_trait(&caller, &update).await?;
        Ok(Response::new(UpsertUserTraitResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn upsert_company(
        &self,
        request: Request<UpsertCompanyRequest>,
    ) -> Result<Response<UpsertCompanyResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (input, wire) = upsert_input(
            request.id,
            request.keys,
            request.name,
            request.traits,
            request.last_seen_at.as_ref(),
            request.update_only,
        );
        let upsert = Error::with_wire_violations(wire, CompanyUpsert::parse(input))?;
        let (company, created) = self.service.upsert_company(&caller, &upsert).await?;
        Ok(Response::new(UpsertCompanyResponse {
            company: Some(company_to_proto(&company)),
            created,
        }))
    }

    async fn get_company(
        &self,
        request: Request<GetCompanyRequest>,
    ) -> Result<Response<GetCompanyResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = CompanyLookup::by_id(&request.into_inner().id)?;
        let company = self.service.get_company(&caller, &lookup).await?;
        Ok(Response::new(GetCompanyResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn lookup_company(
        &self,
        request: Request<LookupCompanyRequest>,
    ) -> Result<Response<LookupCompanyResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = CompanyLookup::by_keys(sorted(request.into_inner().keys))?;
        let company = self.service.get_company(&caller, &lookup).await?;
        Ok(Response::new(LookupCompanyResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn delete_company(
        &self,
        request: Request<DeleteCompanyRequest>,
    ) -> Result<Response<DeleteCompanyResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = CompanyLookup::by_keys(sorted(request.into_inner().keys))?;
        let company = self.service.delete_company(&caller, &lookup).await?;
        Ok(Response::new(DeleteCompanyResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn upsert_company_trait(
        &self,
        request: Request<UpsertCompanyTraitRequest>,
    ) -> Result<Response<UpsertCompanyTraitResponse>, Status> {
        use pb::upsert_company_trait_request::Change;
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let update = CompanyTraitUpdate::parse(trait_input(
            request.keys,
            request.r#trait,
            request.change.map(|change| match change {
                Change::Incr(by) => TraitChange::Incr(by),
                Change::Set(value) => TraitChange::Set(value),
            }),
            request.update_only,
        ))?;
        let company = self.service.upsert_company_trait(&caller, &update).await?;
        Ok(Response::new(UpsertCompanyTraitResponse {
            company: Some(company_to_proto(&company)),
        }))
    }

    async fn get_or_create_company_membership(
        &self,
        request: Request<GetOrCreateCompanyMembershipRequest>,
    ) -> Result<Response<GetOrCreateCompanyMembershipResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let company = parse_uuid(&request.company_id, "company_id")?;
        let user = parse_uuid(&request.user_id, "user_id")?;
        let (membership, created) = self
            .service
            .get_or_create_membership(&caller, company, user)
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
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter = MembershipFilter::parse(&request.company_id, &request.user_id)?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &filter.canonical(caller.workspace),
        )?;
        let listing = self
            .service
            .list_memberships(&caller, &filter, &page)
            .await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListCompanyMembershipsResponse {
            memberships: page.items.iter().map(membership_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn delete_company_membership(
        &self,
        request: Request<DeleteCompanyMembershipRequest>,
    ) -> Result<Response<DeleteCompanyMembershipResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = parse_uuid(&request.into_inner().id, "id")?;
        let membership = self.service.delete_membership(&caller, id).await?;
        Ok(Response::new(DeleteCompanyMembershipResponse {
            membership: Some(membership_to_proto(&membership)),
        }))
    }
}

/// A trait change as the domain reads it; user and company trait requests
/// share the shape.
fn trait_input(
    keys: std::collections::HashMap<String, String>,
    name: String,
    change: Option<TraitChange>,
    update_only: bool,
) -> TraitChangeInput {
    TraitChangeInput {
        keys: sorted(keys),
        name,
        change,
        update_only,
    }
}

fn sorted(keys: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    keys.into_iter().collect()
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
