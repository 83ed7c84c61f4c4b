//! Logging, and the export of request spans.
//!
//! Logs are human-readable or JSON lines on stderr, filtered by `RUST_LOG`;
//! stdout stays free for what commands print (keys, ids). With an OTLP
//! endpoint (`--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`), request
//! spans also go to an OpenTelemetry collector over gRPC, in batches.

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
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
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
