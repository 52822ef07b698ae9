//! AWS SDK configuration shared by every function: ring-based TLS (no aws-lc build), endpoint and
//! credentials from the standard AWS environment (so `AWS_ENDPOINT_URL` points at an emulator).

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let http_client =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client).load().await
}
