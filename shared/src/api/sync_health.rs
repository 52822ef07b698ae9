//! `GET /admin/publications/{id}/sync` (function `sync-health`): sync health. Per provider and account the
//! last event received and applied and the last 24 hours' counts (`repo::sync_stats`), the dead-letter
//! queues' depths, unmapped products and possible duplicates, each read with one query or call, and
//! the verdict (`domain::sync_health::verdict`) with what to do.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use super::settings::authorize;
use crate::domain::record::rfc3339;
use crate::domain::settings::PublicationSettings;
use crate::domain::sync_health::{self, DeadLetters, Facts, LastEvent, Source, SourceHealth};
use crate::http::ApiError;
use crate::http::extract::Path;
use crate::queue::{EVENTS, FORWARD, Queue, QueueDef};
use crate::store::now_epoch;
use crate::store::repo::sync_stats::{self, Stage};
use crate::store::repo::{duplicates, publications, unmapped};

const DAY: i64 = 24 * 3600;

pub async fn health(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, publication) = authorize(&state, &headers, &raw_id).await?;
    let store = state.store.as_ref();
    let now = now_epoch();
    let (settings, buckets, markers, unmapped, duplicates) = futures::future::try_join5(
        async { publications::get(store, &publication).await },
        sync_stats::buckets_since(store, &publication, now - DAY),
        sync_stats::markers(store, &publication),
        unmapped::list(store, &publication),
        duplicates::list(store, &publication),
    )
    .await?;
    let settings = settings.ok_or_else(|| ApiError::NotFound("unknown publication".into()))?;
    let dead_letters = futures::future::join_all(
        [(EVENTS, true), (FORWARD, false)].map(|(def, events)| depth(state.queue.as_ref(), def, events)),
    )
    .await;

    let mut sources: BTreeMap<Source, SourceHealth> =
        configured(&settings.value.settings).into_iter().map(|s| (s.source.clone(), s)).collect();
    // The range starts at the hour holding `now - 24 h`: that hour counts only when it has not begun earlier.
    for bucket in buckets.iter().filter(|b| b.hour >= now - DAY) {
        let s = entry(&mut sources, &bucket.source);
        s.last_24h.add(&bucket.counts);
        s.last_processed_at = s.last_processed_at.max(bucket.processed_at);
    }
    for marker in markers {
        let s = entry(&mut sources, &marker.source);
        match marker.stage {
            Stage::Received => s.last_received = Some(marker.last),
            Stage::Applied => s.last_applied = Some(marker.last),
        }
    }
    let sources: Vec<SourceHealth> = sources.into_values().collect();
    let unmapped_ids: Vec<(Source, String)> = unmapped
        .iter()
        .map(|u| (Source { provider: u.provider.clone(), account: u.account.clone() }, u.id.clone()))
        .collect();
    let verdict = sync_health::verdict(&Facts {
        publication: &publication,
        sources: &sources,
        dead_letters: &dead_letters,
        unmapped: &unmapped_ids,
        possible_duplicates: duplicates.len(),
        now,
    });
    Ok(Json(json!({
        "publicationId": publication,
        "generatedAt": rfc3339(now),
        "verdict": verdict,
        "sources": sources.iter().map(source_json).collect::<Vec<_>>(),
        "dlq": dead_letters.iter().map(|d| json!({"queue": d.queue, "redrivesTo": d.redrives_to, "depth": d.depth})).collect::<Vec<_>>(),
        "unmappedProducts": unmapped.iter().map(|u| json!({
            "provider": u.provider, "account": u.account, "id": u.id,
            "lastSeen": rfc3339(u.last_seen), "lastEventId": u.last_event_id,
        })).collect::<Vec<_>>(),
        "possibleDuplicates": duplicates.iter().map(|d| json!({
            "reason": d.reason, "key": d.key, "customerIds": d.customer_ids, "updatedAt": rfc3339(d.updated_at),
        })).collect::<Vec<_>>(),
    })))
}

/// The figures of `source`; one the settings no longer name (a removed account) is added unconfigured.
fn entry<'a>(sources: &'a mut BTreeMap<Source, SourceHealth>, source: &Source) -> &'a mut SourceHealth {
    sources.entry(source.clone()).or_insert_with(|| SourceHealth::new(source.clone(), false))
}

/// Every source the settings name: each Stripe account, and Piano when it is set up.
fn configured(settings: &PublicationSettings) -> Vec<SourceHealth> {
    let stripe =
        settings.stripe_accounts.iter().map(|a| Source { provider: "stripe".into(), account: Some(a.key.to_string()) });
    let piano = settings.piano.iter().map(|_| Source { provider: "piano".into(), account: None });
    stripe.chain(piano).map(|source| SourceHealth::new(source, true)).collect()
}

/// A dead-letter queue's depth; one that cannot be read is reported as unknown, not as a failed answer.
async fn depth(queue: &dyn Queue, def: QueueDef, events: bool) -> DeadLetters {
    let depth = match queue.depth(def.dlq_name).await {
        Ok(depth) => Some(depth),
        Err(e) => {
            tracing::warn!(queue = def.dlq_name, error = %e, "dead-letter queue depth unknown");
            None
        }
    };
    DeadLetters { queue: def.dlq_name, redrives_to: def.name, events, depth }
}

fn last_json(last: Option<&LastEvent>) -> Value {
    match last {
        None => Value::Null,
        Some(l) => json!({"type": l.event_type, "eventTime": l.event_at.and_then(rfc3339), "at": rfc3339(l.at)}),
    }
}

fn source_json(s: &SourceHealth) -> Value {
    json!({
        "provider": s.source.provider,
        "account": s.source.account,
        "configured": s.configured,
        "lastReceived": last_json(s.last_received.as_ref()),
        "lastApplied": last_json(s.last_applied.as_ref()),
        "lastProcessedAt": s.last_processed_at.and_then(rfc3339),
        "last24h": s.last_24h,
    })
}
