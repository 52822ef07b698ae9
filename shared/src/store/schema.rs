//! The table's physical definition: attribute names, the GSI, the TTL attribute, and the
//! `create_table` call used by `crm tables create` and the tests. `template.yaml` declares the same
//! table; `shared/tests/template.rs` checks the two agree.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::StoreError;

pub mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const GSI1PK: &str = "gsi1pk";
    pub const GSI1SK: &str = "gsi1sk";
    pub const VERSION: &str = "v";
    pub const TTL: &str = "ttl";
    pub const DOC: &str = "doc";
}

pub const GSI1: &str = "gsi1";

/// Every string-typed key attribute, as (name, role) — the definitions the template repeats.
pub const KEY_ATTRIBUTES: [&str; 4] = [attr::PK, attr::SK, attr::GSI1PK, attr::GSI1SK];

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Creates the table (on-demand billing, GSI1 projecting all attributes, TTL on `ttl`).
/// An existing table is left as it is.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
    let mut definitions = Vec::new();
    for name in KEY_ATTRIBUTES {
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(invalid)?,
        );
    }
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(attr::GSI1PK, KeyType::Hash)?)
        .key_schema(key(attr::GSI1SK, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(invalid)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .key_schema(key(attr::PK, KeyType::Hash)?)
        .key_schema(key(attr::SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {
            return Ok(false);
        }
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "create table {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )));
        }
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name(attr::TTL).build().map_err(invalid)?,
        )
        .send()
        .await
        .map_err(|e| {
            StoreError::Backend(format!("enable TTL on {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
        })?;
    Ok(true)
}
