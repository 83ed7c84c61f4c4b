//! Page tokens from anyone: any string, any page size, any query. Parsing
//! may refuse but never panic, and a token only resumes its own query.

#![no_main]

use libfuzzer_sys::fuzz_target;

use kith::domain::page::{KITH_PAGES, PageRequest};

fuzz_target!(|input: (i64, String, String)| {
    let (page_size, token, query) = input;
    if let Ok(page) = PageRequest::parse(&KITH_PAGES, Some(page_size), &token, &query) {
        assert!(page.size >= 1 && page.size <= KITH_PAGES.max);
        if page.after.is_some() && !query.is_empty() {
            let other = format!("{query}-other");
            assert!(
                PageRequest::parse(&KITH_PAGES, Some(page_size), &token, &other).is_err(),
                "a token resumed a query it does not belong to"
            );
        }
    }
});
