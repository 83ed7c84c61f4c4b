//! `kith.v1.CustomerService`.

use prost_types::FieldMask;
use tonic::{Request, Response, Status};

use super::caller_of;
use super::convert::{masked_fields, metadata_from_proto, role_from_proto};
use crate::domain::Change;
use crate::domain::customer::{
    AddressInput, CustomerFilter, CustomerFilterInput, CustomerInput, CustomerLookup,
    CustomerPatch, CustomerPatchInput, CustomerType, NewCustomer,
};
use crate::domain::page::{KITH_PAGES, PageRequest};
use crate::domain::user::{MembershipFilter, parse_uuid};
use crate::error::{Error, FieldViolation};
use crate::pb::kith::v1::customer_service_server::CustomerService;
use crate::pb::kith::v1::{
    self as pb, AddCustomerMemberRequest, AddCustomerMemberResponse, CreateCustomerRequest,
    CreateCustomerResponse, DeleteCustomerRequest, DeleteCustomerResponse, GetCustomerRequest,
    GetCustomerResponse, ListCustomerMembersRequest, ListCustomerMembersResponse,
    ListCustomersRequest, ListCustomersResponse, RemoveCustomerMemberRequest,
    RemoveCustomerMemberResponse, UpdateCustomerMemberRequest, UpdateCustomerMemberResponse,
    UpdateCustomerRequest, UpdateCustomerResponse,
};
use crate::pb::records::{customer_to_proto, member_to_proto};
use crate::service::Service;

pub struct CustomerApi {
    service: Service,
}

impl CustomerApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// The customer a member call names, by its id in `customer_id`.
fn member_customer(id: &str) -> Result<CustomerLookup, Error> {
    parse_uuid(id, "customer_id").map(CustomerLookup::Id)
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<CreateCustomerRequest>,
    ) -> Result<Response<CreateCustomerResponse>, Status> {
        let caller = caller_of(&request)?;
        let (input, wire) = customer_input(request.into_inner().customer.unwrap_or_default());
        let customer = Error::with_wire_violations(wire, NewCustomer::parse(input))?;
        let customer = self.service.create_customer(&caller, customer).await?;
        Ok(Response::new(CreateCustomerResponse {
            customer: Some(customer_to_proto(&customer)),
        }))
    }

    async fn get_customer(
        &self,
        request: Request<GetCustomerRequest>,
    ) -> Result<Response<GetCustomerResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = lookup(request.into_inner().lookup)?;
        let customer = self.service.get_customer(&caller, &lookup).await?;
        Ok(Response::new(GetCustomerResponse {
            customer: Some(customer_to_proto(&customer)),
        }))
    }

    async fn list_customers(
        &self,
        request: Request<ListCustomersRequest>,
    ) -> Result<Response<ListCustomersResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let (metadata, wire) = metadata_from_proto(request.metadata);
        let filter = Error::with_wire_violations(
            wire,
            CustomerFilter::parse(CustomerFilterInput {
                email: &request.email,
                external_id: &request.external_id,
                metadata,
                query: ("query", &request.query),
            }),
        )?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &filter.canonical(caller.workspace),
        )?;
        let listing = self.service.list_customers(&caller, &filter, &page).await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListCustomersResponse {
            customers: page.items.iter().map(customer_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn update_customer(
        &self,
        request: Request<UpdateCustomerRequest>,
    ) -> Result<Response<UpdateCustomerResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let lookup = update_lookup(request.lookup)?;
        let customer = request
            .customer
            .ok_or_else(|| Error::invalid("customer", "is required"))?;
        let (patch, wire) = patch_input(customer, request.update_mask, &lookup)?;
        let patch = Error::with_wire_violations(wire, CustomerPatch::parse(patch, &lookup))?;
        let customer = self
            .service
            .update_customer(&caller, &lookup, &patch)
            .await?;
        Ok(Response::new(UpdateCustomerResponse {
            customer: Some(customer_to_proto(&customer)),
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<DeleteCustomerRequest>,
    ) -> Result<Response<DeleteCustomerResponse>, Status> {
        let caller = caller_of(&request)?;
        let lookup = delete_lookup(request.into_inner().lookup)?;
        let customer = self.service.delete_customer(&caller, &lookup).await?;
        Ok(Response::new(DeleteCustomerResponse {
            customer: Some(customer_to_proto(&customer)),
        }))
    }

    async fn add_customer_member(
        &self,
        request: Request<AddCustomerMemberRequest>,
    ) -> Result<Response<AddCustomerMemberResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let customer = member_customer(&request.customer_id)?;
        let user = parse_uuid(&request.user_id, "user_id")?;
        let role =
            role_from_proto(request.role, "role").map_err(|v| Error::InvalidArgument(vec![v]))?;
        let member = self
            .service
            .add_customer_member(&caller, &customer, user, role)
            .await?;
        Ok(Response::new(AddCustomerMemberResponse {
            member: Some(member_to_proto(&member)),
        }))
    }

    async fn list_customer_members(
        &self,
        request: Request<ListCustomerMembersRequest>,
    ) -> Result<Response<ListCustomerMembersResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let customer = parse_uuid(&request.customer_id, "customer_id")?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &MembershipFilter::of_company(customer).canonical(caller.workspace),
        )?;
        let listing = self
            .service
            .list_customer_members(&caller, &CustomerLookup::Id(customer), &page)
            .await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListCustomerMembersResponse {
            members: page.items.iter().map(member_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn update_customer_member(
        &self,
        request: Request<UpdateCustomerMemberRequest>,
    ) -> Result<Response<UpdateCustomerMemberResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let customer = member_customer(&request.customer_id)?;
        let member = parse_uuid(&request.member_id, "member_id")?;
        let role = role_from_proto(request.role, "role")
            .map_err(|v| Error::InvalidArgument(vec![v]))?
            .ok_or_else(|| Error::invalid("role", "must be specified"))?;
        let member = self
            .service
            .update_customer_member(&caller, &customer, member, role)
            .await?;
        Ok(Response::new(UpdateCustomerMemberResponse {
            member: Some(member_to_proto(&member)),
        }))
    }

    async fn remove_customer_member(
        &self,
        request: Request<RemoveCustomerMemberRequest>,
    ) -> Result<Response<RemoveCustomerMemberResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let customer = member_customer(&request.customer_id)?;
        let member = parse_uuid(&request.member_id, "member_id")?;
        let member = self
            .service
            .remove_customer_member(&caller, &customer, member)
            .await?;
        Ok(Response::new(RemoveCustomerMemberResponse {
            member: Some(member_to_proto(&member)),
        }))
    }
}

// The three requests share the `lookup` oneof shape but prost generates a
// type per message, so each gets a one-line adapter to the shared parser.
fn lookup(lookup: Option<pb::get_customer_request::Lookup>) -> Result<CustomerLookup, Error> {
    use pb::get_customer_request::Lookup;
    parse_lookup(lookup.map(|l| match l {
        Lookup::Id(id) => (true, id),
        Lookup::ExternalId(id) => (false, id),
    }))
}

fn update_lookup(
    lookup: Option<pb::update_customer_request::Lookup>,
) -> Result<CustomerLookup, Error> {
    use pb::update_customer_request::Lookup;
    parse_lookup(lookup.map(|l| match l {
        Lookup::Id(id) => (true, id),
        Lookup::ExternalId(id) => (false, id),
    }))
}

fn delete_lookup(
    lookup: Option<pb::delete_customer_request::Lookup>,
) -> Result<CustomerLookup, Error> {
    use pb::delete_customer_request::Lookup;
    parse_lookup(lookup.map(|l| match l {
        Lookup::Id(id) => (true, id),
        Lookup::ExternalId(id) => (false, id),
    }))
}

fn parse_lookup(lookup: Option<(bool, String)>) -> Result<CustomerLookup, Error> {
    match lookup {
        Some((true, id)) => CustomerLookup::by_id(&id),
        Some((false, external_id)) => CustomerLookup::by_external_id(&external_id),
        None => Err(Error::invalid("id", "set either id or external_id")),
    }
}

fn customer_type(value: i32) -> Result<Option<CustomerType>, FieldViolation> {
    match pb::CustomerType::try_from(value) {
        Ok(pb::CustomerType::Unspecified) => Ok(None),
        Ok(pb::CustomerType::Individual) => Ok(Some(CustomerType::Individual)),
        Ok(pb::CustomerType::Team) => Ok(Some(CustomerType::Team)),
        Err(_) => Err(FieldViolation::new(
            "type",
            format!("unknown customer type {value}"),
        )),
    }
}

fn address_input(address: pb::BillingAddress) -> AddressInput {
    AddressInput {
        country: address.country,
        line1: address.line1,
        line2: address.line2,
        postal_code: address.postal_code,
        city: address.city,
        state: address.state,
    }
}

/// The domain's input, and what the wire format itself got wrong.
fn customer_input(customer: pb::Customer) -> (CustomerInput, Vec<FieldViolation>) {
    let (metadata, mut wire) = metadata_from_proto(customer.metadata);
    let kind = customer_type(customer.r#type).unwrap_or_else(|violation| {
        wire.push(violation);
        None
    });
    let input = CustomerInput {
        kind,
        metadata: Some(metadata),
        external_id: customer.external_id,
        email: customer.email,
        name: customer.name,
        billing_address: customer.billing_address.map(address_input),
    };
    (input, wire)
}

/// The fields an update may name; `*` names all those the lookup allows.
const UPDATABLE_FIELDS: [&str; 6] = [
    "email",
    "name",
    "billing_address",
    "metadata",
    "external_id",
    "type",
];

/// Turns a customer and its mask into a patch (AIP-134): a named field is set
/// to its value, or cleared when unset; without a mask every populated field
/// is named. An update by external id may not change the external id or the
/// type, so its `*` leaves them out.
fn patch_input(
    customer: pb::Customer,
    mask: Option<FieldMask>,
    lookup: &CustomerLookup,
) -> Result<(CustomerPatchInput, Vec<FieldViolation>), Error> {
    let fixed = lookup.fixed_fields();
    let wildcard: Vec<&'static str> = UPDATABLE_FIELDS
        .into_iter()
        .filter(|field| !fixed.contains(field))
        .collect();
    // Without a mask, the fields set are the ones changed, as with `*`
    // less what the lookup fixes: a record read by external id and sent
    // back whole updates, its external id and type left as they are.
    let named = masked_fields(
        mask,
        || {
            let mut populated = populated_fields(&customer);
            populated.retain(|field| !fixed.contains(field));
            populated
        },
        &UPDATABLE_FIELDS,
        &wildcard,
    )?;

    let set_or_clear = |value: Option<String>| value.map_or(Change::Clear, Change::Set);
    let mut patch = CustomerPatchInput::default();
    let pb::Customer {
        external_id,
        email,
        name,
        billing_address,
        metadata,
        r#type,
        ..
    } = customer;
    if named.contains(&"email") {
        patch.email = set_or_clear(email);
    }
    if named.contains(&"name") {
        patch.name = set_or_clear(name);
    }
    if named.contains(&"external_id") {
        patch.external_id = set_or_clear(external_id);
    }
    if named.contains(&"billing_address") {
        patch.billing_address = billing_address
            .map(address_input)
            .map_or(Change::Clear, Change::Set);
    }
    let mut wire = Vec::new();
    if named.contains(&"metadata") {
        let (metadata, mut bad) = metadata_from_proto(metadata);
        wire.append(&mut bad);
        patch.metadata = Change::Set(metadata);
    }
    if named.contains(&"type") {
        match customer_type(r#type) {
            Ok(kind) => patch.kind = kind.map_or(Change::Clear, Change::Set),
            Err(violation) => wire.push(violation),
        }
    }
    Ok((patch, wire))
}

fn populated_fields(customer: &pb::Customer) -> Vec<&'static str> {
    let populated = [
        ("email", customer.email.is_some()),
        ("name", customer.name.is_some()),
        ("external_id", customer.external_id.is_some()),
        ("billing_address", customer.billing_address.is_some()),
        ("metadata", !customer.metadata.is_empty()),
        ("type", customer.r#type != 0),
    ];
    populated
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(field, _)| field)
        .collect()
}
