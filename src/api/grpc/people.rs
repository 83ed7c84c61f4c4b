//! `kith.v1.PeopleService`.

use prost_types::FieldMask;
use tonic::{Request, Response, Status, Streaming};

use super::caller_of;
use super::convert::{masked_fields, struct_to_json};
use crate::domain::Change;
use crate::domain::page::{KITH_PAGES, PageRequest};
use crate::domain::person::{
    self, KNOWN_TRAITS, PersonFilter, PersonLookup, PersonPatch, PersonPatchInput, PersonStatus,
    PersonUpsert, PersonUpsertInput,
};
use crate::error::{Error, FieldPath, FieldViolation, Result};
use crate::pb::kith::v1::people_service_server::PeopleService;
use crate::pb::kith::v1::{
    self as pb, BatchUpsertPeopleRequest, BatchUpsertPeopleResponse, DeletePersonRequest,
    DeletePersonResponse, GetPersonRequest, GetPersonResponse, ImportPeopleRequest,
    ImportPeopleResponse, ListPeopleRequest, ListPeopleResponse, UpdatePersonRequest,
    UpdatePersonResponse, UpsertPersonRequest, UpsertPersonResponse,
};
use crate::pb::records::person_to_proto;
use crate::service::{Importer, Service};

pub struct PeopleApi {
    service: Service,
}

impl PeopleApi {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl PeopleService for PeopleApi {
    async fn batch_upsert_people(
        &self,
        request: Request<BatchUpsertPeopleRequest>,
    ) -> Result<Response<BatchUpsertPeopleResponse>, Status> {
        let caller = caller_of(&request)?;
        let mut wire = Vec::new();
        let mut inputs = Vec::new();
        for (i, p) in request.into_inner().people.into_iter().enumerate() {
            let (input, bad) = upsert_input(p);
            wire.extend(bad.into_iter().map(|v| v.within(&person::batch_item(i))));
            inputs.push(input);
        }
        let batch = Error::with_wire_violations(wire, person::parse_batch(inputs))?;
        let written = self.service.batch_upsert_people(&caller, &batch).await?;
        let created = written.iter().filter(|u| u.created).count();
        Ok(Response::new(BatchUpsertPeopleResponse {
            people: written.iter().map(|u| person_to_proto(&u.person)).collect(),
            created_count: count(created),
            updated_count: count(written.len() - created),
        }))
    }

    async fn upsert_person(
        &self,
        request: Request<UpsertPersonRequest>,
    ) -> Result<Response<UpsertPersonResponse>, Status> {
        let caller = caller_of(&request)?;
        let within_person = |error: Error| error.within(&FieldPath::field("person"));
        let (input, wire) = upsert_input(request.into_inner().person.unwrap_or_default());
        let upsert = Error::with_wire_violations(
            wire,
            PersonUpsert::parse(input).map_err(Error::InvalidArgument),
        )
        .map_err(within_person)?;
        let upserted = self
            .service
            .upsert_person(&caller, upsert)
            .await
            .map_err(within_person)?;
        Ok(Response::new(UpsertPersonResponse {
            person: Some(person_to_proto(&upserted.person)),
            created: upserted.created,
        }))
    }

    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<GetPersonResponse>, Status> {
        use pb::get_person_request::Lookup;
        let caller = caller_of(&request)?;
        let lookup = match request.into_inner().lookup {
            Some(Lookup::Id(id)) => PersonLookup::by_id(&id)?,
            Some(Lookup::ExternalId(id)) => PersonLookup::by_external_id(&id)?,
            Some(Lookup::Email(email)) => PersonLookup::by_email(&email)?,
            None => return Err(Error::invalid("id", "set id, external_id or email").into()),
        };
        let person = self.service.get_person(&caller, &lookup).await?;
        Ok(Response::new(GetPersonResponse {
            person: Some(person_to_proto(&person)),
        }))
    }

    async fn list_people(
        &self,
        request: Request<ListPeopleRequest>,
    ) -> Result<Response<ListPeopleResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter =
            PersonFilter::parse(status(request.status, "status")?, "search", &request.search)?;
        let page = PageRequest::parse(
            &KITH_PAGES,
            Some(request.page_size.into()),
            &request.page_token,
            &filter.canonical(caller.workspace),
        )?;
        let listing = self.service.list_people(&caller, &filter, &page).await?;
        let change_cursor = listing.change_cursor.encode(caller.workspace);
        let page = listing.items;
        Ok(Response::new(ListPeopleResponse {
            people: page.items.iter().map(person_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            change_cursor,
        }))
    }

    async fn update_person(
        &self,
        request: Request<UpdatePersonRequest>,
    ) -> Result<Response<UpdatePersonResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let lookup = update_lookup(request.lookup)?;
        let person = request
            .person
            .ok_or_else(|| Error::invalid("person", "is required"))?;
        let patch = patch_input(person, request.update_mask)?;
        let patch = PersonPatch::parse(patch)?;
        let person = self.service.update_person(&caller, &lookup, &patch).await?;
        Ok(Response::new(UpdatePersonResponse {
            person: Some(person_to_proto(&person)),
        }))
    }

    async fn delete_person(
        &self,
        request: Request<DeletePersonRequest>,
    ) -> Result<Response<DeletePersonResponse>, Status> {
        use pb::delete_person_request::Lookup;
        let caller = caller_of(&request)?;
        let lookup = match request.into_inner().lookup {
            Some(Lookup::Id(id)) => PersonLookup::by_id(&id)?,
            Some(Lookup::ExternalId(id)) => PersonLookup::by_external_id(&id)?,
            None => return Err(Error::invalid("id", "set id or external_id").into()),
        };
        let person = self.service.delete_person(&caller, &lookup).await?;
        Ok(Response::new(DeletePersonResponse {
            person: Some(person_to_proto(&person)),
        }))
    }

    async fn import_people(
        &self,
        request: Request<Streaming<ImportPeopleRequest>>,
    ) -> Result<Response<ImportPeopleResponse>, Status> {
        let caller = caller_of(&request)?;
        let mut chunks = request.into_inner();
        let mut importer = Importer::new(self.service.clone(), caller);
        while let Some(chunk) = chunks.message().await? {
            for person in chunk.people {
                let (input, wire) = upsert_input(person);
                importer
                    .push(if wire.is_empty() {
                        Ok(input)
                    } else {
                        Err(wire)
                    })
                    .await?;
            }
        }
        let tally = importer.finish().await?;
        tracing::info!(
            received = tally.received,
            created = tally.created,
            updated = tally.updated,
            rejected = tally.rejected,
            "import finished"
        );
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(Response::new(ImportPeopleResponse {
            received_count: to_i64(tally.received),
            created_count: to_i64(tally.created),
            updated_count: to_i64(tally.updated),
            rejected_count: to_i64(tally.rejected),
            rejections: tally
                .rejections
                .into_iter()
                .map(|r| pb::ImportRejection {
                    position: to_i64(r.position),
                    field: r.field.to_string(),
                    description: r.description,
                })
                .collect(),
        }))
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).expect("batches hold at most 100 people")
}

fn status(value: i32, field: &'static str) -> Result<Option<PersonStatus>> {
    match pb::PersonStatus::try_from(value) {
        Ok(pb::PersonStatus::Unspecified) => Ok(None),
        Ok(pb::PersonStatus::Active) => Ok(Some(PersonStatus::Active)),
        Ok(pb::PersonStatus::Unsubscribed) => Ok(Some(PersonStatus::Unsubscribed)),
        Ok(pb::PersonStatus::Bounced) => Ok(Some(PersonStatus::Bounced)),
        Err(_) => Err(Error::invalid(field, format!("unknown status {value}"))),
    }
}

/// The domain's input, and what the wire format itself got wrong (relative
/// to the person, as the domain's violations are).
pub(crate) fn upsert_input(person: pb::PersonUpsert) -> (PersonUpsertInput, Vec<FieldViolation>) {
    let (status, wire) = match status(person.status, "status") {
        Ok(status) => (status, Vec::new()),
        Err(error) => (None, error.violations().to_vec()),
    };
    let input = PersonUpsertInput {
        user_id: person.user_id,
        email: person.email,
        traits: person.traits.map(struct_to_json).unwrap_or_default(),
        status,
    };
    (input, wire)
}

fn update_lookup(lookup: Option<pb::update_person_request::Lookup>) -> Result<PersonLookup> {
    use pb::update_person_request::Lookup;
    match lookup {
        Some(Lookup::Id(id)) => PersonLookup::by_id(&id),
        Some(Lookup::ExternalId(id)) => PersonLookup::by_external_id(&id),
        None => Err(Error::invalid("id", "set id or external_id")),
    }
}

const UPDATABLE_FIELDS: [&str; 10] = [
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "avatar_url",
    "timezone",
    "locale",
    "status",
    "attributes",
];

/// A person and its mask as a patch (AIP-134, as for customers).
fn patch_input(person: pb::Person, mask: Option<FieldMask>) -> Result<PersonPatchInput> {
    let named = masked_fields(
        mask,
        || populated_fields(&person),
        &UPDATABLE_FIELDS,
        &UPDATABLE_FIELDS,
    )?;
    let set_or_clear = |value: Option<String>| value.map_or(Change::Clear, Change::Set);
    let mut patch = PersonPatchInput::default();
    if named.contains(&"external_id") {
        patch.external_id = Change::Set(person.external_id.clone());
    }
    if named.contains(&"email") {
        patch.email = set_or_clear(person.email.clone());
    }
    for (name, _) in KNOWN_TRAITS {
        if named.contains(&name) {
            patch
                .profile
                .push((name, set_or_clear(profile_field(&person, name))));
        }
    }
    if named.contains(&"status") {
        patch.status = Some(
            status(person.status, "status")?
                .ok_or_else(|| Error::invalid("status", "must be set"))?,
        );
    }
    if named.contains(&"attributes") {
        patch.attributes = Some(person.attributes.map(struct_to_json).unwrap_or_default());
    }
    Ok(patch)
}

fn profile_field(person: &pb::Person, name: &str) -> Option<String> {
    match name {
        "first_name" => person.first_name.clone(),
        "last_name" => person.last_name.clone(),
        "phone" => person.phone.clone(),
        "avatar_url" => person.avatar_url.clone(),
        "timezone" => person.timezone.clone(),
        "locale" => person.locale.clone(),
        _ => None,
    }
}

fn populated_fields(person: &pb::Person) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if !person.external_id.is_empty() {
        fields.push("external_id");
    }
    if person.email.is_some() {
        fields.push("email");
    }
    for (name, _) in KNOWN_TRAITS {
        if profile_field(person, name).is_some() {
            fields.push(name);
        }
    }
    if person.status != 0 {
        fields.push("status");
    }
    if person.attributes.is_some() {
        fields.push("attributes");
    }
    fields
}
