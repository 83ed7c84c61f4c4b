//! Logging, and the export of request spans.
//!
//! Logs are human-readable or JSON lines on stderr, filtered by `RUST_LOG`;
//! stdout stays free for what commands print (keys, ids). With an OTLP
//! endpoint (`--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`), request
//! spans also go to an OpenTelemetry collector over gRPC, in batches.

use std::fmt;

use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// What must outlive serving: the span exporter, flushed on `shutdown`.
#[must_use = "spans still queued are lost unless `shutdown` flushes them"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    spans: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.spans
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing the last spans failed");
        }
    }
}

/// Installs the log subscriber (once per process: a test that starts
/// several servers keeps the first) and, given an endpoint, the exporter.
/// Must run inside the Tokio runtime, which the gRPC exporter uses.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Pretty => logs.compact().boxed(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .fmt_fields(SplicedJsonFields::default())
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    match otlp_endpoint {
        None => {
            let _ = registry.try_init();
            Ok(Telemetry {
                #[cfg(feature = "otlp")]
                spans: None,
            })
        }
        #[cfg(feature = "otlp")]
        Some(endpoint) => {
            let provider = span_exporter(endpoint)?;
            let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "kith");
            let _ = registry
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .try_init();
            tracing::info!(endpoint, "exporting spans over OTLP");
            Ok(Telemetry {
                spans: Some(provider),
            })
        }
        #[cfg(not(feature = "otlp"))]
        Some(_) => anyhow::bail!("--otlp-endpoint needs a build with the `otlp` feature"),
    }
}

/// A span's fields as one JSON object, as `JsonFields` writes them; but a
/// field recorded after the span began (a request's workspace, status and
/// latency) is spliced into the object, where `JsonFields` parses the whole
/// object and writes it again for each one: four times per request, most
/// of the cost of logging one that logs nothing (BENCHMARKS.md, issue 18).
/// A field recorded twice appears twice; whoever reads the line as JSON
/// (the event formatter too) keeps the later value.
#[derive(Default)]
struct SplicedJsonFields(JsonFields);

impl<'writer> FormatFields<'writer> for SplicedJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        self.0.format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.0.format_fields(Writer::new(&mut added), fields)?;
        splice_json_object(&mut current.fields, &added);
        Ok(())
    }
}

/// Adds the members of the JSON object `added` to the object `object`.
fn splice_json_object(object: &mut String, added: &str) {
    let members = added
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_default();
    if members.is_empty() {
        return;
    }
    match object.strip_suffix('}') {
        Some(head) if head.len() > 1 => {
            object.truncate(head.len());
            object.push(',');
            object.push_str(members);
            object.push('}');
        }
        _ => added.clone_into(object),
    }
}

/// Batches spans to `endpoint` (`http://collector:4317`) as service `kith`
/// (or `OTEL_SERVICE_NAME`).
#[cfg(feature = "otlp")]
fn span_exporter(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use anyhow::Context as _;
    use opentelemetry_otlp::WithExportConfig as _;

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("setting up span export to {endpoint}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("kith");
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Where a test subscriber writes its lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_recorded_later_reach_the_events_of_the_span() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .fmt_fields(SplicedJsonFields::default())
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                call = "/kith.v1.CustomerService/GetCustomer",
                workspace = tracing::field::Empty,
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            );
            span.record("workspace", "ws-1");
            span.record("status", "0");
            span.record("status", "5");
            span.record("latency_ms", 1.5);
            span.in_scope(|| tracing::info!(note = "a \"quoted\" }", "inside"));
        });
        let output = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
        let span = &line["span"];
        assert_eq!(span["call"], "/kith.v1.CustomerService/GetCustomer");
        assert_eq!(span["workspace"], "ws-1");
        assert_eq!(span["status"], "5", "the later value wins");
        assert_eq!(span["latency_ms"], 1.5);
        assert_eq!(line["note"], "a \"quoted\" }");
    }

    #[test]
    fn splicing_into_an_empty_object_starts_it() {
        let mut object = String::new();
        splice_json_object(&mut object, r#"{"a":1}"#);
        assert_eq!(object, r#"{"a":1}"#);
        splice_json_object(&mut object, "{}");
        assert_eq!(object, r#"{"a":1}"#);
        splice_json_object(&mut object, r#"{"b":"}"}"#);
        assert_eq!(object, r#"{"a":1,"b":"}"}"#);
        let mut empty = "{}".to_owned();
        splice_json_object(&mut empty, r#"{"c":true}"#);
        assert_eq!(empty, r#"{"c":true}"#);
    }
}
