//! W3C trace context: a request's `traceparent` (and `tracestate`) make
//! its span a child of the caller's; a request without one starts a trace.
//! Either way the span records the trace id and its own span id, so every
//! log line of the request carries them, whether or not spans are
//! exported (`--otlp-endpoint`).

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The caller's trace, from `traceparent` and `tracestate`: an empty
/// context when absent or malformed (the W3C rule: start a new trace).
fn caller_context(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Makes `span` the child of the caller's trace and records the ids it
/// runs under.
pub fn join_caller_trace(span: &Span, headers: &HeaderMap) {
    let parent = caller_context(headers);
    let remote = parent.span().span_context().clone();
    // Fails only when spans are not exported: the ids are then our own.
    let _ = span.set_parent(parent);
    let exported = span.context().span().span_context().clone();
    let (trace_id, span_id) = if exported.is_valid() {
        (exported.trace_id(), exported.span_id())
    } else {
        own_ids(&remote)
    };
    span.record("trace_id", tracing::field::display(trace_id));
    span.record("span_id", tracing::field::display(span_id));
}

/// Names the span (and the exported one) `name`, once the route it served
/// is known.
pub fn rename(span: &Span, name: &str) {
    span.record("call", name);
    // The exported span has started: the name field would not reach it.
    span.context().span().update_name(name.to_owned());
}

/// The caller's trace id (or a new one) and a new span id.
fn own_ids(remote: &SpanContext) -> (TraceId, SpanId) {
    let ids = RandomIdGenerator::default();
    let trace_id = if remote.is_valid() {
        remote.trace_id()
    } else {
        ids.new_trace_id()
    };
    (trace_id, ids.new_span_id())
}

/// gRPC metadata and HTTP headers, as the propagator reads them.
struct Headers<'h>(&'h HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(traceparent: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", traceparent.parse().unwrap());
        headers
    }

    #[test]
    fn a_valid_traceparent_names_the_callers_trace_and_span() {
        let context = caller_context(&headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let remote = context.span().span_context().clone();
        assert!(remote.is_remote());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(remote.span_id().to_string(), "00f067aa0ba902b7");
        let (trace_id, span_id) = own_ids(&remote);
        assert_eq!(trace_id, remote.trace_id(), "the trace continues");
        assert_ne!(span_id, remote.span_id(), "in a span of our own");
    }

    #[test]
    fn a_malformed_or_missing_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let remote = caller_context(&headers(bad)).span().span_context().clone();
            assert!(!remote.is_valid(), "{bad:?}");
            let (first, _) = own_ids(&remote);
            let (second, _) = own_ids(&remote);
            assert_ne!(first, second, "each request its own trace");
        }
        let remote = caller_context(&HeaderMap::new())
            .span()
            .span_context()
            .clone();
        assert!(!remote.is_valid());
    }
}
