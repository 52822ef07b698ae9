//! Structured JSON logs through `tracing`; the current span's fields (request id, publication id)
//! appear on every line. `RUST_LOG` filters (default `info`).
//!
//! `json-subscriber` keeps each span's fields as JSON once written, so a line copies them in, where
//! `tracing-subscriber`'s own JSON format parsed and wrote them again for every line: with a line
//! per request and per applied event, a third of the logging's CPU in a micro-benchmark
//! (docs/PERFORMANCE.md, "Load", item 19).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::time::SystemTime;

mod batched;

pub use batched::Flusher;

pub fn init() {
    // A second init (tests, `crm` subcommands) keeps the first subscriber.
    let _ = json_lines(filter_from_env(), std::io::stdout).try_init();
}

/// `init` with the lines on stderr, for a command whose stdout is data (`crm tables create --print-env`).
pub fn init_stderr() {
    let _ = json_lines(filter_from_env(), std::io::stderr).try_init();
}

/// `init` for a long-running process: lines are written to stdout in batches, at most 50 ms after
/// they are logged (`batched`). Keep the `Flusher` until the end; dropping it writes out the rest.
/// Lines of the last 50 ms are lost if the process is killed.
pub fn init_batched() -> std::io::Result<Flusher> {
    let (writer, flusher) = batched::batched(std::io::stdout())?;
    let _ = json_lines(filter_from_env(), writer).try_init();
    Ok(flusher)
}

fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The functions' log lines at level info, written to `writer`: for benchmarks of what logging costs.
pub fn subscriber_to<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    json_lines(EnvFilter::new("info"), writer).finish()
}

type JsonLines<W> = json_subscriber::fmt::SubscriberBuilder<W, SystemTime, EnvFilter>;

fn json_lines<W>(filter: EnvFilter, writer: W) -> JsonLines<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    json_subscriber::fmt()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = subscriber_to(move || sink.clone());
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().expect("capture").clone();
        let text = String::from_utf8(bytes).expect("UTF-8 log");
        text.lines().map(|l| serde_json::from_str(l).expect("each line is one JSON object")).collect()
    }

    #[test]
    fn fields_recorded_later_join_the_span_object_of_every_later_line() {
        let lines = lines_of(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r1",
                path = "/a \"quoted\" path",
                publication_id = tracing::field::Empty,
                event_id = tracing::field::Empty,
                event_type = tracing::field::Empty,
            );
            let _entered = span.enter();
            tracing::info!("before");
            span.record("publication_id", "daily");
            crate::http::context::record_event("evt_1", "invoice.paid");
            tracing::info!(status = 200, "after");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0]["span"],
            serde_json::json!({"name": "request", "request_id": "r1", "path": "/a \"quoted\" path"})
        );
        let after = &lines[1];
        assert_eq!(after["status"], 200);
        assert_eq!(after["span"]["publication_id"], "daily");
        assert_eq!(after["span"]["event_id"], "evt_1");
        assert_eq!(after["span"]["event_type"], "invoice.paid");
        assert_eq!(after["span"]["request_id"], "r1");
        assert_eq!(after["span"]["path"], "/a \"quoted\" path");
    }

    #[test]
    fn a_field_recorded_on_a_span_with_no_fields_yet_makes_its_object() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("event", event_id = tracing::field::Empty);
            let _entered = span.enter();
            span.record("event_id", "evt_2");
            tracing::info!("applied");
        });
        assert_eq!(lines[0]["span"], serde_json::json!({"name": "event", "event_id": "evt_2"}));
    }
}
