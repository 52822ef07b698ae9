//! Exports of a publication's customers, subscriptions and invoices as CSV or JSON Lines, in the
//! stable column order of docs/exports.md: amounts in minor units next to their currency, times in
//! RFC 3339. Rows are made one page of customers at a time (`Export::next_chunk`), so an export of
//! any size holds one page in memory; the HTTP route and `crm export` stream the chunks.

use serde_json::{Map, Value};

use crate::domain::customer::Customer;
use crate::domain::ids::PublicationId;
use crate::domain::money::Currency;
use crate::domain::record::rfc3339;
use crate::store::repo::{customers, payments};
use crate::store::{Cursor, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customers,
    Subscriptions,
    Invoices,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "customers" => Some(Kind::Customers),
            "subscriptions" => Some(Kind::Subscriptions),
            "invoices" => Some(Kind::Invoices),
            _ => None,
        }
    }

    /// The columns, in their documented order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Customers => &[
                "customer_id",
                "email",
                "name",
                "payment_status",
                "lifecycle_stage",
                "stripe_customer_ids",
                "piano_uid",
                "currency",
                "mrr",
                "lifetime_value",
                "created_at",
            ],
            Kind::Subscriptions => &[
                "customer_id",
                "provider",
                "account",
                "subscription_id",
                "status",
                "price_id",
                "product_id",
                "quantity",
                "currency",
                "unit_amount",
                "interval",
                "interval_count",
                "subscription_mrr",
                "current_period_start",
                "current_period_end",
                "cancel_at_period_end",
                "canceled_at",
                "created_at",
            ],
            Kind::Invoices => &[
                "customer_id",
                "account",
                "invoice_id",
                "number",
                "status",
                "currency",
                "amount_due",
                "amount_paid",
                "amount_remaining",
                "created_at",
                "due_date",
                "paid_at",
                "subscription_id",
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

/// A cell: text, a number, a flag, or nothing.
#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    Number(i64),
    Flag(bool),
    Empty,
}

impl Cell {
    fn text(value: Option<impl Into<String>>) -> Self {
        value.map_or(Cell::Empty, |v| Cell::Text(v.into()))
    }

    fn time(epoch: Option<i64>) -> Self {
        Cell::text(epoch.and_then(rfc3339))
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(t) => neutralised(t),
            Cell::Number(n) => n.to_string(),
            Cell::Flag(b) => b.to_string(),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(t) => Value::String(t.clone()),
            Cell::Number(n) => Value::from(*n),
            Cell::Flag(b) => Value::Bool(*b),
            Cell::Empty => Value::Null,
        }
    }
}

/// Text as a spreadsheet must not run it: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return (what spreadsheets read as a formula) gets a leading `'`, as OWASP's CSV injection guidance
/// says. Names and emails come from readers; numbers are the export's own and stay as they are.
fn neutralised(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

/// The rows of one customer for `kind`.
fn rows(kind: Kind, c: &Customer) -> Vec<Vec<Cell>> {
    let id = || Cell::Text(c.id.to_string());
    match kind {
        Kind::Customers => {
            let (mrr, ltv) = (c.stripe.mrr(), c.lifetime_value());
            let mut currencies: Vec<&Currency> = mrr.iter().chain(ltv.iter()).map(|(cur, _)| cur).collect();
            currencies.sort();
            currencies.dedup();
            let stripe_ids: Vec<String> = c.stripe_customer_ids.iter().map(|(a, id)| format!("{a}:{id}")).collect();
            let row = |currency: Option<&Currency>| {
                vec![
                    id(),
                    Cell::text(c.email.as_ref().map(|e| e.to_string())),
                    Cell::text(c.name.clone()),
                    Cell::Text(c.payment_status().as_str().to_owned()),
                    Cell::text(c.lifecycle_stage.clone()),
                    Cell::text((!stripe_ids.is_empty()).then(|| stripe_ids.join(";"))),
                    Cell::text(c.piano_uid.clone()),
                    Cell::text(currency.map(|cur| cur.to_string())),
                    currency.map_or(Cell::Empty, |cur| Cell::Number(mrr.get(cur))),
                    currency.map_or(Cell::Empty, |cur| Cell::Number(ltv.get(cur))),
                    Cell::time(Some(c.created_at)),
                ]
            };
            // One row per currency the customer has figures in; one row without when none.
            if currencies.is_empty() {
                vec![row(None)]
            } else {
                currencies.into_iter().map(|cur| row(Some(cur))).collect()
            }
        }
        Kind::Subscriptions => {
            let mut out = Vec::new();
            for sub in c.stripe.subscriptions.values().map(|t| &t.state) {
                let mrr = sub.mrr();
                for item in &sub.items {
                    let price = &item.price;
                    out.push(vec![
                        id(),
                        Cell::Text("stripe".into()),
                        Cell::Text(sub.account.to_string()),
                        Cell::Text(sub.id.clone()),
                        Cell::Text(sub.status.clone()),
                        Cell::Text(price.price_id.clone()),
                        Cell::text(price.product_id.clone()),
                        Cell::Number(i64::try_from(item.quantity).unwrap_or(i64::MAX)),
                        Cell::text(price.currency.as_ref().map(|cur| cur.to_string())),
                        price.unit_amount.map_or(Cell::Empty, Cell::Number),
                        Cell::text(price.interval.clone()),
                        Cell::Number(i64::from(price.interval_count)),
                        price.currency.as_ref().map_or(Cell::Empty, |cur| Cell::Number(mrr.get(cur))),
                        Cell::time(sub.current_period_start),
                        Cell::time(sub.current_period_end),
                        Cell::Flag(sub.cancel_at_period_end),
                        Cell::time(sub.canceled_at),
                        Cell::time(sub.created),
                    ]);
                }
            }
            for sub in c.piano.subscriptions.values().map(|t| &t.state) {
                out.push(vec![
                    id(),
                    Cell::Text("piano".into()),
                    Cell::Empty,
                    Cell::Text(sub.id.clone()),
                    Cell::Text(sub.status.clone()),
                    Cell::text(sub.term_id.clone()),
                    Cell::text(sub.resource_id.clone()),
                    Cell::Empty,
                    Cell::Empty,
                    Cell::Empty,
                    Cell::Empty,
                    Cell::Empty,
                    Cell::Empty,
                    Cell::Empty,
                    Cell::time(sub.expires_at),
                    Cell::Flag(sub.status == "canceled"),
                    Cell::Empty,
                    Cell::Empty,
                ]);
            }
            out
        }
        Kind::Invoices => c
            .stripe
            .invoices
            .values()
            .map(|t| &t.state)
            .map(|i| {
                vec![
                    id(),
                    Cell::Text(i.account.to_string()),
                    Cell::Text(i.id.clone()),
                    Cell::text(i.number.clone()),
                    Cell::Text(i.display_status().to_owned()),
                    Cell::text(i.currency.as_ref().map(|cur| cur.to_string())),
                    Cell::Number(i.amount_due),
                    Cell::Number(i.amount_paid),
                    Cell::Number(i.amount_remaining),
                    Cell::time(i.created),
                    Cell::time(i.due_date),
                    Cell::time(i.paid_at),
                    Cell::text(i.subscription_id.clone()),
                ]
            })
            .collect(),
    }
}

fn encode(kind: Kind, format: Format, rows: &[Vec<Cell>], header: bool) -> Result<Vec<u8>, ExportError> {
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            if header {
                writer.write_record(kind.columns())?;
            }
            for row in rows {
                writer.write_record(row.iter().map(Cell::csv))?;
            }
            writer.into_inner().map_err(|e| ExportError::Encode(e.to_string()))
        }
        Format::Jsonl => {
            let mut out = Vec::new();
            for row in rows {
                let object: Map<String, Value> =
                    kind.columns().iter().zip(row).map(|(column, cell)| ((*column).to_owned(), cell.json())).collect();
                serde_json::to_writer(&mut out, &object).map_err(|e| ExportError::Encode(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        ExportError::Encode(e.to_string())
    }
}

/// Customers read per page.
const PAGE: u32 = 200;

/// An export in progress: each `next_chunk` reads one page of customers and encodes their rows.
pub struct Export {
    publication: PublicationId,
    kind: Kind,
    format: Format,
    after: Option<Cursor>,
    started: bool,
    done: bool,
}

impl Export {
    pub fn new(publication: PublicationId, kind: Kind, format: Format) -> Self {
        Self { publication, kind, format, after: None, started: false, done: false }
    }

    /// The next bytes of the export; `None` when it is complete.
    pub async fn next_chunk(&mut self, store: &dyn Store) -> Result<Option<Vec<u8>>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let (mut page, next) = customers::list(store, &self.publication, PAGE, self.after.take()).await?;
        if self.kind == Kind::Invoices {
            payments::read_all_of(store, &mut page).await?;
        }
        let rows: Vec<Vec<Cell>> = page.iter().flat_map(|c| rows(self.kind, c)).collect();
        let header = !self.started && self.format == Format::Csv;
        self.started = true;
        self.done = next.is_none();
        self.after = next;
        encode(self.kind, self.format, &rows, header).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        for trigger in ["=", "+", "-", "@", "\t", "\r"] {
            let text = format!("{trigger}HYPERLINK(\"http://evil.example\")");
            assert_eq!(Cell::Text(text.clone()).csv(), format!("'{text}"), "{trigger:?}");
            assert_eq!(Cell::Text(text.clone()).json(), Value::String(text), "JSON Lines unchanged");
        }
        assert_eq!(Cell::Text("Jane =Doe".into()).csv(), "Jane =Doe", "only a leading trigger");
        assert_eq!(Cell::Number(-500).csv(), "-500", "the export's own numbers stay");
    }
}
