//! Simulated services: OTLP/gRPC trace exports, one server span per request, stamped with
//! the release identity an agent would add (service, version, environment, instance,
//! commit, deploy id). Failures are spaced evenly ("every n-th request") so the story
//! plays out the same way every time.

use std::time::Duration;

use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::span::{Event, SpanKind};
use bellwether_proto::otlp::trace::status::StatusCode;
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use rand::Rng;
use tokio::sync::watch;

/// How often the live generator sends.
const TICK: Duration = Duration::from_millis(250);

/// One kind of failure: every `every`-th request of an instance fails with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub every: u64,
    pub exception_type: &'static str,
    pub message: &'static str,
    pub stack: &'static str,
}

/// What one release of a service does.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub version: String,
    pub commit: String,
    pub deploy_id: String,
    pub failures: Vec<Failure>,
    /// Typical request duration.
    pub latency_ms: f64,
}

/// A simulated service: its name, environment, instances and request rate.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: &'static str,
    pub environment: &'static str,
    pub route: &'static str,
    pub instances: [&'static str; 2],
    /// Requests per second over all instances.
    pub per_second: u64,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn resource(service: &Service, release: &Release, instance: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", service.name),
            kv("service.version", &release.version),
            kv("deployment.environment.name", service.environment),
            kv("service.instance.id", instance),
            kv("vcs.ref.head.revision", &release.commit),
            kv("deployment.id", &release.deploy_id),
        ],
        ..Resource::default()
    }
}

fn span(
    service: &Service,
    failure: Option<&Failure>,
    end_unix_ms: i64,
    rng: &mut impl Rng,
    latency_ms: f64,
) -> Span {
    let duration_ms = latency_ms * rng.random_range(0.5..1.6);
    let end = u64::try_from(end_unix_ms).unwrap_or(0) * 1_000_000;
    let start = end.saturating_sub((duration_ms * 1e6) as u64);
    let mut trace_id = vec![0u8; 16];
    let mut span_id = vec![0u8; 8];
    rng.fill(&mut trace_id[..]);
    rng.fill(&mut span_id[..]);
    let (status, events) = match failure {
        None => (StatusCode::Ok, Vec::new()),
        Some(f) => (
            StatusCode::Error,
            vec![Event {
                time_unix_nano: end,
                name: "exception".to_owned(),
                attributes: vec![
                    kv("exception.type", f.exception_type),
                    kv("exception.message", f.message),
                    kv("exception.stacktrace", f.stack),
                ],
                ..Event::default()
            }],
        ),
    };
    Span {
        trace_id,
        span_id,
        kind: SpanKind::Server as i32,
        name: service.route.to_owned(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status: Some(Status {
            code: status as i32,
            message: failure.map(|f| f.message.to_owned()).unwrap_or_default(),
        }),
        events,
        ..Span::default()
    }
}

/// Request counter of one instance; decides which requests fail.
#[derive(Default)]
struct Counter(u64);

impl Counter {
    fn next<'a>(&mut self, release: &'a Release) -> Option<&'a Failure> {
        self.0 += 1;
        release
            .failures
            .iter()
            .find(|f| f.every > 0 && self.0.is_multiple_of(f.every))
    }
}

/// `per_instance` requests per instance ending evenly over `from_ms..to_ms`.
fn request(
    service: &Service,
    release: &Release,
    instance: &str,
    counter: &mut Counter,
    per_instance: u64,
    (from_ms, to_ms): (i64, i64),
) -> ExportTraceServiceRequest {
    let mut rng = rand::rng();
    let step = (to_ms - from_ms) as f64 / per_instance.max(1) as f64;
    let spans = (0..per_instance)
        .map(|i| {
            let at = from_ms + (i as f64 * step) as i64;
            span(
                service,
                counter.next(release),
                at,
                &mut rng,
                release.latency_ms,
            )
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service, release, instance)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// Sends `requests` requests of `release` that ended between `from_ms` and `to_ms`
/// (history before the story starts).
pub async fn backfill(
    grpc_url: &str,
    service: &Service,
    release: &Release,
    requests: u64,
    (from_ms, to_ms): (i64, i64),
) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::connect(grpc_url.to_owned())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let chunks = requests.div_ceil(2_000).max(1);
    let span_ms = (to_ms - from_ms) / chunks as i64;
    for (n, instance) in service.instances.iter().enumerate() {
        let mut counter = Counter(n as u64 * 7);
        for chunk in 0..chunks as i64 {
            let window = (from_ms + chunk * span_ms, from_ms + (chunk + 1) * span_ms);
            let per = requests / chunks / service.instances.len() as u64;
            let req = request(service, release, instance, &mut counter, per, window);
            client.export(req).await?;
        }
    }
    Ok(())
}

/// Sends live traffic of whatever release `current` holds until `stopped`.
pub async fn live(
    grpc_url: String,
    service: Service,
    current: watch::Receiver<Release>,
    stopped: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stopped);
    let mut client = None;
    let mut counters: Vec<Counter> = service.instances.iter().map(|_| Counter(0)).collect();
    let per_tick = (service.per_second as f64 * TICK.as_secs_f64()) as u64;
    let per_instance = (per_tick / service.instances.len() as u64).max(1);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stopped => return,
        }
        if client.is_none() {
            client = TraceServiceClient::connect(grpc_url.clone()).await.ok();
        }
        let Some(c) = client.as_mut() else {
            continue;
        };
        let release = current.borrow().clone();
        let now = bellwether_model::time::now_unix_ms();
        let window = (now - TICK.as_millis() as i64, now);
        for (instance, counter) in service.instances.iter().zip(&mut counters) {
            let req = request(&service, &release, instance, counter, per_instance, window);
            if let Err(status) = c.export(req).await {
                tracing::warn!(service = service.name, error = %status, "demo traffic export failed");
                client = None;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(every: u64) -> Release {
        Release {
            version: "1".into(),
            commit: "abc".into(),
            deploy_id: "d-1".into(),
            failures: vec![Failure {
                every,
                exception_type: "TimeoutError",
                message: "upstream timed out",
                stack: "",
            }],
            latency_ms: 40.0,
        }
    }

    #[test]
    fn failures_are_spaced_evenly() {
        let service = Service {
            name: "checkout",
            environment: "prod",
            route: "POST /checkout",
            instances: ["a", "b"],
            per_second: 100,
        };
        let mut counter = Counter::default();
        let req = request(
            &service,
            &release(50),
            "a",
            &mut counter,
            1_000,
            (0, 10_000),
        );
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let failed = spans
            .iter()
            .filter(|s| s.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32))
            .count();
        assert_eq!(spans.len(), 1_000);
        assert_eq!(failed, 20);
        assert!(spans
            .iter()
            .all(|s| s.end_time_unix_nano >= s.start_time_unix_nano));
        let attrs = &req.resource_spans[0]
            .resource
            .as_ref()
            .map(|r| r.attributes.len());
        assert_eq!(*attrs, Some(6));
    }
}
