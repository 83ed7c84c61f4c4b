//! gRPC server metrics under the names and labels of go-grpc-middleware's
//! Prometheus provider, so that dashboards built for Go services read Kith
//! unchanged: `grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_msg_received_total`, `grpc_server_msg_sent_total` and the
//! `grpc_server_handling_seconds` histogram.
//!
//! Every method the server serves is known from the descriptor sets, so
//! its series (and one per code of `handled`) exist at zero from the
//! start, and a call finds its counters by path without building labels.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prost_reflect::{DescriptorPool, MethodDescriptor};

/// The codes as grpc-go spells them, indexed by their number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// go-grpc-middleware's default buckets (Prometheus' `DefBuckets`).
const HANDLING_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A code's name as grpc-go spells it (`NotFound`); out of range is
/// `Unknown`, as grpc-go reads an unknown code.
pub fn go_code_name(code: tonic::Code) -> &'static str {
    CODE_NAMES
        .get(usize::try_from(code as i32).unwrap_or(2))
        .copied()
        .unwrap_or("Unknown")
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// The counters of one method.
pub struct MethodMetrics {
    started: Counter,
    received: Counter,
    sent: Counter,
    /// By code number.
    handled: Vec<Counter>,
    seconds: Histogram,
}

impl MethodMetrics {
    pub fn started(&self) {
        self.started.inc();
    }

    pub fn received(&self, messages: u64) {
        self.received.inc_by(messages);
    }

    pub fn sent(&self, messages: u64) {
        self.sent.inc_by(messages);
    }

    /// The call ended with `code` after `seconds`.
    pub fn handled(&self, code: tonic::Code, seconds: f64) {
        let index = usize::try_from(code as i32).unwrap_or(2);
        self.handled.get(index).unwrap_or(&self.handled[2]).inc();
        self.seconds.observe(seconds);
    }
}

/// Every served method's counters, by request path.
pub struct GrpcMetrics {
    methods: HashMap<String, Arc<MethodMetrics>>,
    /// Paths no service serves, together: a client's typo must not add a
    /// series.
    unknown: Arc<MethodMetrics>,
}

struct Families {
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    received: Family<MethodLabels, Counter>,
    sent: Family<MethodLabels, Counter>,
    seconds: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl Families {
    fn method(&self, grpc_type: &'static str, service: &str, method: &str) -> MethodMetrics {
        let labels = MethodLabels {
            grpc_type,
            grpc_service: service.to_owned(),
            grpc_method: method.to_owned(),
        };
        let handled = CODE_NAMES
            .iter()
            .map(|&grpc_code| {
                self.handled.get_or_create_owned(&HandledLabels {
                    grpc_type,
                    grpc_service: service.to_owned(),
                    grpc_method: method.to_owned(),
                    grpc_code,
                })
            })
            .collect();
        MethodMetrics {
            started: self.started.get_or_create_owned(&labels),
            received: self.received.get_or_create_owned(&labels),
            sent: self.sent.get_or_create_owned(&labels),
            handled,
            seconds: self.seconds.get_or_create_owned(&labels),
        }
    }
}

impl GrpcMetrics {
    /// Registers the families with a series for every method of Kith's
    /// contract, health and reflection.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Families {
            started: Family::default(),
            handled: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            seconds: Family::new_with_constructor(|| Histogram::new(HANDLING_BUCKETS)),
        };
        let methods = served_methods()
            .map(|method| {
                let service = method.parent_service().full_name().to_owned();
                let path = format!("/{service}/{}", method.name());
                let metrics = families.method(grpc_type(&method), &service, method.name());
                (path, Arc::new(metrics))
            })
            .collect();
        let unknown = Arc::new(families.method("unary", "unknown", "unknown"));
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            families.started,
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            families.handled,
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            families.received,
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            families.sent,
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
            families.seconds,
        );
        Self { methods, unknown }
    }

    /// The counters of the method at `path` (`/kith.v1.CustomerService/GetCustomer`).
    pub fn method(&self, path: &str) -> Arc<MethodMetrics> {
        self.methods.get(path).unwrap_or(&self.unknown).clone()
    }
}

/// Every method the gRPC listener serves, from the descriptor sets of the
/// services it mounts.
fn served_methods() -> impl Iterator<Item = MethodDescriptor> {
    let sets: [&[u8]; 4] = [
        crate::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    sets.into_iter().flat_map(|set| {
        let pool = DescriptorPool::decode(set).expect("a built-in descriptor set decodes");
        pool.services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    })
}

/// go-grpc-middleware's name for the method's shape.
fn grpc_type(method: &MethodDescriptor) -> &'static str {
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_grpc_go_spells_them() {
        assert_eq!(go_code_name(tonic::Code::Ok), "OK");
        assert_eq!(go_code_name(tonic::Code::Cancelled), "Canceled");
        assert_eq!(go_code_name(tonic::Code::NotFound), "NotFound");
        assert_eq!(
            go_code_name(tonic::Code::Unauthenticated),
            "Unauthenticated"
        );
    }

    #[test]
    fn every_served_method_has_its_series_and_unknown_paths_share_one() {
        let metrics = GrpcMetrics::register(&mut Registry::default());
        assert!(
            metrics
                .methods
                .contains_key("/kith.v1.CustomerService/GetCustomer")
        );
        assert!(metrics.methods.contains_key("/grpc.health.v1.Health/Check"));
        let typo = metrics.method("/kith.v1.CustomerService/GetCustomr");
        assert!(Arc::ptr_eq(&typo, &metrics.unknown));
    }
}
