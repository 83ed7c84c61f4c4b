//! Writes on a PostgreSQL database whose transactions run at SERIALIZABLE
//! (set on the database itself, so every run of the suite covers it, not
//! only CI's second pass over a server set so): many writers of one
//! workspace at once, every one of which updates its change counter, all
//! succeed and the log stays gap-free: single creations and people batches
//! (long transactions, whose reads and writes overlap) together.

use kith::pb::kith::v1::{
    self as pb, BatchUpsertPeopleRequest, CreateCustomerRequest, PersonUpsert,
};

use crate::changes::assert_gap_free;
use crate::grpc_support::whole_log;
use crate::harness::{Backend, TestApp, TestDb, require};

const CREATORS: usize = 16;
const CREATES: usize = 40;
const BATCH_WRITERS: usize = 4;
const BATCHES: usize = 60;
const BATCH: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_at_serializable_all_succeed_and_the_log_has_no_gap() {
    let db = require!(TestDb::new(Backend::Postgres).await);
    let database = db.url.rsplit('/').next().unwrap().to_owned();
    let server = db.url.trim_end_matches(&database).trim_end_matches('/');
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {database} SET default_transaction_isolation = 'serializable'"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    let url = db.url.clone();
    let app = TestApp::builder(Backend::Postgres)
        .database(db, url)
        .start()
        .await
        .unwrap();

    let mut writers = Vec::new();
    for writer in 0..CREATORS {
        let mut customers = app.customers();
        writers.push(tokio::spawn(async move {
            for n in 0..CREATES {
                customers
                    .create_customer(CreateCustomerRequest {
                        customer: Some(pb::Customer {
                            email: Some(format!("w{writer}-{n}@example.com")),
                            ..pb::Customer::default()
                        }),
                    })
                    .await
                    .unwrap_or_else(|status| panic!("every creation succeeds: {status:?}"));
            }
        }));
    }
    for writer in 0..BATCH_WRITERS {
        let mut people = app.people();
        writers.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                // Each batch new people, and again half of the previous one.
                let first = (batch * BATCH).saturating_sub(BATCH / 2);
                let people_in_batch = (first..batch * BATCH + BATCH)
                    .map(|n| PersonUpsert {
                        user_id: format!("p{writer}-{n}"),
                        email: Some(format!("p{writer}-{n}@example.com")),
                        ..PersonUpsert::default()
                    })
                    .collect();
                people
                    .batch_upsert_people(BatchUpsertPeopleRequest {
                        people: people_in_batch,
                    })
                    .await
                    .unwrap_or_else(|status| panic!("every batch succeeds: {status:?}"));
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    // Numbered 1, 2, 3, … with no gap: each creation logs the customer and
    // the company it also is, each batch its new and changed people.
    let logged = whole_log(&mut app.changes()).await;
    assert_gap_free(&logged, 1);
    assert!(logged.len() >= 2 * CREATORS * CREATES + BATCH_WRITERS * BATCHES * BATCH);
}
