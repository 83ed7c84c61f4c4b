//! `kith import`, `export`, `watch`, `history` and `backup` as people use
//! them: the real binary against a real server, on both backends.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kith::pb::kith::v1 as pb;
use serde_json::Value;

use crate::harness::{Backend, TestApp, backend_tests, require};

backend_tests!(
    a_100k_row_csv_of_people_imports_with_exact_rejects_and_reimports_as_updates,
    a_100k_row_jsonl_of_people_imports_into_its_own_workspace,
    every_kind_imports_reports_bad_rows_and_reimports_as_updates,
    every_kind_round_trips_through_export_and_import_in_both_formats,
    an_interrupted_import_says_how_far_it_got_and_a_rerun_completes_it,
    watch_prints_another_clients_write_and_resumes_from_its_cursor,
    history_lists_a_records_changes_oldest_first,
    backup_copies_a_sqlite_database_during_writes,
    errors_are_in_words_with_documented_exit_codes,
    csv_columns_reach_map_keys_nested_fields_and_free_form_keys,
    customers_are_matched_by_email_and_take_the_rows_external_id,
    more_conflicts_than_a_reply_itemises_are_counted_and_later_ones_itemised,
    rate_limited_imports_wait_and_finish,
);

/// What one run of `kith` did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The summary line of an import.
    fn summary(&self) -> &str {
        self.stderr
            .lines()
            .find(|line| {
                ["imported ", "interrupted importing ", "stopped importing "]
                    .iter()
                    .any(|verb| line.starts_with(verb))
            })
            .unwrap_or_else(|| panic!("no summary in:\n{}", self.stderr))
    }

    fn rejection_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("line "))
            .collect()
    }
}

fn kith_command(app: &TestApp, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kith"));
    command
        .args(args)
        .env("KITH_SERVER", format!("http://{}", app.grpc))
        .env("KITH_API_KEY", key)
        .stdin(Stdio::null());
    command
}

/// Runs `kith` to its end, off the runtime the server runs on.
async fn kith(app: &TestApp, key: &str, args: &[&str]) -> Ran {
    let mut command = kith_command(app, key, args);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run kith"))
        .await
        .unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `kith import KIND --file FILE --rejects REJECTS`.
async fn import(app: &TestApp, key: &str, kind: &str, file: &Path, rejects: &Path) -> Ran {
    kith(
        app,
        key,
        &[
            "import",
            kind,
            "--file",
            arg(file),
            "--rejects",
            arg(rejects),
        ],
    )
    .await
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// 100k people as CSV, every 9,973rd with a bad email and every 25,013th
/// with a bad time zone; returns the file and the bad lines.
fn people_csv(rows: usize) -> (String, Vec<String>) {
    let mut text = String::from("external_id,email,first_name,last_name,status,plan,timezone\n");
    let mut bad = Vec::new();
    for i in 1..=rows {
        let (email, timezone) = if i % 9_973 == 0 {
            (format!("not-an-email-{i}"), "Europe/Paris")
        } else if i % 25_013 == 0 {
            (format!("p{i}@example.com"), "Mars/Olympus")
        } else {
            (format!("p{i}@example.com"), "Europe/Paris")
        };
        let status = ["active", "unsubscribed", "bounced"][i % 3];
        let line = format!(
            "p{i},{email},First{i},Last{i},{status},plan-{},{timezone}",
            i % 7
        );
        if email.starts_with("not-") || timezone.starts_with("Mars") {
            bad.push(line.clone());
        }
        text.push_str(&line);
        text.push('\n');
    }
    (text, bad)
}

fn people_jsonl(rows: usize, bad_every: usize) -> (String, usize) {
    let mut text = String::new();
    let mut bad = 0;
    for i in 1..=rows {
        if i % bad_every == 0 {
            // An unknown field: rejected as it is read.
            text.push_str(&format!("{{\"externalId\":\"j{i}\",\"nickname\":\"x\"}}\n"));
            bad += 1;
        } else {
            text.push_str(&format!(
                "{{\"externalId\":\"j{i}\",\"email\":\"j{i}@example.com\",\"firstName\":\"Jay{i}\",\"attributes\":{{\"n\":{i}}}}}\n"
            ));
        }
    }
    (text, bad)
}

async fn person(app: &TestApp, key: &str, external_id: &str) -> Option<pb::Person> {
    app.people_with(Some(key))
        .get_person(pb::GetPersonRequest {
            lookup: Some(pb::get_person_request::Lookup::ExternalId(
                external_id.to_owned(),
            )),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().person)
}

async fn a_100k_row_csv_of_people_imports_with_exact_rejects_and_reimports_as_updates(
    backend: Backend,
) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let (text, bad) = people_csv(100_000);
    let file = write_file(dir.path(), "people.csv", &text);
    let rejects = dir.path().join("rejects.csv");
    let args = [
        "import",
        "people",
        "--file",
        arg(&file),
        "--rejects",
        arg(&rejects),
    ];

    let first = kith(&app, &app.key, &args).await;
    assert_eq!(
        first.code, 1,
        "rejected rows exit with 1:\n{}",
        first.stderr
    );
    let good = 100_000 - bad.len();
    assert!(
        first.summary().contains("100000 rows in")
            && first.summary().contains(&format!(
                "{good} created, 0 updated, {} rejected (written to {})",
                bad.len(),
                rejects.display()
            )),
        "{}",
        first.summary()
    );
    // The rejects file holds the header and exactly the bad lines, ready to
    // fix and import again; each is reported with its line and reason.
    let written = std::fs::read_to_string(&rejects).unwrap();
    let mut expected =
        vec!["external_id,email,first_name,last_name,status,plan,timezone".to_owned()];
    expected.extend(bad.iter().cloned());
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    let reported = first.rejection_lines();
    assert_eq!(reported.len(), bad.len());
    assert!(
        reported.contains(&"line 9974: email: must be a valid email address"),
        "{reported:?}"
    );
    assert!(
        reported.contains(&"line 25014: timezone: 'Mars/Olympus' is not an IANA time zone"),
        "{reported:?}"
    );
    // Not a terminal: plain progress lines, no control characters.
    assert!(
        first.stderr.contains("importing people from"),
        "{}",
        first.stderr
    );
    assert!(!first.stderr.contains('\u{1b}') && !first.stderr.contains('\r'));

    let sample = person(&app, &app.key, "p4242")
        .await
        .expect("p4242 imported");
    assert_eq!(sample.email.as_deref(), Some("p4242@example.com"));
    assert_eq!(sample.first_name.as_deref(), Some("First4242"));
    assert_eq!(sample.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(sample.status, pb::PersonStatus::Active as i32);
    let plan = &sample.attributes.unwrap().fields["plan"];
    assert_eq!(
        plan.kind,
        Some(prost_types::value::Kind::StringValue("plan-0".into()))
    );
    assert!(person(&app, &app.key, "p9973").await.is_none());

    let again = kith(&app, &app.key, &args).await;
    assert_eq!(again.code, 1);
    assert!(
        again.summary().contains(&format!(
            "0 created, {good} updated, {} rejected",
            bad.len()
        )),
        "{}",
        again.summary()
    );
}

async fn a_100k_row_jsonl_of_people_imports_into_its_own_workspace(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let key = app.other_workspace_key().await;
    let dir = tempfile::tempdir().unwrap();
    let (text, bad) = people_jsonl(100_000, 20_000);
    let file = write_file(dir.path(), "people.jsonl", &text);
    let rejects = dir.path().join("rejects.jsonl");
    let ran = import(&app, &key, "people", &file, &rejects).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.summary().contains(&format!(
            "{} created, 0 updated, {bad} rejected",
            100_000 - bad
        )),
        "{}",
        ran.summary()
    );
    let written = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(written.lines().count(), bad);
    assert!(written.lines().all(|l| l.contains("\"nickname\"")));
    assert!(
        ran.rejection_lines()
            .contains(&"line 20000: unrecognized field name 'nickname' (column 33)"),
        "{:?}",
        ran.rejection_lines()
    );
    let sample = person(&app, &key, "j77777").await.expect("j77777 imported");
    assert_eq!(sample.first_name.as_deref(), Some("Jay77777"));
    // The default workspace saw none of it.
    assert!(person(&app, &app.key, "j77777").await.is_none());
}

/// Files of every kind but people, each with bad rows.
struct Directory {
    entity_types: String,
    customers: String,
    entities: String,
    users: String,
}

const CUSTOMERS: usize = 1_000;

fn directory() -> Directory {
    let entity_types = "id,display_name,attribution_keys\n\
                        seat,Seat,\"[\"\"plan\"\"]\"\n\
                        project,Project,\n\
                        bad id!,Nope,\n"
        .to_owned();
    let mut customers = String::from(
        "external_id,email,name,type,billing_address.country,billing_address.city,tier\n",
    );
    for i in 1..=CUSTOMERS {
        // Every 250th has a city and no country: refused by the server.
        let country = if i % 250 == 0 { "" } else { "FR" };
        let kind = if i % 2 == 0 { "team" } else { "individual" };
        customers.push_str(&format!(
            "c{i},c{i}@example.com,Customer {i},{kind},{country},Lyon,tier-{}\n",
            i % 3
        ));
    }
    let mut entities = String::from("customer_external_id,id,type_id,display_name,color\n");
    for c in 1..=10 {
        for e in 1..=100 {
            // One unknown type per customer, and an owner that does not exist.
            let kind = if e == 50 {
                "nope"
            } else if e % 2 == 0 {
                "seat"
            } else {
                "project"
            };
            entities.push_str(&format!("c{c},e{e},{kind},Entity {e},red\n"));
        }
    }
    entities.push_str("nobody,e1,seat,Orphan,\n");
    let mut users = String::new();
    for i in 1..=CUSTOMERS {
        users.push_str(&format!(
            "{{\"keys\":{{\"email\":\"u{i}@example.com\",\"user_id\":\"u{i}\"}},\"name\":\"User {i}\",\"traits\":{{\"logins\":{i}}}}}\n"
        ));
    }
    users.push_str("{\"keys\":{},\"name\":\"No keys\"}\n");
    Directory {
        entity_types,
        customers,
        entities,
        users,
    }
}

async fn import_directory(app: &TestApp, key: &str, dir: &Path) -> Vec<Ran> {
    let files = directory();
    let mut ran = Vec::new();
    for (kind, name, text) in [
        ("entity-types", "types.csv", &files.entity_types),
        ("customers", "customers.csv", &files.customers),
        ("entities", "entities.csv", &files.entities),
        ("users", "users.jsonl", &files.users),
    ] {
        let file = write_file(dir, name, text);
        let rejects = dir.join(format!("rejected-{name}"));
        ran.push(import(app, key, kind, &file, &rejects).await);
    }
    ran
}

async fn every_kind_imports_reports_bad_rows_and_reimports_as_updates(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let first = import_directory(&app, &app.key, dir.path()).await;
    let [types, customers, entities, users] = &first[..] else {
        unreachable!()
    };
    for ran in &first {
        assert_eq!(ran.code, 1, "{}", ran.stderr);
    }
    assert!(
        types.summary().contains("2 created, 0 updated, 1 rejected"),
        "{}",
        types.summary()
    );
    assert_eq!(
        types.rejection_lines(),
        ["line 4: id: must be 1 to 255 letters, digits or `_|.-`, starting with a letter or digit"]
    );
    assert!(
        customers
            .summary()
            .contains(&format!("{} created, 0 updated, 4 rejected", CUSTOMERS - 4)),
        "{}",
        customers.summary()
    );
    assert!(
        customers
            .rejection_lines()
            .iter()
            .all(|l| l.contains("billing_address.country"))
    );
    assert!(
        entities
            .summary()
            .contains("990 created, 0 updated, 11 rejected"),
        "{}",
        entities.summary()
    );
    assert!(
        entities
            .rejection_lines()
            .contains(&"line 51: type_id: entity type 'nope' does not exist or is archived"),
        "{:?}",
        entities.rejection_lines()
    );
    assert!(
        entities
            .rejection_lines()
            .iter()
            .any(|l| l.starts_with("line 1002: "))
    );
    assert!(
        users
            .summary()
            .contains(&format!("{CUSTOMERS} created, 0 updated, 1 rejected")),
        "{}",
        users.summary()
    );
    // The rejects files hold exactly the bad rows.
    let rejected = std::fs::read_to_string(dir.path().join("rejected-entities.csv")).unwrap();
    assert_eq!(rejected.lines().count(), 1 + 11);
    assert!(
        rejected
            .lines()
            .skip(1)
            .all(|l| l.contains(",nope,") || l.starts_with("nobody,"))
    );
    let rejected = std::fs::read_to_string(dir.path().join("rejected-users.jsonl")).unwrap();
    assert_eq!(rejected, "{\"keys\":{},\"name\":\"No keys\"}\n");

    // What was imported is there.
    let entity = app
        .entities()
        .get_entity(pb::GetEntityRequest {
            customer_external_id: "c7".into(),
            entity_id: "e42".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entity
        .unwrap();
    assert_eq!(entity.type_id, "seat");
    assert_eq!(entity.metadata["color"], "red");
    let customer = app
        .customers()
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::ExternalId("c10".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(customer.r#type, pb::CustomerType::Team as i32);
    assert_eq!(
        customer.billing_address.unwrap().city.as_deref(),
        Some("Lyon")
    );
    assert_eq!(
        customer.metadata["tier"].kind,
        Some(pb::metadata_value::Kind::StringValue("tier-1".into()))
    );

    let again = import_directory(&app, &app.key, dir.path()).await;
    let [types, customers, entities, users] = &again[..] else {
        unreachable!()
    };
    assert!(
        types.summary().contains("0 created, 2 updated, 1 rejected"),
        "{}",
        types.summary()
    );
    assert!(
        customers
            .summary()
            .contains(&format!("0 created, {} updated, 4 rejected", CUSTOMERS - 4)),
        "{}",
        customers.summary()
    );
    assert!(
        entities
            .summary()
            .contains("0 created, 990 updated, 11 rejected"),
        "{}",
        entities.summary()
    );
    assert!(
        users
            .summary()
            .contains(&format!("0 created, {CUSTOMERS} updated, 1 rejected")),
        "{}",
        users.summary()
    );
}

/// A record as exported, without what a new workspace assigns anew: ids
/// (but an entity's and a type's, which are the caller's) and times (but
/// whether an entity is archived).
fn comparable(kind: &str, line: &str) -> String {
    let mut record: Value = serde_json::from_str(line).unwrap();
    let object = record.as_object_mut().unwrap();
    for assigned in [
        "workspaceId",
        "createdAt",
        "updatedAt",
        "firstSeenAt",
        "lastSeenAt",
    ] {
        object.remove(assigned);
    }
    if !matches!(kind, "entities" | "entity-types") {
        object.remove("id");
    }
    let archived = object.remove("archivedAt").is_some();
    object.insert("archived".into(), Value::Bool(archived));
    record.to_string()
}

fn comparable_set(kind: &str, export: &Ran) -> BTreeSet<String> {
    assert_eq!(export.code, 0, "{}", export.stderr);
    export
        .stdout
        .lines()
        .map(|line| comparable(kind, line))
        .collect()
}

async fn export(app: &TestApp, key: &str, kind: &str, format: &str) -> Ran {
    kith(app, key, &["export", kind, "--format", format]).await
}

async fn every_kind_round_trips_through_export_and_import_in_both_formats(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    import_directory(&app, &app.key, dir.path()).await;
    let (people, _) = people_jsonl(500, 1_000);
    let people_file = write_file(dir.path(), "people.jsonl", &people);
    kith(
        &app,
        &app.key,
        &["import", "people", "--file", arg(&people_file)],
    )
    .await;
    // An archived entity stays archived.
    app.entities()
        .batch_archive_entities(pb::BatchArchiveEntitiesRequest {
            customer_external_id: "c3".into(),
            ids: vec!["e9".into()],
        })
        .await
        .unwrap();

    // Into the order an empty workspace needs: owners and types first.
    let kinds = ["customers", "entity-types", "entities", "users", "people"];
    for format in ["jsonl", "csv"] {
        let empty = app.other_workspace_key().await;
        for kind in kinds {
            let exported = export(&app, &app.key, kind, format).await;
            assert_eq!(exported.code, 0, "{}", exported.stderr);
            let file = write_file(dir.path(), &format!("{kind}.{format}"), &exported.stdout);
            let imported = kith(&app, &empty, &["import", kind, "--file", arg(&file)]).await;
            assert_eq!(imported.code, 0, "{kind} as {format}: {}", imported.stderr);
        }
        for kind in kinds {
            let original = comparable_set(kind, &export(&app, &app.key, kind, "jsonl").await);
            let copy = comparable_set(kind, &export(&app, &empty, kind, "jsonl").await);
            assert!(!original.is_empty());
            assert_eq!(original, copy, "{kind} through {format}");
        }
    }
}

async fn an_interrupted_import_says_how_far_it_got_and_a_rerun_completes_it(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = people_jsonl(100_000, 1_000_000);
    let file = write_file(dir.path(), "people.jsonl", &text);
    let args = ["import", "people", "--file", arg(&file)];

    let mut child = kith_command(&app, &app.key, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let interrupted = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        let mut seen = Vec::new();
        // Interrupt at the first progress line, a tenth into the file.
        for line in lines.by_ref() {
            let progress = line.starts_with("importing people");
            seen.push(line);
            if progress {
                Command::new("kill").args(["-INT", &pid]).status().unwrap();
                break;
            }
        }
        seen.extend(lines);
        (child.wait().unwrap().code(), seen)
    })
    .await
    .unwrap();
    let (code, lines) = interrupted;
    assert_eq!(code, Some(130), "{lines:?}");
    let stopped = lines
        .iter()
        .find_map(|l| l.strip_prefix("stopped after line "))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let last_line: usize = stopped.split(';').next().unwrap().parse().unwrap();
    assert!(last_line < 100_000, "stopped before the end: {lines:?}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("interrupted importing people"))
        .unwrap();
    assert!(
        summary.contains(&format!("{last_line} rows in")),
        "{summary}"
    );
    let stored = export(&app, &app.key, "people", "jsonl")
        .await
        .stdout
        .lines()
        .count();
    assert_eq!(
        stored, last_line,
        "every row up to the reported line, and no more"
    );

    let rerun = kith(&app, &app.key, &args).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert!(
        rerun.summary().contains(&format!(
            "{} created, {last_line} updated, 0 rejected",
            100_000 - last_line
        )),
        "{}",
        rerun.summary()
    );
}

async fn watch_prints_another_clients_write_and_resumes_from_its_cursor(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut child = kith_command(&app, &app.key, &["watch", "--kinds", "person", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The stream is open once its first checkpoint is; a write after it is
    // seen. Keep writing until one arrives.
    let mut people = app.people();
    let mut seen = None;
    for attempt in 0..50 {
        people
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(pb::PersonUpsert {
                    user_id: format!("watched-{attempt}"),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
        if let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let line = seen.expect("kith watch printed the write");
    let change: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(change["kind"], "CHANGE_KIND_PERSON");
    assert_eq!(change["operation"], "CHANGE_OPERATION_CREATED");
    assert!(
        change["person"]["externalId"]
            .as_str()
            .unwrap()
            .starts_with("watched-")
    );

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let cursor = stderr
        .lines()
        .find_map(|l| l.strip_prefix("resume with: kith watch --from "))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned();

    // A write made while nobody watched is printed by a watch resumed from
    // that cursor, in words.
    people
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(pb::PersonUpsert {
                user_id: "while-away".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut child = kith_command(&app, &app.key, &["watch", "--from", &cursor])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Changes after the cursor may include a later `watched-…` write, then
    // the one made while away; a watch that prints nothing fails here.
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut resumed = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(10)) {
        let found = line.contains("(while-away)");
        resumed.push(line);
        if found {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let away = resumed
        .iter()
        .find(|l| l.contains("(while-away)"))
        .unwrap_or_else(|| panic!("the resumed watch printed {resumed:?}"));
    assert!(away.contains("person created"), "{away}");
}

async fn history_lists_a_records_changes_oldest_first(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    let upsert = |email: &str| pb::UpsertPersonRequest {
        person: Some(pb::PersonUpsert {
            user_id: "storied".into(),
            email: Some(email.into()),
            ..Default::default()
        }),
    };
    let created = people
        .upsert_person(upsert("a@example.com"))
        .await
        .unwrap()
        .into_inner();
    people.upsert_person(upsert("b@example.com")).await.unwrap();
    let id = created.person.unwrap().id;

    let ran = kith(&app, &app.key, &["history", "person", &id]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("person created") && lines[0].contains(&id),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("person updated"), "{}", lines[1]);

    let json = kith(&app, &app.key, &["history", "person", &id, "--json"]).await;
    let emails: Vec<String> = json
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["person"]["email"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);

    let none = kith(
        &app,
        &app.key,
        &["history", "person", "01939a4e-8c1f-7cc3-b1c4-5f2e6a7b8c9d"],
    )
    .await;
    assert_eq!(none.code, 0);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("no changes are kept for that record"));
}

async fn backup_copies_a_sqlite_database_during_writes(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let backup = |app_url: String, copy: PathBuf| async move {
        let output = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kith"))
                .args([
                    "backup",
                    "--database-url",
                    &app_url,
                    "--to",
                    copy.to_str().unwrap(),
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    if backend == Backend::Postgres {
        let (code, stderr) = backup(app.database_url().to_owned(), copy).await;
        assert_eq!(code, Some(3));
        assert!(stderr.contains("pg_dump"), "{stderr}");
        return;
    }
    // Writers keep going until the copy is made.
    let copied = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut people = app.people();
        let copied = std::sync::Arc::clone(&copied);
        tokio::spawn(async move {
            let mut i = 0;
            while !copied.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let people_batch = (0..25)
                    .map(|j| pb::PersonUpsert {
                        user_id: format!("b{i}-{j}"),
                        ..Default::default()
                    })
                    .collect();
                people
                    .batch_upsert_people(pb::BatchUpsertPeopleRequest {
                        people: people_batch,
                    })
                    .await
                    .unwrap();
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, stderr) = backup(app.database_url().to_owned(), copy.clone()).await;
    copied.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");

    use sqlx::{Connection as _, Row as _};
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", copy.display()))
        .await
        .unwrap();
    let check: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(check, "ok");
    let people: i64 = sqlx::query("SELECT count(*) FROM people")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    // A snapshot taken while writes went on: whole batches only, some of
    // them, not all.
    assert_eq!(people % 25, 0, "{people}");
    assert!(
        people > 0 && people < batches * 25,
        "{people} of {}",
        batches * 25
    );

    let (code, stderr) = backup(app.database_url().to_owned(), copy).await;
    assert_eq!(code, Some(2), "an existing file is never overwritten");
    assert!(stderr.contains("exists"), "{stderr}");
}

async fn errors_are_in_words_with_documented_exit_codes(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "types.csv",
        "id,display_name,colour\nseat,Seat,red\n",
    );

    let unknown = kith(
        &app,
        &app.key,
        &["import", "entity-types", "--file", arg(&file)],
    )
    .await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains(
            "unknown column `colour`; the columns an import reads are: id, display_name, \
             attribution_keys, archived_at"
        ),
        "{}",
        unknown.stderr
    );

    let file = write_file(dir.path(), "people.jsonl", "{\"externalId\":\"x\"}\n");
    let bad_key = kith(
        &app,
        "kith_nope",
        &["import", "people", "--file", arg(&file)],
    )
    .await;
    assert_eq!(bad_key.code, 3);
    assert!(
        bad_key.stderr.contains("the server refused the API key"),
        "{}",
        bad_key.stderr
    );

    let mut command = kith_command(&app, &app.key, &["export", "people"]);
    command.env("KITH_SERVER", "http://127.0.0.1:1");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot reach the server at http://127.0.0.1:1"),
        "{stderr}"
    );

    let missing = kith(
        &app,
        &app.key,
        &["import", "people", "--file", "/no/such/file.csv"],
    )
    .await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("cannot open /no/such/file.csv"),
        "{}",
        missing.stderr
    );

    let help = kith(&app, &app.key, &["import", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("Exit codes:"));
}

/// The bar on a terminal (a pty from `script`), and the same summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_import_draws_a_bar() {
    let app = require!(TestApp::spawn(Backend::Sqlite).await);
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = people_jsonl(30_000, 1_000_000);
    let file = write_file(dir.path(), "people.jsonl", &text);
    let inner = format!(
        "{} import people --file {} 2>&1",
        env!("CARGO_BIN_EXE_kith"),
        file.display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &inner, "/dev/null"])
        .env("KITH_SERVER", format!("http://{}", app.grpc))
        .env("KITH_API_KEY", &app.key)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains('\u{1b}'),
        "a terminal gets the bar's control sequences: {shown:?}"
    );
    assert!(
        !shown.contains("importing people from"),
        "and no plain progress lines"
    );
    assert!(
        shown.contains("30000 created, 0 updated, 0 rejected"),
        "{shown}"
    );
}

async fn csv_columns_reach_map_keys_nested_fields_and_free_form_keys(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let dir = tempfile::tempdir().unwrap();
    let mut text = b"keys.email,keys.user_id,name,traits.plan,tier\n\
        a@example.com,ua,Ann,pro,gold\n"
        .to_vec();
    // Latin-1, not UTF-8: one bad row, not a bad file.
    text.extend_from_slice(b"b@example.com,ub,Jos\xe9,free,\n");
    text.extend_from_slice(b"c@example.com,uc,Cy,,\n");
    let file = dir.path().join("users.csv");
    std::fs::write(&file, &text).unwrap();
    let rejects = dir.path().join("rejects.csv");
    let ran = import(&app, &app.key, "users", &file, &rejects).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.summary().contains("2 created, 0 updated, 1 rejected"),
        "{}",
        ran.summary()
    );
    assert_eq!(ran.rejection_lines(), ["line 3: is not UTF-8 text"]);
    let written = std::fs::read(&rejects).unwrap();
    assert_eq!(
        written, b"keys.email,keys.user_id,name,traits.plan,tier\nb@example.com,ub,Jos\xe9,free,\n",
        "the bad row as it was read"
    );
    let user = app
        .users()
        .lookup_user(pb::LookupUserRequest {
            keys: [("user_id".to_owned(), "ua".to_owned())].into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.keys["email"], "a@example.com");
    assert_eq!(user.name, "Ann");
    let traits = user.traits.unwrap().fields;
    let text_of = |name: &str| match &traits[name].kind {
        Some(prost_types::value::Kind::StringValue(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(text_of("plan"), "pro");
    assert_eq!(text_of("tier"), "gold", "an unknown column is a trait");

    let file = write_file(
        dir.path(),
        "customers.csv",
        "external_id,email,billing_address.country,billing_address.zip\nc1,c1@example.com,FR,75001\n",
    );
    let typo = kith(
        &app,
        &app.key,
        &["import", "customers", "--file", arg(&file)],
    )
    .await;
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr
            .contains("unknown column `billing_address.zip`; billing_address has: country, line1"),
        "{}",
        typo.stderr
    );
}

async fn customers_are_matched_by_email_and_take_the_rows_external_id(backend: Backend) {
    let app = require!(TestApp::spawn(backend).await);
    let existing = app
        .customers()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: Some("known@example.com".into()),
                name: Some("Before".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "customers.csv",
        "external_id,email,name\nk1,known@example.com,After\n,new@example.com,New\n",
    );
    let ran = kith(
        &app,
        &app.key,
        &["import", "customers", "--file", arg(&file)],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.summary().contains("1 created, 1 updated, 0 rejected"),
        "{}",
        ran.summary()
    );
    let updated = app
        .customers()
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::ExternalId("k1".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(updated.id, existing.id, "the customer the email found");
    assert_eq!(updated.name.as_deref(), Some("After"));

    // Again: the one with an external id by it, the other by its email.
    let again = kith(
        &app,
        &app.key,
        &["import", "customers", "--file", arg(&file)],
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.summary().contains("0 created, 2 updated, 0 rejected"),
        "{}",
        again.summary()
    );
}

async fn more_conflicts_than_a_reply_itemises_are_counted_and_later_ones_itemised(
    backend: Backend,
) {
    const HELD: usize = 150;
    let app = require!(TestApp::spawn(backend).await);
    let mut people = app.people();
    // Holders of the emails, and the people who will claim them.
    for prefix in ["holder", "taker"] {
        for chunk in (0..HELD).collect::<Vec<_>>().chunks(100) {
            people
                .batch_upsert_people(pb::BatchUpsertPeopleRequest {
                    people: chunk
                        .iter()
                        .map(|i| pb::PersonUpsert {
                            user_id: format!("{prefix}-{i}"),
                            email: Some(format!("{prefix}-{i}@example.com")),
                            ..Default::default()
                        })
                        .collect(),
                })
                .await
                .unwrap();
        }
    }
    // Each taker row gives an existing person the email another holds:
    // only the database can refuse it. 150 of them in the first 20 000-row
    // call, 5 more near the end of the file.
    let mut text = String::new();
    let mut line = 0;
    let mut takers = Vec::new();
    let mut push = |text: &mut String, row: String, taker: bool| {
        line += 1;
        if taker {
            takers.push(line);
        }
        text.push_str(&row);
        text.push('\n');
    };
    for i in 0..HELD {
        push(
            &mut text,
            format!("{{\"externalId\":\"taker-{i}\",\"email\":\"holder-{i}@example.com\"}}"),
            true,
        );
    }
    for i in 0..20_100 {
        push(
            &mut text,
            format!("{{\"externalId\":\"filler-{i}\"}}"),
            false,
        );
    }
    for i in 0..5 {
        push(
            &mut text,
            format!("{{\"externalId\":\"taker-{i}\",\"email\":\"holder-{i}@example.com\"}}"),
            true,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "people.jsonl", &text);
    let rejects = dir.path().join("rejects.jsonl");
    let ran = import(&app, &app.key, "people", &file, &rejects).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.summary().contains(&format!(
            "20100 created, 0 updated, 155 rejected (105 written to {}; 50 not itemised by the server)",
            rejects.display()
        )),
        "{}",
        ran.summary()
    );
    assert!(
        ran.stderr
            .contains("50 more people were rejected than the server itemises"),
        "{}",
        ran.stderr
    );
    let reported: Vec<&str> = ran.rejection_lines();
    assert_eq!(reported.len(), 105);
    // The late ones came in smaller calls: every one is named.
    for late in &takers[HELD..] {
        assert!(
            reported
                .iter()
                .any(|l| l.starts_with(&format!("line {late}: email: "))),
            "line {late} in {reported:?}"
        );
    }
    let written = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(written.lines().count(), 105);
    assert!(written.lines().all(|l| l.contains("\"holder-")));
}

async fn rate_limited_imports_wait_and_finish(backend: Backend) {
    use std::num::NonZeroU32;
    let limit = kith::config::RateLimit {
        per_second: NonZeroU32::new(100).unwrap(),
        burst: NonZeroU32::new(10).unwrap(),
    };
    let app = require!(TestApp::builder(backend).rate_limit(limit).start().await);
    let dir = tempfile::tempdir().unwrap();
    let users: String = (0..300)
        .map(|i| format!("{{\"keys\":{{\"user_id\":\"r{i}\"}}}}\n"))
        .collect();
    let file = write_file(dir.path(), "users.jsonl", &users);
    // Eight calls in flight against ten a second at most in a burst: the
    // server refuses some with a delay to wait, and the import waits.
    let ran = kith(&app, &app.key, &["import", "users", "--file", arg(&file)]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.summary().contains("300 created, 0 updated, 0 rejected"),
        "{}",
        ran.summary()
    );
}
