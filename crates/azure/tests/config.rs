//! Reading the configuration from variables.

use futures::executor::block_on;
use ragspin_azure::{AzureConfig, DEFAULT_API_VERSION, Provider, vars};
use ragspin_core::Error;
use ragspin_testkit::MapConfig;

const KEY: &str = "azure-key-5f2b9c0e7d";

fn online() -> MapConfig {
    MapConfig::new()
        .with(vars::ENDPOINT, "https://res.openai.azure.com/")
        .with(vars::API_KEY, KEY)
        .with(vars::CHAT_DEPLOYMENT, "gpt-4o-mini")
        .with(vars::EMBEDDING_DEPLOYMENT, "text-embedding-3-small")
}

fn unavailable_naming(result: Result<Option<AzureConfig>, Error>, name: &str) {
    match result {
        Err(Error::Unavailable(m)) => assert!(m.contains(name), "{m}"),
        other => panic!("expected Unavailable naming {name}, got {other:?}"),
    }
}

#[test]
fn is_offline_when_the_endpoint_or_the_key_is_empty_or_undefined() {
    assert_eq!(
        block_on(AzureConfig::from_config(&MapConfig::new())),
        Ok(None)
    );
    let no_key = online().with(vars::API_KEY, "");
    assert_eq!(block_on(AzureConfig::from_config(&no_key)), Ok(None));
    let no_endpoint = online().with(vars::ENDPOINT, "  ");
    assert_eq!(block_on(AzureConfig::from_config(&no_endpoint)), Ok(None));
}

#[test]
fn reads_an_azure_config_with_defaults() {
    let config = block_on(AzureConfig::from_config(&online()))
        .unwrap()
        .unwrap();
    assert_eq!(
        config.provider,
        Provider::Azure {
            endpoint: "https://res.openai.azure.com".into(),
            api_key: KEY.into()
        }
    );
    assert_eq!(config.api_version, DEFAULT_API_VERSION);
    assert_eq!(config.api_version, "2024-10-21");
    assert_eq!(config.embedding_model, "text-embedding-3-small");
    assert_eq!(config.embedding_dimensions, None);
    assert_eq!(config.embedding_limits.max_inputs, 2048);
    assert_eq!(
        (config.embedding_timeout_ms, config.chat_timeout_ms),
        (30_000, 60_000)
    );
}

#[test]
fn reads_the_optional_variables() {
    let vars = online()
        .with(vars::API_VERSION, "2024-06-01")
        .with(vars::EMBEDDING_DIMENSIONS, "512")
        .with(vars::EMBEDDING_TIMEOUT_MS, "5000")
        .with(vars::CHAT_TIMEOUT_MS, "90000")
        .with(vars::RETRY_BUDGET_MS, "120000")
        .with(vars::MAX_ATTEMPTS, "3")
        .with(vars::EMBEDDING_BATCH_TOKENS, "20000");
    let config = block_on(AzureConfig::from_config(&vars)).unwrap().unwrap();
    assert_eq!(config.api_version, "2024-06-01");
    assert_eq!(config.embedding_dimensions, Some(512));
    assert_eq!(
        (config.embedding_timeout_ms, config.chat_timeout_ms),
        (5_000, 90_000)
    );
    assert_eq!(
        (config.retry.budget_ms, config.retry.max_attempts),
        (120_000, 3)
    );
    assert_eq!(config.embedding_limits.max_request_tokens, 20_000);
    assert_eq!(config.embedding_cache_model(), "text-embedding-3-small@512");
}

#[test]
fn selects_an_openai_compatible_provider() {
    let vars = online()
        .with(vars::ENDPOINT, "http://127.0.0.1:11434")
        .with(vars::PROVIDER, "openai_compatible");
    let config = block_on(AzureConfig::from_config(&vars)).unwrap().unwrap();
    assert_eq!(
        config.provider,
        Provider::OpenAiCompatible {
            base_url: "http://127.0.0.1:11434".into(),
            bearer: KEY.into()
        }
    );
    unavailable_naming(
        block_on(AzureConfig::from_config(
            &online().with(vars::PROVIDER, "bedrock"),
        )),
        vars::PROVIDER,
    );
}

#[test]
fn requires_both_deployments_once_online() {
    for name in [vars::CHAT_DEPLOYMENT, vars::EMBEDDING_DEPLOYMENT] {
        let config = online();
        config.remove(name);
        unavailable_naming(block_on(AzureConfig::from_config(&config)), name);
    }
}

#[test]
fn rejects_malformed_values_naming_the_variable() {
    let cases = [
        (vars::ENDPOINT, "res.openai.azure.com"),
        (vars::EMBEDDING_DIMENSIONS, "many"),
        (vars::EMBEDDING_DIMENSIONS, "0"),
        (vars::MAX_ATTEMPTS, "0"),
        (vars::EMBEDDING_TIMEOUT_MS, "-1"),
        (vars::EMBEDDING_BATCH_TOKENS, "100"),
    ];
    for (name, value) in cases {
        unavailable_naming(
            block_on(AzureConfig::from_config(&online().with(name, value))),
            name,
        );
    }
}

#[test]
fn refuses_dimensions_for_a_model_that_does_not_accept_them() {
    let vars = online()
        .with(vars::EMBEDDING_DEPLOYMENT, "embeddings-prod")
        .with(vars::EMBEDDING_DIMENSIONS, "256");
    unavailable_naming(
        block_on(AzureConfig::from_config(&vars)),
        vars::EMBEDDING_MODEL,
    );
    let named = vars.with(vars::EMBEDDING_MODEL, "text-embedding-3-large");
    let config = block_on(AzureConfig::from_config(&named)).unwrap().unwrap();
    assert_eq!(config.embedding_dimensions, Some(256));
    assert_eq!(config.embedding_deployment, "embeddings-prod");
}

#[test]
fn never_shows_the_key_in_debug_output_or_errors() {
    let config = block_on(AzureConfig::from_config(&online()))
        .unwrap()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    let bad = online().with(vars::EMBEDDING_DIMENSIONS, KEY);
    let error = block_on(AzureConfig::from_config(&bad)).unwrap_err();
    assert!(!format!("{error:?}").contains(KEY));
}

#[test]
fn passes_a_failing_variable_provider_through() {
    let vars = online();
    vars.fail_with(Some("vault down"));
    assert_eq!(
        block_on(AzureConfig::from_config(&vars)),
        Err(Error::Unavailable("vault down".into()))
    );
}
