//! DynamoDB adapter of the `Store` port (single table, one GSI, TTL attribute).
//!
//! Single writes use PutItem/DeleteItem with a condition expression; several use
//! TransactWriteItems. Items whose TTL has passed but that DynamoDB has not yet deleted are
//! treated as absent, in reads and in conditions alike.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};

use super::schema::attr;
use super::{Cond, Cursor, Index, Item, Key, Page, Query, SkCond, Store, StoreError, WriteOp, now_epoch, validate_ops};

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// A cheap call that opens the connection (TLS included), so the first request does not pay it.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        self.get(&Key::new("WARMUP", "WARMUP")).await.map(|_| ())
    }
}

type Attrs = HashMap<String, AttributeValue>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([(attr::PK.into(), s(&key.pk)), (attr::SK.into(), s(&key.sk))])
}

fn item_attrs(item: &Item) -> Attrs {
    let mut m = key_attrs(&item.key);
    if let Some(g) = &item.gsi1 {
        m.insert(attr::GSI1PK.into(), s(&g.pk));
        m.insert(attr::GSI1SK.into(), s(&g.sk));
    }
    m.insert(attr::VERSION.into(), n(item.version));
    if let Some(t) = item.expires_at {
        m.insert(attr::TTL.into(), n(t));
    }
    m.insert(attr::DOC.into(), s(&item.doc));
    m
}

fn parse_item(m: &Attrs) -> Result<Item, StoreError> {
    let text = |name: &str| -> Result<Option<String>, StoreError> {
        match m.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a string"))),
        }
    };
    let number = |name: &str| -> Result<Option<i64>, StoreError> {
        match m.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(v)) => {
                v.parse().map(Some).map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer")))
            }
            Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a number"))),
        }
    };
    let required = |name: &str| text(name)?.ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing")));
    let key = Key { pk: required(attr::PK)?, sk: required(attr::SK)? };
    let gsi1 = match (text(attr::GSI1PK)?, text(attr::GSI1SK)?) {
        (Some(pk), Some(sk)) => Some(Key { pk, sk }),
        _ => None,
    };
    let version = number(attr::VERSION)?.unwrap_or(0);
    Ok(Item {
        key,
        gsi1,
        version: u64::try_from(version).map_err(|_| StoreError::Corrupt("negative version".into()))?,
        expires_at: number(attr::TTL)?,
        doc: required(attr::DOC)?,
    })
}

/// A condition expression with its names and values, treating expired items as absent.
struct Condition {
    expression: Option<String>,
    names: HashMap<String, String>,
    values: Attrs,
}

fn condition(cond: Cond, now: i64) -> Condition {
    let live = "(attribute_not_exists(#ttl) OR #ttl > :now)";
    let (expression, version) = match cond {
        Cond::None => (None, None),
        Cond::NotExists => (Some("attribute_not_exists(#pk) OR #ttl <= :now".to_owned()), None),
        Cond::Exists => (Some(format!("attribute_exists(#pk) AND {live}")), None),
        Cond::Version(v) => (Some(format!("#v = :v AND {live}")), Some(v)),
    };
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    if let Some(e) = &expression {
        names.insert("#ttl".to_owned(), attr::TTL.to_owned());
        values.insert(":now".to_owned(), n(now));
        if e.contains("#pk") {
            names.insert("#pk".to_owned(), attr::PK.to_owned());
        }
        if let Some(v) = version {
            names.insert("#v".to_owned(), attr::VERSION.to_owned());
            values.insert(":v".to_owned(), n(v));
        }
    }
    Condition { expression, names, values }
}

fn non_empty<K, V>(m: HashMap<K, V>) -> Option<HashMap<K, V>> {
    (!m.is_empty()).then_some(m)
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(err: &SdkError<E, HttpResponse>) -> StoreError {
    const TRANSIENT: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    ];
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(format!("{err}"))
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("unknown");
            let message = format!("{code}: {}", e.message().unwrap_or(""));
            if TRANSIENT.contains(&code) || service.raw().status().is_server_error() {
                StoreError::Transient(message)
            } else if code == "ValidationException" {
                StoreError::Invalid(message)
            } else {
                StoreError::Backend(message)
            }
        }
        _ => StoreError::Backend(format!("{err:?}")),
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let now = now_epoch();
        match out.item {
            None => Ok(None),
            Some(m) => {
                let item = parse_item(&m)?;
                Ok(item.is_live(now).then_some(item))
            }
        }
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let (pk_name, sk_name, index_name) = match query.index {
            Index::Primary => (attr::PK, attr::SK, None),
            Index::Gsi1 => (attr::GSI1PK, attr::GSI1SK, Some(super::schema::GSI1)),
        };
        let mut names = HashMap::from([("#p".to_owned(), pk_name.to_owned())]);
        let mut values = HashMap::from([(":p".to_owned(), s(&query.pk))]);
        let key_condition = match &query.sk {
            SkCond::All => "#p = :p".to_owned(),
            SkCond::BeginsWith(prefix) => {
                names.insert("#s".into(), sk_name.into());
                values.insert(":a".into(), s(prefix));
                "#p = :p AND begins_with(#s, :a)".to_owned()
            }
            SkCond::Between(a, b) => {
                names.insert("#s".into(), sk_name.into());
                values.insert(":a".into(), s(a));
                values.insert(":b".into(), s(b));
                "#p = :p AND #s BETWEEN :a AND :b".to_owned()
            }
        };
        let mut start = match &query.after {
            None => None,
            Some(cursor) => {
                cursor.check_partition(query.index, &query.pk)?;
                let mut k = key_attrs(&cursor.key);
                if let (Index::Gsi1, Some(g)) = (query.index, &cursor.gsi1) {
                    k.insert(attr::GSI1PK.into(), s(&g.pk));
                    k.insert(attr::GSI1SK.into(), s(&g.sk));
                }
                Some(k)
            }
        };
        let now = now_epoch();
        let want = query.limit as usize;
        let mut items = Vec::new();
        // Ask for one more than the page so `next` is None exactly when nothing follows.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index_name.map(str::to_owned))
                .key_condition_expression(&key_condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(query.forward)
                .consistent_read(query.index == Index::Primary)
                .limit(i32::try_from(want + 1 - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for m in out.items.unwrap_or_default() {
                let item = parse_item(&m)?;
                if item.is_live(now) {
                    items.push(item);
                }
            }
            start = out.last_evaluated_key;
            if items.len() > want || start.is_none() {
                break;
            }
        }
        let more = items.len() > want;
        items.truncate(want);
        let next = if more { items.last().map(|last| Cursor::after_item(last, query.index)) } else { None };
        Ok(Page { items, next })
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_ops(&ops)?;
        let now = now_epoch();
        if let [op] = ops.as_slice() {
            return self.write_one(op, now).await;
        }
        let mut transact = Vec::with_capacity(ops.len());
        for op in &ops {
            let c = condition(op.cond(), now);
            let built = match op {
                WriteOp::Put { item, .. } => TransactWriteItem::builder().put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item_attrs(item)))
                        .set_condition_expression(c.expression)
                        .set_expression_attribute_names(non_empty(c.names))
                        .set_expression_attribute_values(non_empty(c.values))
                        .build()
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                ),
                WriteOp::Delete { key, .. } => TransactWriteItem::builder().delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(key)))
                        .set_condition_expression(c.expression)
                        .set_expression_attribute_names(non_empty(c.names))
                        .set_expression_attribute_values(non_empty(c.values))
                        .build()
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                ),
                WriteOp::Check { key, .. } => TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(key)))
                        .condition_expression(
                            c.expression.unwrap_or_else(|| "attribute_exists(#pk) OR attribute_not_exists(#pk)".into()),
                        )
                        .set_expression_attribute_names(Some(if c.names.is_empty() {
                            HashMap::from([("#pk".to_owned(), attr::PK.to_owned())])
                        } else {
                            c.names
                        }))
                        .set_expression_attribute_values(non_empty(c.values))
                        .build()
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                ),
            };
            transact.push(built.build());
        }
        let result = self.client.transact_write_items().set_transact_items(Some(transact)).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e)) =
                    err.as_service_error()
                {
                    let reasons = e.cancellation_reasons();
                    if let Some(index) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    return Err(StoreError::Transient(format!(
                        "transaction cancelled: {:?}",
                        reasons.iter().map(|r| r.code().unwrap_or("None")).collect::<Vec<_>>()
                    )));
                }
                Err(classify(&err))
            }
        }
    }
}

impl DynamoStore {
    async fn write_one(&self, op: &WriteOp, now: i64) -> Result<(), StoreError> {
        let c = condition(op.cond(), now);
        let failed = StoreError::ConditionFailed { index: 0 };
        match op {
            WriteOp::Put { item, .. } => {
                let r = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item_attrs(item)))
                    .set_condition_expression(c.expression)
                    .set_expression_attribute_names(non_empty(c.names))
                    .set_expression_attribute_values(non_empty(c.values))
                    .send()
                    .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                        Err(failed)
                    }
                    Err(e) => Err(classify(&e)),
                }
            }
            WriteOp::Delete { key, .. } => {
                let r = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .set_condition_expression(c.expression)
                    .set_expression_attribute_names(non_empty(c.names))
                    .set_expression_attribute_values(non_empty(c.values))
                    .send()
                    .await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                        Err(failed)
                    }
                    Err(e) => Err(classify(&e)),
                }
            }
            WriteOp::Check { key, cond } => {
                let current = self.get(key).await?;
                if cond.holds(current.as_ref().map(|item| item.version)) { Ok(()) } else { Err(failed) }
            }
        }
    }
}
