//! The directory's pages: each kind of record as a list (search, filters,
//! one page at a time) and a detail page with its history, read through
//! the same use cases, filters and page tokens as the API's List and Get.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::session::Session;
use super::views::{
    Choice, CompanyRow, CustomerRow, EntityGroup, EntityTypeRow, Fact, History, HistoryEntry,
    MemberRow, MembershipRow, Pager, PersonRow, UserRow, address_lines, choices, customer_facts,
    customer_name, empty_state, entity_groups, history_entries, json_pairs, key_pairs,
    metadata_pairs, person_facts, person_name, user_facts, user_name,
};
use super::{Chrome, ConsoleState, Failure, Params, href, html};
use crate::domain::Caller;
use crate::domain::change::{ChangeBatchSize, ChangeCursor, ChangeFilter, ChangeKind};
use crate::domain::customer::{
    CustomerFilter, CustomerFilterInput, CustomerLookup, CustomerType, ExternalId,
};
use crate::domain::entity::{Entity, EntityFilter, entity_types_query};
use crate::domain::page::{KITH_PAGES, Page, PageRequest};
use crate::domain::person::{PersonFilter, PersonLookup, PersonStatus};
use crate::domain::user::{Member, MembershipFilter, UserFilter, UserLookup};
use crate::error::{Error, Result};

/// Changes in one page of a record's history.
const HISTORY_PAGE: usize = 50;

/// The request field a search's problems are reported on.
const SEARCH_FIELD: &str = "search";

const CUSTOMER_TYPES: [(&str, &str); 3] = [
    ("", "All types"),
    ("individual", "Individual"),
    ("team", "Team"),
];

const PERSON_STATUSES: [(&str, &str); 4] = [
    ("", "Any status"),
    ("active", "Active"),
    ("unsubscribed", "Unsubscribed"),
    ("bounced", "Bounced"),
];

/// A listing's query string: the search, and the page token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    q: String,
    page: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CustomerListQuery {
    q: String,
    #[serde(rename = "type")]
    kind: String,
    page: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PeopleQuery {
    q: String,
    status: String,
    page: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PageQuery {
    page: String,
}

/// A detail page's query string: where its history page starts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DetailQuery {
    history: String,
}

/// A customer page's query string: the page of each section, and whether
/// archived entities are shown.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CustomerQuery {
    members: String,
    entities: String,
    archived: String,
    history: String,
}

impl CustomerQuery {
    fn include_archived(&self) -> bool {
        self.archived == "1"
    }

    /// A link to the same customer page with `changes` made to its query,
    /// at the section `anchor`.
    fn link(&self, path: &str, changes: &[(&str, &str)], anchor: &str) -> String {
        let mut params = [
            ("members", self.members.as_str()),
            ("entities", self.entities.as_str()),
            ("archived", self.archived.as_str()),
            ("history", self.history.as_str()),
        ];
        for param in &mut params {
            if let Some(&(_, changed)) = changes.iter().find(|(name, _)| *name == param.0) {
                param.1 = changed;
            }
        }
        format!("{}#{anchor}", href(path, &params))
    }
}

/// The page a listing's link asks for: the first, or the one after
/// `token`, which must belong to the same query.
fn page_of(token: &str, query: &str) -> Result<PageRequest> {
    PageRequest::parse(&KITH_PAGES, None, token, query)
}

/// The links of a listing at `path` filtered by `params`, on the page
/// `token` named, with the next page's token if there is one.
fn pager(path: &str, params: &[(&str, &str)], token: &str, next: Option<&str>) -> Pager {
    let link = |page: &str| {
        let all: Vec<(&str, &str)> = params.iter().copied().chain([("page", page)]).collect();
        href(path, &all)
    };
    Pager {
        next: next.map(link),
        first: (!token.is_empty()).then(|| href(path, params)),
    }
}

fn customer_type(text: &str) -> Result<Option<CustomerType>> {
    match text {
        "" => Ok(None),
        "individual" => Ok(Some(CustomerType::Individual)),
        "team" => Ok(Some(CustomerType::Team)),
        _ => Err(Error::invalid("type", "must be individual or team")),
    }
}

fn person_status(text: &str) -> Result<Option<PersonStatus>> {
    if text.is_empty() {
        return Ok(None);
    }
    PersonStatus::parse(text)
        .map(Some)
        .ok_or_else(|| Error::invalid("status", "must be active, unsubscribed or bounced"))
}

/// A search over customers' (or companies') names, emails, keys and
/// external ids.
fn customer_search(text: &str) -> Result<CustomerFilter> {
    CustomerFilter::parse(CustomerFilterInput {
        query: (SEARCH_FIELD, text),
        ..CustomerFilterInput::default()
    })
}

#[derive(Template)]
#[template(path = "console/customers.html")]
struct CustomersPage {
    chrome: Chrome,
    search: String,
    kinds: Vec<Choice>,
    rows: Vec<CustomerRow>,
    empty: String,
    pager: Pager,
}

pub(super) async fn customers(
    State(state): State<ConsoleState>,
    session: Session,
    Params(query): Params<CustomerListQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let filter = CustomerFilter {
        kind: customer_type(&query.kind)?,
        ..customer_search(&query.q)?
    };
    let page = page_of(&query.page, &filter.canonical(caller.workspace))?;
    let listing = state
        .service
        .list_customers(caller, &filter, &page)
        .await?
        .items;
    let params = [("q", query.q.as_str()), ("type", query.kind.as_str())];
    let page = CustomersPage {
        chrome: session
            .chrome(&state, "Customers", "/console/customers")
            .await,
        kinds: choices(&CUSTOMER_TYPES, &query.kind),
        rows: listing.items.iter().map(CustomerRow::of).collect(),
        empty: empty_state("customer", "customers", &query.q, filter.kind.is_some()),
        pager: pager(
            "/console/customers",
            &params,
            &query.page,
            listing.next_token.as_deref(),
        ),
        search: query.q,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    chrome: Chrome,
    name: String,
    kind: &'static str,
    facts: Vec<Fact>,
    address: Vec<String>,
    metadata: Vec<(String, String)>,
    members: Vec<MemberRow>,
    members_pager: Pager,
    /// `None` when the customer has no external id, which entities are
    /// owned by.
    entities: Option<Vec<EntityGroup>>,
    entities_pager: Pager,
    include_archived: bool,
    archived_toggle: String,
    history: History,
}

pub(super) async fn customer(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Params(query): Params<CustomerQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let detail = state
        .service
        .get_customer(caller, &CustomerLookup::by_id(&id)?)
        .await?;
    let customer = &detail.customer;
    let record_id = customer.id.to_string();
    let (members, entities, history) = tokio::try_join!(
        members_of(&state, caller, customer.id, &query.members),
        entities_of(
            &state,
            caller,
            customer.external_id.as_ref(),
            query.include_archived(),
            &query.entities,
        ),
        history_of(
            &state,
            caller,
            ChangeKind::Customer,
            &record_id,
            &query.history
        ),
    )?;
    let path = format!("/console/customers/{record_id}");
    let name = customer_name(customer);
    let section_pager = |section: &str, token: &str, next: Option<String>| Pager {
        next: next.map(|next| query.link(&path, &[(section, next.as_str())], section)),
        first: (!token.is_empty()).then(|| query.link(&path, &[(section, "")], section)),
    };
    let page = CustomerPage {
        chrome: session
            .chrome(&state, name.clone(), "/console/customers")
            .await,
        kind: customer.kind.as_str(),
        facts: customer_facts(customer),
        address: customer
            .billing_address
            .as_ref()
            .map(address_lines)
            .unwrap_or_default(),
        metadata: metadata_pairs(&customer.metadata),
        members: members.items.iter().map(MemberRow::of).collect(),
        members_pager: section_pager("members", &query.members, members.next_token),
        entities_pager: section_pager(
            "entities",
            &query.entities,
            entities.as_ref().and_then(|page| page.next_token.clone()),
        ),
        entities: entities.map(|page| entity_groups(&page.items)),
        include_archived: query.include_archived(),
        // The filter changes, so its page token no longer applies.
        archived_toggle: query.link(
            &path,
            &[
                ("archived", if query.include_archived() { "" } else { "1" }),
                ("entities", ""),
            ],
            "entities",
        ),
        history: history_view(history, &query.history, |cursor| {
            query.link(&path, &[("history", cursor)], "history")
        }),
        name,
    };
    Ok(html(&page))
}

async fn members_of(
    state: &ConsoleState,
    caller: &Caller,
    customer: Uuid,
    token: &str,
) -> Result<Page<Member>> {
    let filter = MembershipFilter::of_company(customer);
    let page = page_of(token, &filter.canonical(caller.workspace))?;
    let listing = state
        .service
        .list_customer_members(caller, &CustomerLookup::Id(customer), &page)
        .await?;
    Ok(listing.items)
}

/// A page of the entities the customer with external id `owner` owns;
/// `None` without an owner.
async fn entities_of(
    state: &ConsoleState,
    caller: &Caller,
    owner: Option<&ExternalId>,
    include_archived: bool,
    token: &str,
) -> Result<Option<Page<Entity>>> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let filter = EntityFilter::parse("", include_archived, "")?;
    let page = page_of(token, &filter.canonical(caller.workspace, owner))?;
    let listing = state
        .service
        .list_entities(caller, owner, &filter, &page)
        .await?;
    Ok(Some(listing.items))
}

/// A page of one record's changes, oldest first (the log's order), from
/// the oldest kept or after `cursor`; and the next page's cursor when the
/// page was full.
async fn history_of(
    state: &ConsoleState,
    caller: &Caller,
    kind: ChangeKind,
    record_id: &str,
    cursor: &str,
) -> Result<(Vec<HistoryEntry>, Option<String>)> {
    // A customer row is logged as a customer and as a company: the
    // record's own kind says it once.
    let filter = ChangeFilter::parse(vec![kind], "", record_id)?;
    let after = if cursor.is_empty() {
        None
    } else {
        Some(ChangeCursor::parse(cursor, caller.workspace, "history")?)
    };
    let page = state
        .service
        .list_changes(caller, &filter, after, ChangeBatchSize(HISTORY_PAGE))
        .await?;
    let later = (page.changes.len() == HISTORY_PAGE).then(|| page.next.encode(caller.workspace));
    Ok((history_entries(&page.changes), later))
}

/// The history section, its links made by `link` from a cursor (empty: the
/// oldest change kept).
fn history_view(
    (entries, later): (Vec<HistoryEntry>, Option<String>),
    cursor: &str,
    link: impl Fn(&str) -> String,
) -> History {
    History {
        entries,
        later: later.map(|later| link(&later)),
        first: (!cursor.is_empty()).then(|| link("")),
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    chrome: Chrome,
    search: String,
    rows: Vec<UserRow>,
    empty: String,
    pager: Pager,
}

pub(super) async fn users(
    State(state): State<ConsoleState>,
    session: Session,
    Params(query): Params<ListQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let filter = UserFilter::parse("", SEARCH_FIELD, &query.q)?;
    let page = page_of(&query.page, &filter.canonical(caller.workspace))?;
    let listing = state
        .service
        .list_users(caller, &filter, &page)
        .await?
        .items;
    let page = UsersPage {
        chrome: session.chrome(&state, "Users", "/console/users").await,
        rows: listing.items.iter().map(UserRow::of).collect(),
        empty: empty_state("user", "users", &query.q, false),
        pager: pager(
            "/console/users",
            &[("q", query.q.as_str())],
            &query.page,
            listing.next_token.as_deref(),
        ),
        search: query.q,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    chrome: Chrome,
    name: String,
    facts: Vec<Fact>,
    keys: Vec<(String, String)>,
    traits: Vec<(String, String)>,
    memberships: Vec<MembershipRow>,
    history: History,
}

pub(super) async fn user(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Params(query): Params<DetailQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let detail = state
        .service
        .get_user(caller, &UserLookup::by_id(&id)?)
        .await?;
    let record_id = detail.user.id.to_string();
    let history = history_of(&state, caller, ChangeKind::User, &record_id, &query.history).await?;
    let path = format!("/console/users/{record_id}");
    let name = user_name(&detail);
    let page = UserPage {
        chrome: session.chrome(&state, name.clone(), "/console/users").await,
        facts: user_facts(&detail),
        keys: key_pairs(&detail.user.keys),
        traits: json_pairs(&detail.user.traits),
        memberships: detail.memberships.iter().map(MembershipRow::of).collect(),
        history: history_view(history, &query.history, |cursor| {
            format!("{}#history", href(&path, &[("history", cursor)]))
        }),
        name,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/companies.html")]
struct CompaniesPage {
    chrome: Chrome,
    search: String,
    rows: Vec<CompanyRow>,
    empty: String,
    pager: Pager,
}

pub(super) async fn companies(
    State(state): State<ConsoleState>,
    session: Session,
    Params(query): Params<ListQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let filter = customer_search(&query.q)?;
    let page = page_of(&query.page, &filter.canonical(caller.workspace))?;
    let listing = state
        .service
        .list_companies(caller, &filter, &page)
        .await?
        .items;
    let page = CompaniesPage {
        chrome: session
            .chrome(&state, "Companies", "/console/companies")
            .await,
        rows: listing.items.iter().map(CompanyRow::of).collect(),
        empty: empty_state("company", "companies", &query.q, false),
        pager: pager(
            "/console/companies",
            &[("q", query.q.as_str())],
            &query.page,
            listing.next_token.as_deref(),
        ),
        search: query.q,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage {
    chrome: Chrome,
    search: String,
    statuses: Vec<Choice>,
    rows: Vec<PersonRow>,
    empty: String,
    pager: Pager,
}

pub(super) async fn people(
    State(state): State<ConsoleState>,
    session: Session,
    Params(query): Params<PeopleQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let status = person_status(&query.status)?;
    let filter = PersonFilter::parse(status, SEARCH_FIELD, &query.q)?;
    let page = page_of(&query.page, &filter.canonical(caller.workspace))?;
    let listing = state
        .service
        .list_people(caller, &filter, &page)
        .await?
        .items;
    let params = [("q", query.q.as_str()), ("status", query.status.as_str())];
    let page = PeoplePage {
        chrome: session.chrome(&state, "People", "/console/people").await,
        statuses: choices(&PERSON_STATUSES, &query.status),
        rows: listing.items.iter().map(PersonRow::of).collect(),
        empty: empty_state("person", "people", &query.q, status.is_some()),
        pager: pager(
            "/console/people",
            &params,
            &query.page,
            listing.next_token.as_deref(),
        ),
        search: query.q,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    chrome: Chrome,
    name: String,
    facts: Vec<Fact>,
    attributes: Vec<(String, String)>,
    history: History,
}

pub(super) async fn person(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Params(query): Params<DetailQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let person = state
        .service
        .get_person(caller, &PersonLookup::by_id(&id)?)
        .await?;
    let record_id = person.id.to_string();
    let history = history_of(
        &state,
        caller,
        ChangeKind::Person,
        &record_id,
        &query.history,
    )
    .await?;
    let path = format!("/console/people/{record_id}");
    let name = person_name(&person);
    let page = PersonPage {
        chrome: session
            .chrome(&state, name.clone(), "/console/people")
            .await,
        facts: person_facts(&person),
        attributes: json_pairs(&person.attributes),
        history: history_view(history, &query.history, |cursor| {
            format!("{}#history", href(&path, &[("history", cursor)]))
        }),
        name,
    };
    Ok(html(&page))
}

#[derive(Template)]
#[template(path = "console/entity_types.html")]
struct EntityTypesPage {
    chrome: Chrome,
    rows: Vec<EntityTypeRow>,
    pager: Pager,
}

pub(super) async fn entity_types(
    State(state): State<ConsoleState>,
    session: Session,
    Params(query): Params<PageQuery>,
) -> Result<Response, Failure> {
    let caller = &session.caller;
    let page = page_of(&query.page, &entity_types_query(caller.workspace))?;
    let listing = state.service.list_entity_types(caller, &page).await?.items;
    let page = EntityTypesPage {
        chrome: session
            .chrome(&state, "Entity types", "/console/entity-types")
            .await,
        rows: listing.items.iter().map(EntityTypeRow::of).collect(),
        pager: pager(
            "/console/entity-types",
            &[],
            &query.page,
            listing.next_token.as_deref(),
        ),
    };
    Ok(html(&page))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::api::console::views::Moment;

    #[test]
    fn records_render_as_text_never_as_markup() {
        let page = CustomersPage {
            chrome: Chrome::signed_in(
                "Customers".to_owned(),
                "<b>workspace</b>".to_owned(),
                "/console/customers",
                "token".to_owned(),
            ),
            search: "\"><script>alert(2)</script>".to_owned(),
            kinds: choices(&CUSTOMER_TYPES, "team"),
            rows: vec![CustomerRow {
                id: Uuid::nil().to_string(),
                name: "<script>alert(1)</script>".to_owned(),
                email: "ada@example.com".to_owned(),
                external_id: "ada-1".to_owned(),
                kind: "individual",
                members: 0,
                created: Moment::of(Utc::now()),
            }],
            empty: String::new(),
            pager: Pager {
                next: Some(href("/console/customers", &[("q", "a"), ("page", "b")])),
                first: None,
            },
        };
        let html = page.render().unwrap();
        // askama writes numeric character references.
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>workspace"), "{html}");
        assert!(!html.contains("\"><script"), "{html}");
        assert!(html.contains("q=a&#38;page=b"), "{html}");
        // The one script is the console's own file.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains(r#"<option value="team" selected>"#), "{html}");
    }
}
