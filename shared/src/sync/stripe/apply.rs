//! Applying one Stripe event. Store round trips for an event of a known customer: read the identity,
//! read the customer (and the invoice or charge items the event touches), one transactional write
//! (record, those items, timeline entries, ledger entry).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::activities::Recorder;
use super::map;
use crate::domain::activity::ActivityKind;
use crate::domain::billing::{Merge, ProfileState, Progress, ScheduleState, StripeBilling, Tracked};
use crate::domain::customer::{Customer, Identity};
use crate::domain::ids::{CustomerId, Email, PublicationId};
use crate::domain::money::{Currency, Money};
use crate::domain::settings::{PublicationSettings, StripeAccount};
use crate::store::repo::catalogue;
use crate::store::repo::customers;
use crate::store::repo::payments;
use crate::store::repo::unmapped::{self, Unmapped};
use crate::store::repo::{Versioned, activities as timeline, ledger};
use crate::store::{Store, StoreError, WriteOp};
use crate::stripe::client::{Params, StripeApi, StripeAuth};
use crate::stripe::event::{Event, Payload};
use crate::stripe::objects as obj;
use crate::sync::identity::{self, Hints, IdentityCache};
use crate::sync::{Committed, Fact, FiredSink, Outcome, ROUNDS, SyncError, commit, contention_pause, record_seen};

const PROVIDER: &str = "stripe";

pub struct Context<'a> {
    pub store: &'a dyn Store,
    pub identities: &'a IdentityCache,
    pub api: &'a dyn StripeApi,
    pub publication: &'a PublicationId,
    pub account: &'a StripeAccount,
    pub settings: &'a PublicationSettings,
    /// Receives the automations the applied event fired.
    pub fired: &'a FiredSink,
    /// When the objects were read from Stripe's API (a backfill lists them): the time of the state
    /// they carry. `None` for Stripe's events, whose state is as of the event's creation.
    pub as_of: Option<i64>,
    pub now: i64,
}

impl Context<'_> {
    /// The provider time of the state `event` carries.
    fn state_time(&self, event: &Event) -> i64 {
        self.as_of.unwrap_or(event.created)
    }

    fn auth(&self) -> StripeAuth {
        StripeAuth::from(self.account)
    }

    /// Unmapped-product records for the products a subscription names outside the catalogue.
    fn unmapped_products(&self, event: &Event, change: &Change<'_>) -> Result<Vec<WriteOp>, StoreError> {
        let Change::Subscription(s) = change else { return Ok(Vec::new()) };
        let mut products: Vec<String> =
            s.items.data.iter().filter_map(|i| i.price()?.product.map(|p| p.0)).filter(|p| !p.is_empty()).collect();
        products.sort();
        products.dedup();
        products
            .into_iter()
            .filter(|p| self.settings.product_of_stripe_product(p).is_none())
            .map(|id| {
                let record = Unmapped {
                    provider: PROVIDER.into(),
                    account: Some(self.account.key.to_string()),
                    id,
                    last_seen: event.created,
                    last_event_id: event.id.to_string(),
                };
                unmapped::put(self.publication, &record)
            })
            .collect()
    }

    /// The object as Stripe holds it now; `None` when Stripe no longer has it or refuses to show it.
    async fn fetch<T: DeserializeOwned>(&self, collection: &str, id: &str) -> Result<Option<T>, SyncError> {
        // Ids come from events: only Stripe's id alphabet may reach a URL path.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(None);
        }
        match self.api.get(&self.auth(), &format!("/v1/{collection}/{id}"), &Params::new()).await {
            Ok(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| SyncError::Message(format!("Stripe answered an unexpected {collection} object: {e}"))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) if e.is_transient() => Err(e.into()),
            // A read refused for good (a revoked or restricted key) must not stop the sync: the event
            // itself is applied, without what Stripe would have added.
            Err(e) => {
                tracing::warn!(error = %e, collection, "Stripe refused a read; applying the event without it");
                Ok(None)
            }
        }
    }

    fn ledger(&self, event: &Event) -> Result<WriteOp, SyncError> {
        Ok(ledger::applied(self.publication, PROVIDER, event.id.as_str(), self.now)?)
    }

    /// Records an event that changes nothing, so a redelivery is recognised as a duplicate too.
    async fn record_only(&self, event: &Event, why: String) -> Result<Outcome, SyncError> {
        record_seen(self.store, self.ledger(event)?, Outcome::Ignored(why)).await
    }
}

/// What an event changes on a customer record: the event's object, or the invoice read for it.
enum Change<'e> {
    Profile(&'e obj::Customer),
    Subscription(&'e obj::Subscription),
    Schedule(&'e obj::SubscriptionSchedule),
    Invoice(&'e obj::Invoice),
    Charge(&'e obj::Charge),
    Refund(&'e obj::Refund),
    Checkout(&'e obj::CheckoutSession),
}

pub async fn apply(ctx: &Context<'_>, event: &Event) -> Result<Outcome, SyncError> {
    let mut fetched = None;
    let change = match &event.payload {
        Payload::Other => return ctx.record_only(event, format!("{} is not applied", event.kind)).await,
        Payload::Product(p) => {
            let state = map::product(p);
            return apply_catalogue(ctx, event, (catalogue::PRODUCT, "products"), &p.id, state, map::product).await;
        }
        Payload::Price(p) => {
            let state = map::catalogue_price(p);
            return apply_catalogue(ctx, event, (catalogue::PRICE, "prices"), &p.id, state, map::catalogue_price).await;
        }
        Payload::Customer(c) => Change::Profile(c),
        Payload::Subscription(s) => Change::Subscription(s),
        Payload::Schedule(s) => Change::Schedule(s),
        Payload::Invoice(i) => Change::Invoice(i),
        Payload::Charge(c) => Change::Charge(c),
        Payload::Refund(r) => Change::Refund(r),
        Payload::Checkout(c) => Change::Checkout(c),
        // The payment's invoice carries everything the record keeps; read it as Stripe holds it now.
        Payload::InvoicePayment(payment) => {
            let id = payment.invoice.as_ref().map(|i| i.0.as_str()).unwrap_or_default();
            match ctx.fetch::<obj::Invoice>("invoices", id).await? {
                Some(invoice) => Change::Invoice(fetched.insert(invoice)),
                None => return ctx.record_only(event, format!("invoice {id} not found at Stripe")).await,
            }
        }
    };
    let Some(owner) = owner_of(ctx, &change).await? else {
        return ctx.record_only(event, "no Stripe customer to attach it to".into()).await;
    };
    // Set when the email Stripe now shows belongs to another CRM customer: the record keeps its own.
    let mut keep_email = false;
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        let mut found = resolve(ctx, &owner, &change).await?;
        let claimed = match piano_uid_named(&change) {
            Some(uid) if found.value.piano_uid.is_none() => match claim_piano_uid(ctx, &found, uid).await? {
                Claim::Take => Some(uid),
                Claim::Folded => continue,
                Claim::Leave => None,
            },
            _ => None,
        };
        read_touched(ctx.store, &mut found.value, &change).await?;
        let mut after = found.value.clone();
        if let Some(uid) = claimed {
            after.piano_uid = Some(uid.to_owned());
        }
        let mut recorder = Recorder::new(event, &ctx.account.key);
        merge(ctx, event, &change, &mut after.stripe, &mut recorder).await?;
        after.refresh_contact();
        if keep_email {
            after.email = found.value.email.clone();
        }
        let mut extra = vec![ctx.ledger(event)?];
        extra.extend(ctx.unmapped_products(event, &change)?);
        for activity in &recorder.out {
            extra.push(timeline::put(ctx.publication, &after.id, activity)?);
        }
        let fact = Fact {
            at: event.created,
            provider: PROVIDER,
            event_id: event.id.as_str(),
            activities: &recorder.out,
            settings: ctx.settings,
            fired: ctx.fired,
        };
        match commit(ctx.store, &found, after, extra, &fact, ctx.now).await? {
            Committed::Applied => return Ok(Outcome::Applied),
            Committed::Duplicate => return Ok(Outcome::Duplicate),
            Committed::EmailTaken => keep_email = true,
            Committed::Retry => {}
        }
    }
    Err(SyncError::Contention)
}

/// Metadata keys a publication's site may set on a Stripe customer or checkout to name the reader's
/// Piano uid: its server set them while the reader was signed in, which is evidence the two are one.
const PIANO_UID_KEYS: [&str; 3] = ["piano_uid", "pianoUid", "piano_user_id"];

/// The Piano uid the change's customer or checkout names in its metadata.
fn piano_uid_named<'c>(change: &'c Change<'_>) -> Option<&'c str> {
    let metadata = match change {
        Change::Profile(c) => &c.metadata,
        Change::Checkout(c) => &c.metadata,
        _ => return None,
    };
    let uid = PIANO_UID_KEYS.iter().find_map(|k| metadata.get(*k))?.trim();
    crate::domain::ids::provider_id(uid, "Piano uid").ok().map(|_| uid)
}

/// What to do with a uid the Stripe side names.
enum Claim {
    /// Nobody holds it: the record claims it with this event.
    Take,
    /// The uid's own record was folded into this one (`sync::link`): read the record again.
    Folded,
    /// Another record with Stripe customers holds it: left for an operator.
    Leave,
}

async fn claim_piano_uid(ctx: &Context<'_>, found: &Versioned<Customer>, uid: &str) -> Result<Claim, SyncError> {
    let holder = customers::find(ctx.store, ctx.publication, &Identity::Piano(uid.to_owned())).await?;
    if holder.is_none() {
        return Ok(Claim::Take);
    }
    let linked = crate::sync::link::link_piano(
        ctx.store,
        ctx.publication,
        &found.value.id,
        uid,
        crate::sync::link::Evidence::StripeMetadata,
        ctx.now,
    )
    .await;
    match linked {
        Ok(_) => Ok(Claim::Folded),
        Err(crate::sync::link::LinkError::Sync(e)) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, customer = %found.value.id, "Stripe metadata names a Piano user held elsewhere");
            Ok(Claim::Leave)
        }
    }
}

/// Who the change belongs to.
enum Owner {
    Stripe(String),
    /// A guest checkout: only an email.
    Email(Email),
}

async fn owner_of(ctx: &Context<'_>, change: &Change<'_>) -> Result<Option<Owner>, SyncError> {
    let id = |id: &Option<obj::Id>| id.as_ref().map(|i| Owner::Stripe(i.0.clone()));
    Ok(match change {
        Change::Profile(c) => Some(Owner::Stripe(c.id.clone())),
        Change::Subscription(s) => id(&s.customer),
        Change::Schedule(s) => id(&s.customer),
        Change::Invoice(i) => id(&i.customer),
        Change::Charge(c) => id(&c.customer),
        Change::Refund(r) => match &r.charge {
            Some(obj::ChargeRef { customer: Some(customer), .. }) => Some(Owner::Stripe(customer.clone())),
            Some(charge) => ctx.fetch::<obj::Charge>("charges", &charge.id).await?.and_then(|c| id(&c.customer)),
            None => None,
        },
        Change::Checkout(c) => id(&c.customer).or_else(|| {
            let email = c.customer_details.as_ref().and_then(|d| d.email.clone()).or_else(|| c.customer_email.clone());
            email.and_then(|e| Email::parse(&e).ok()).map(Owner::Email)
        }),
    })
}

async fn resolve(ctx: &Context<'_>, owner: &Owner, change: &Change<'_>) -> Result<Versioned<Customer>, SyncError> {
    let key = &ctx.account.key;
    match owner {
        Owner::Email(email) => {
            let mut candidate = Customer::new(ctx.publication.clone(), ctx.now);
            candidate.email = Some(email.clone());
            if let Change::Checkout(c) = change {
                candidate.name = c.customer_details.as_ref().and_then(|d| d.name.clone());
            }
            Ok(customers::find_or_create(ctx.store, &Identity::Email(email.clone()), &candidate).await?)
        }
        Owner::Stripe(stripe_id) => {
            if let Some(found) =
                identity::find_stripe(ctx.store, ctx.identities, ctx.publication, key, stripe_id).await?
            {
                return Ok(found);
            }
            // First sight of this Stripe customer: learn who it is, from the event or from Stripe.
            let fetched = match change {
                Change::Profile(c) => Some((*c).clone()),
                _ => ctx.fetch::<obj::Customer>("customers", stripe_id).await?,
            };
            let mut hints = Hints::default();
            let mut profile = ProfileState {
                account: key.clone(),
                customer_id: stripe_id.clone(),
                email: None,
                name: None,
                postcode: None,
                created: None,
                deleted: false,
            };
            if let Some(c) = &fetched {
                profile = map::profile(key, c);
                hints.email = c.email.as_deref().and_then(|e| Email::parse(e).ok());
                hints.name = c.name.clone();
                hints.crm_id = c.metadata.get("crm_customer_id").and_then(|id| CustomerId::parse(id).ok());
            }
            if let Change::Checkout(c) = change {
                let details = c.customer_details.as_ref();
                hints.email =
                    hints.email.or_else(|| details.and_then(|d| d.email.as_deref()).and_then(|e| Email::parse(e).ok()));
                hints.name = hints.name.or_else(|| details.and_then(|d| d.name.clone()));
            }
            // A profile learned here is not an event's state: any event about the customer supersedes it.
            let profile = Tracked { as_of: 0, state: profile };
            let linked =
                identity::link_stripe(ctx.store, ctx.publication, key, stripe_id, profile, &hints, ctx.now).await?;
            ctx.identities.remember((ctx.publication.clone(), key.clone(), stripe_id.clone()), linked.value.id.clone());
            Ok(linked)
        }
    }
}

/// Reads the invoice and charge items the change merges into; for a refund, also the invoice its
/// charge paid (automations name the plan a refund was bought through).
async fn read_touched(store: &dyn Store, customer: &mut Customer, change: &Change<'_>) -> Result<(), StoreError> {
    // The group, whether the change carries refunds, and the invoice the change itself names.
    let (group, refunds, incoming) = match change {
        Change::Invoice(i) => return payments::read_invoice(store, customer, &i.id).await,
        // Old API versions list the charge's refunds on it.
        Change::Charge(c) => (
            c.id.clone(),
            c.refunds.as_ref().is_some_and(|list| !list.data.is_empty()),
            c.invoice.as_ref().map(|i| i.0.clone()),
        ),
        Change::Refund(r) => (r.charge.as_ref().map_or_else(|| r.id.clone(), |c| c.id.clone()), true, None),
        _ => return Ok(()),
    };
    payments::read_group(store, customer, &group).await?;
    if !refunds {
        return Ok(());
    }
    if let Some(invoice) = incoming.or_else(|| customer.stripe.charges.get(&group)?.state.invoice_id.clone()) {
        payments::read_invoice(store, customer, &invoice).await?;
    }
    Ok(())
}

/// Where to read an object again when an event cannot decide (same second, different content).
struct Refetch<'a, F> {
    collection: &'a str,
    id: &'a str,
    convert: F,
}

/// Merges `incoming` into `slot`; on a same-second tie, stores the object as Stripe holds it now.
async fn track<T, O>(
    ctx: &Context<'_>,
    slot: &mut Option<Tracked<T>>,
    incoming: T,
    as_of: i64,
    refetch: &Refetch<'_, impl Fn(&O) -> T>,
) -> Result<(), SyncError>
where
    T: PartialEq + Progress,
    O: DeserializeOwned,
{
    if Tracked::merge(slot, incoming, as_of) == Merge::Undecided
        && let Some(fresh) = ctx.fetch::<O>(refetch.collection, refetch.id).await?
    {
        Tracked::replace(slot, (refetch.convert)(&fresh), as_of);
    }
    Ok(())
}

/// Merges the state of object `id` held in `map` (see `track`).
async fn track_in<T, O>(
    ctx: &Context<'_>,
    map: &mut BTreeMap<String, Tracked<T>>,
    incoming: T,
    as_of: i64,
    collection: &str,
    id: &str,
    convert: impl Fn(&O) -> T,
) -> Result<(), SyncError>
where
    T: PartialEq + Progress,
    O: DeserializeOwned,
{
    let mut slot = map.remove(id);
    track(ctx, &mut slot, incoming, as_of, &Refetch { collection, id, convert }).await?;
    if let Some(value) = slot {
        map.insert(id.to_owned(), value);
    }
    Ok(())
}

async fn merge(
    ctx: &Context<'_>,
    event: &Event,
    change: &Change<'_>,
    billing: &mut StripeBilling,
    recorder: &mut Recorder<'_>,
) -> Result<(), SyncError> {
    let account = &ctx.account.key;
    let at = ctx.state_time(event);
    match change {
        Change::Profile(c) => {
            let state = map::profile(account, c);
            track_in(ctx, &mut billing.profiles, state, at, "customers", &c.id, |o: &obj::Customer| {
                map::profile(account, o)
            })
            .await?;
            if event.kind == "customer.deleted" {
                recorder.simple(ActivityKind::CustomerDeleted, format!("Stripe customer {} deleted", c.id), &c.id);
            }
        }
        Change::Subscription(s) => {
            let state = map::subscription(account, s);
            recorder.subscription(&state, event.previous_attributes.as_ref());
            track_in(ctx, &mut billing.subscriptions, state, at, "subscriptions", &s.id, |o: &obj::Subscription| {
                map::subscription(account, o)
            })
            .await?;
        }
        Change::Schedule(s) => {
            let state = schedule(account, s);
            track_in(
                ctx,
                &mut billing.schedules,
                state,
                at,
                "subscription_schedules",
                &s.id,
                |o: &obj::SubscriptionSchedule| schedule(account, o),
            )
            .await?;
        }
        Change::Invoice(i) => {
            let state = map::invoice(account, i);
            recorder.invoice(&state);
            if i.deleted == Some(true) || event.kind == "invoice.deleted" {
                billing.invoices.remove(&i.id);
            } else {
                track_in(ctx, &mut billing.invoices, state, at, "invoices", &i.id, |o: &obj::Invoice| {
                    map::invoice(account, o)
                })
                .await?;
            }
        }
        Change::Charge(c) => {
            // Old API versions list the charge's refunds on it.
            for refund in c.refunds.iter().flat_map(|list| &list.data) {
                merge_refund(ctx, at, refund, billing, recorder).await?;
            }
            let state = map::charge(account, c);
            track_in(ctx, &mut billing.charges, state, at, "charges", &c.id, |o: &obj::Charge| map::charge(account, o))
                .await?;
        }
        Change::Refund(r) => merge_refund(ctx, at, r, billing, recorder).await?,
        Change::Checkout(c) => {
            let amount = c.amount_total.zip(c.currency.as_deref().and_then(|cur| Currency::parse(cur).ok()));
            recorder.checkout(&c.id, c.mode.as_deref().unwrap_or("payment"), amount.map(|(a, cur)| Money::new(a, cur)));
        }
    }
    Ok(())
}

async fn merge_refund(
    ctx: &Context<'_>,
    at: i64,
    refund: &obj::Refund,
    billing: &mut StripeBilling,
    recorder: &mut Recorder<'_>,
) -> Result<(), SyncError> {
    let account = &ctx.account.key;
    let state = map::refund(account, refund);
    if !matches!(state.status.as_str(), "failed" | "canceled") {
        recorder.refund(&state.id, state.amount, state.currency.as_ref(), state.created);
    }
    track_in(ctx, &mut billing.refunds, state, at, "refunds", &refund.id, |o: &obj::Refund| map::refund(account, o))
        .await
}

fn schedule(account: &crate::domain::ids::AccountKey, s: &obj::SubscriptionSchedule) -> ScheduleState {
    ScheduleState {
        account: account.clone(),
        id: s.id.clone(),
        subscription_id: s.subscription.as_ref().or(s.released_subscription.as_ref()).map(|i| i.0.clone()),
        status: s.status.clone().unwrap_or_else(|| "not_started".into()),
    }
}

/// Products and prices live beside the customers, per account.
async fn apply_catalogue<T, O>(
    ctx: &Context<'_>,
    event: &Event,
    (kind, collection): (&str, &str),
    id: &str,
    incoming: T,
    convert: impl Fn(&O) -> T,
) -> Result<Outcome, SyncError>
where
    T: PartialEq + Progress + serde::Serialize + DeserializeOwned + Clone,
    O: DeserializeOwned,
{
    let key = &ctx.account.key;
    for round in 0..ROUNDS {
        if round > 0 {
            contention_pause(round).await;
        }
        let held = catalogue::get::<T>(ctx.store, ctx.publication, key, kind, id).await?;
        let version = held.as_ref().map(|h| h.version);
        let before = held.map(|h| h.value);
        let mut slot = before.clone();
        track(ctx, &mut slot, incoming.clone(), ctx.state_time(event), &Refetch { collection, id, convert: &convert })
            .await?;
        let mut ops = vec![ctx.ledger(event)?];
        if let Some(value) = slot.as_ref().filter(|_| slot != before) {
            ops.push(catalogue::put(ctx.publication, key, kind, id, value, version)?);
        }
        match ctx.store.write(ops).await {
            Ok(()) => return Ok(Outcome::Applied),
            Err(StoreError::ConditionFailed { index: 0 }) => return Ok(Outcome::Duplicate),
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SyncError::Contention)
}
