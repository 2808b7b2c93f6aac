//! `serve --demo`: the built-in mock upstream plus a seeded demo tenant with balance and a key,
//! so a newcomer can make a real call in one command.

use std::net::SocketAddr;

use modelrouter_domain::api_key::KeyScope;
use modelrouter_domain::metadata::Actor;
use modelrouter_domain::provider::UpstreamProtocol;

use crate::import::{
    self, DeploymentSpec, ImportFile, KeySpec, ModelSpec, ProviderSpec, RouteSpec, TenantSpec,
};
use crate::server::Core;

pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_MODEL: &str = "demo-gpt";

/// The demo key: `MODELROUTER_DEMO_API_KEY`, else the one kept in the data directory, else new.
pub fn demo_key(data_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Ok(key) = std::env::var("MODELROUTER_DEMO_API_KEY") {
        if key.len() >= 20 {
            return Ok(key);
        }
        anyhow::bail!("MODELROUTER_DEMO_API_KEY must be at least 20 characters");
    }
    let path = data_dir.join("demo-api-key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(key.trim().to_string());
    }
    let key = crate::crypto::generate_api_key();
    // The demo tenant's key spends its balance: only the owner may read it.
    crate::crypto::create_private_dir(data_dir)?;
    crate::crypto::write_private(&path, &key)?;
    Ok(key)
}

/// The demo catalog, pointing at a mock upstream listening on `mock`.
pub fn demo_file(mock: SocketAddr, key: &str) -> ImportFile {
    let model = |name: &str, display: &str, input: i64, output: i64| ModelSpec {
        name: name.into(),
        display_name: display.into(),
        description: "Served by the built-in mock upstream".into(),
        input_price: input,
        output_price: output,
        cached_input_price: input / 4,
        cache_write_price: None,
        max_output_tokens: None,
        context_window: Some(128_000),
        price_effective_at: None,
        kind: Default::default(),
    };
    let provider = |id: &str, protocol: UpstreamProtocol, base: &str| ProviderSpec {
        id: id.into(),
        protocol,
        base_url: format!("http://{mock}{base}"),
        region: "local".into(),
        api_key: Some("sk-demo-upstream-credential".into()),
        enabled: true,
    };
    // One model per upstream protocol, all served by the built-in mock.
    let served: [(&str, &str); 5] = [
        (DEMO_MODEL, "demo-openai"),
        ("demo-mini", "demo-openai"),
        ("demo-claude", "demo-anthropic"),
        ("demo-qwen", "demo-dashscope"),
        ("demo-minimax", "demo-minimax"),
    ];
    ImportFile {
        providers: vec![
            provider("demo-openai", UpstreamProtocol::Openai, "/v1"),
            provider("demo-anthropic", UpstreamProtocol::Anthropic, ""),
            provider("demo-dashscope", UpstreamProtocol::Dashscope, "/api/v1"),
            provider("demo-minimax", UpstreamProtocol::Minimax, "/v1"),
        ],
        models: vec![
            model(DEMO_MODEL, "Demo GPT", 2_000_000, 8_000_000),
            model("demo-mini", "Demo Mini", 150_000, 600_000),
            model("demo-claude", "Demo Claude", 3_000_000, 15_000_000),
            model("demo-qwen", "Demo Qwen", 400_000, 1_200_000),
            model("demo-minimax", "Demo MiniMax", 300_000, 1_200_000),
        ],
        routes: served
            .iter()
            .map(|(name, provider)| RouteSpec {
                model: (*name).into(),
                deployments: vec![DeploymentSpec {
                    provider: (*provider).into(),
                    upstream_model: format!("mock-{name}"),
                    region: None,
                    weight: 100,
                    priority: 0,
                }],
                max_attempts: None,
                strategy: Default::default(),
                timeout_ms: None,
            })
            .collect(),
        tenants: vec![TenantSpec {
            email: DEMO_EMAIL.into(),
            name: "Demo Tenant".into(),
            password: "demo-password-change-me".into(),
            balance: 10_000_000,
            keys: vec![KeySpec {
                name: "demo".into(),
                key: Some(key.into()),
                scope: KeyScope::Auto,
            }],
            policy: None,
        }],
    }
}

pub async fn seed(core: &Core, mock: SocketAddr, key: &str) -> anyhow::Result<()> {
    import::apply(core, &demo_file(mock, key), &Actor::Cli).await?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_kept_demo_key_is_readable_by_its_owner_only() {
        if std::env::var_os("MODELROUTER_DEMO_API_KEY").is_some() {
            return; // the key comes from the environment; no file is written
        }
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let key = super::demo_key(&data_dir).unwrap();
        let file = data_dir.join("demo-api-key");
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(
            super::demo_key(&data_dir).unwrap(),
            key,
            "kept, not replaced"
        );
    }
}
