//! OTLP export of traces (the `otel` feature), configured by the standard
//! `OTEL_EXPORTER_OTLP_*` variables; with no endpoint set nothing is installed and the
//! worker and the API create no span at all.

use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The installed exporter; [`Exporting::shutdown`] sends the spans still buffered.
#[derive(Debug)]
pub(crate) struct Exporting(Option<SdkTracerProvider>);

/// Installs an OTLP/HTTP (protobuf) exporter when an endpoint is set, before the tokio
/// runtime starts: the exporter's blocking HTTP client runs on the batch processor's
/// own thread, never on the runtime's.
pub(crate) fn init(service: &str) -> Exporting {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT").or(set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if endpoint.is_none() || disabled {
        return Exporting(None);
    }
    let exporter = match SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            tracing::warn!(error = %e, "traces are not exported: cannot build the OTLP exporter");
            return Exporting(None);
        }
    };
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the resource builder.
    let mut resource = Resource::builder();
    if set("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(tether_worker::AttemptIds::default())
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    tether_model::trace::otel::set_exporting(true);
    Exporting(Some(provider))
}

impl Exporting {
    /// Exports what is buffered and stops (bounded by `OTEL_BSP_EXPORT_TIMEOUT`).
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.0 {
            tether_model::trace::otel::set_exporting(false);
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "traces: the last spans may not have been exported");
            }
        }
    }
}
