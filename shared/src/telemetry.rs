//! Structured JSON logs through `tracing`; the current span's fields (request id, publication id)
//! appear on every line. `RUST_LOG` filters (default `info`).

use std::fmt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter, SubscriberBuilder};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests, `crm` subcommands) keeps the first subscriber.
    let _ = json_lines(filter, std::io::stdout).try_init();
}

type JsonLines<W> = SubscriberBuilder<SplicedJsonFields, Format<Json>, EnvFilter, W>;

fn json_lines<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(filter: EnvFilter, writer: W) -> JsonLines<W> {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .fmt_fields(SplicedJsonFields)
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
}

/// `JsonFields`, except that a field recorded on a span later (a request's publication, a webhook's
/// event) is spliced into the span's JSON object: `JsonFields` parses the object and writes it again
/// for each, which was a tenth of the logging's CPU under load (docs/PERFORMANCE.md, "Load").
struct SplicedJsonFields;

impl<'writer> FormatFields<'writer> for SplicedJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        JsonFields::new().format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        JsonFields::new().format_fields(Writer::new(&mut added), fields)?;
        let members = added.strip_prefix('{').and_then(|a| a.strip_suffix('}')).ok_or(fmt::Error)?;
        if members.is_empty() {
            return Ok(());
        }
        let object = &mut current.fields;
        if !object.ends_with('}') {
            // No fields yet: what was recorded is the whole object.
            object.push_str(&added);
            return Ok(());
        }
        // Both are objects: the new members go before the closing brace. A field recorded twice
        // appears twice, and the last one is what a JSON reader keeps (the formatter's own does).
        object.pop();
        if !object.ends_with('{') {
            object.push(',');
        }
        object.push_str(members);
        object.push('}');
        Ok(())
    }
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
        let subscriber = json_lines(EnvFilter::new("info"), move || sink.clone()).finish();
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
            );
            let _entered = span.enter();
            tracing::info!("before");
            span.record("publication_id", "daily");
            span.record("event_id", "evt_1");
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
