//! The Spin variables access control reads, with their defaults.
//!
//! A variable a component does not declare (`Config::get` → `Ok(None)`) takes
//! its default, so a component only has to declare the variables it wants to
//! override; `jwt_secret` has no usable default: without it (or with one
//! shorter than 32 bytes) every protected route answers 503, never "open".

use ragspin_core::health::MIN_JWT_SECRET_BYTES;
use ragspin_core::{Config, Error, Result};

use crate::cors::CorsPolicy;

/// Variable names.
pub mod vars {
    /// HMAC key of access tokens (secret, ≥ 32 bytes).
    pub const JWT_SECRET: &str = "jwt_secret";
    /// Bootstrap admin's username.
    pub const ADMIN_USERNAME: &str = "admin_username";
    /// Bootstrap admin's Argon2id PHC hash (secret); empty = no bootstrap admin.
    pub const ADMIN_PASSWORD_HASH: &str = "admin_password_hash";
    /// Comma-separated CORS origins (`*` = any, without credentials).
    pub const CORS_ALLOWED_ORIGINS: &str = "cors_allowed_origins";
    /// Requests per minute per principal (0 = unlimited).
    pub const RATE_LIMIT_PER_MINUTE: &str = "rate_limit_per_minute";
    /// `/auth/token` and `/auth/refresh` requests per minute per client address (0 = unlimited).
    pub const LOGIN_RATE_LIMIT_PER_MINUTE: &str = "login_rate_limit_per_minute";
    /// Failed logins of one username before it is locked out with backoff.
    pub const LOGIN_MAX_FAILURES: &str = "login_max_failures";
    /// Access-token lifetime in seconds.
    pub const ACCESS_TOKEN_TTL_S: &str = "access_token_ttl_s";
    /// Refresh-token (session) lifetime in seconds.
    pub const REFRESH_TOKEN_TTL_S: &str = "refresh_token_ttl_s";
    /// `true` = `/metrics` needs an admin token or key.
    pub const METRICS_REQUIRE_AUTH: &str = "metrics_require_auth";
}

/// `iss` of every access token.
pub const ISSUER: &str = "ragspin";
/// `aud` of every access token.
pub const AUDIENCE: &str = "ragspin-api";

/// Defaults of the numeric variables.
pub mod defaults {
    /// `rate_limit_per_minute`.
    pub const RATE_LIMIT_PER_MINUTE: u32 = 120;
    /// `login_rate_limit_per_minute`.
    pub const LOGIN_RATE_LIMIT_PER_MINUTE: u32 = 10;
    /// `login_max_failures`.
    pub const LOGIN_MAX_FAILURES: u32 = 5;
    /// `access_token_ttl_s` (15 minutes).
    pub const ACCESS_TOKEN_TTL_S: u64 = 900;
    /// `refresh_token_ttl_s` (14 days).
    pub const REFRESH_TOKEN_TTL_S: u64 = 14 * 24 * 3600;
}

/// Everything access control is configured with, read once per request.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    jwt_secret: String,
    /// Whether this component can see `admin_password_hash` at all.
    admin_visible: bool,
    /// Bootstrap admin username (lowercased); empty = none.
    pub admin_username: String,
    /// Bootstrap admin password hash; empty = no bootstrap admin.
    pub admin_password_hash: String,
    /// CORS allowlist.
    pub cors: CorsPolicy,
    /// Per-principal requests per minute (0 = unlimited).
    pub rate_limit_per_minute: u32,
    /// Per-address login/refresh requests per minute (0 = unlimited).
    pub login_rate_limit_per_minute: u32,
    /// Failed logins before lockout (≥ 1).
    pub login_max_failures: u32,
    /// Access-token lifetime (60 s – 1 day).
    pub access_ttl_s: u64,
    /// Session / refresh-token lifetime (≥ the access-token lifetime, ≤ 90 days).
    pub refresh_ttl_s: u64,
    /// Whether `/metrics` needs an admin.
    pub metrics_require_auth: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("jwt_secret", &"<redacted>")
            .field("admin_username", &self.admin_username)
            .field("admin_password_hash", &"<redacted>")
            .field("cors", &self.cors)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field(
                "login_rate_limit_per_minute",
                &self.login_rate_limit_per_minute,
            )
            .field("login_max_failures", &self.login_max_failures)
            .field("access_ttl_s", &self.access_ttl_s)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("metrics_require_auth", &self.metrics_require_auth)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            jwt_secret: String::new(),
            admin_visible: true,
            admin_username: "admin".to_owned(),
            admin_password_hash: String::new(),
            cors: CorsPolicy::default(),
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE,
            login_rate_limit_per_minute: defaults::LOGIN_RATE_LIMIT_PER_MINUTE,
            login_max_failures: defaults::LOGIN_MAX_FAILURES,
            access_ttl_s: defaults::ACCESS_TOKEN_TTL_S,
            refresh_ttl_s: defaults::REFRESH_TOKEN_TTL_S,
            metrics_require_auth: false,
        }
    }
}

impl Settings {
    /// Read every variable (undeclared ones take their defaults). A malformed
    /// value is a 503 naming the variable, never its value.
    pub async fn load<C: Config>(config: &C) -> Result<Self> {
        let d = Self::default();
        let text = |name: &'static str, default: String| async move {
            Ok::<_, Error>(config.get(name).await?.unwrap_or(default))
        };
        let admin_hash = config.get(vars::ADMIN_PASSWORD_HASH).await?;
        let settings = Self {
            jwt_secret: text(vars::JWT_SECRET, String::new()).await?,
            admin_visible: admin_hash.is_some(),
            admin_username: text(vars::ADMIN_USERNAME, d.admin_username)
                .await?
                .trim()
                .to_ascii_lowercase(),
            admin_password_hash: admin_hash.unwrap_or_default().trim().to_owned(),
            cors: CorsPolicy::parse(&text(vars::CORS_ALLOWED_ORIGINS, String::new()).await?),
            rate_limit_per_minute: number(
                config,
                vars::RATE_LIMIT_PER_MINUTE,
                d.rate_limit_per_minute,
                0..=1_000_000,
            )
            .await?,
            login_rate_limit_per_minute: number(
                config,
                vars::LOGIN_RATE_LIMIT_PER_MINUTE,
                d.login_rate_limit_per_minute,
                0..=1_000_000,
            )
            .await?,
            login_max_failures: number(
                config,
                vars::LOGIN_MAX_FAILURES,
                d.login_max_failures,
                1..=1000,
            )
            .await?,
            access_ttl_s: number(
                config,
                vars::ACCESS_TOKEN_TTL_S,
                d.access_ttl_s,
                60..=86_400,
            )
            .await?,
            refresh_ttl_s: number(
                config,
                vars::REFRESH_TOKEN_TTL_S,
                d.refresh_ttl_s,
                60..=90 * 86_400,
            )
            .await?,
            metrics_require_auth: match config
                .get(vars::METRICS_REQUIRE_AUTH)
                .await?
                .as_deref()
                .map(str::trim)
            {
                None | Some("" | "false" | "0" | "no") => false,
                Some("true" | "1" | "yes") => true,
                Some(_) => return Err(malformed(vars::METRICS_REQUIRE_AUTH, "true or false")),
            },
        };
        if settings.refresh_ttl_s < settings.access_ttl_s {
            return Err(malformed(
                vars::REFRESH_TOKEN_TTL_S,
                "at least access_token_ttl_s",
            ));
        }
        Ok(settings)
    }

    /// Settings with an explicit secret (tests, the CLI).
    pub fn with_secret(secret: impl Into<String>) -> Self {
        Self {
            jwt_secret: secret.into(),
            ..Self::default()
        }
    }

    /// The HMAC key, or 503 when auth is not configured: empty or shorter
    /// than 32 bytes. The message names the variable, not its value.
    pub fn signing_key(&self) -> Result<&[u8]> {
        if self.jwt_secret.is_empty() {
            Err(Error::Unavailable(
                "authentication is not configured: jwt_secret is empty".into(),
            ))
        } else if self.jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            Err(Error::Unavailable(format!(
                "authentication is not configured: jwt_secret is shorter than {MIN_JWT_SECRET_BYTES} bytes"
            )))
        } else {
            Ok(self.jwt_secret.as_bytes())
        }
    }

    /// Whether this component declares `admin_password_hash` (only the
    /// auth component needs to; others skip the bootstrap-rotation check,
    /// and the admin's old sessions end there within one access-token
    /// lifetime because refresh is refused).
    pub fn sees_bootstrap_admin(&self) -> bool {
        self.admin_visible
    }

    /// Whether a bootstrap admin is configured.
    pub fn has_bootstrap_admin(&self) -> bool {
        !self.admin_username.is_empty() && !self.admin_password_hash.is_empty()
    }

    /// A short fingerprint of the bootstrap admin's password hash (`None`
    /// without a bootstrap admin); sessions remember it, so rotating the
    /// hash logs the admin out everywhere.
    pub fn bootstrap_tag(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        self.has_bootstrap_admin()
            .then(|| crate::random::hex(&Sha256::digest(self.admin_password_hash.as_bytes())[..8]))
    }
}

fn malformed(name: &str, expected: &str) -> Error {
    Error::Unavailable(format!(
        "authentication is misconfigured: {name} must be {expected}"
    ))
}

async fn number<C: Config, N>(
    config: &C,
    name: &'static str,
    default: N,
    range: std::ops::RangeInclusive<N>,
) -> Result<N>
where
    N: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match config.get(name).await? {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => match v.trim().parse::<N>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(malformed(
                name,
                &format!("a whole number from {} to {}", range.start(), range.end()),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use ragspin_testkit::MapConfig;

    #[test]
    fn undeclared_variables_take_their_defaults() {
        let settings = block_on(Settings::load(&MapConfig::new())).unwrap();
        assert_eq!(settings.rate_limit_per_minute, 120);
        assert_eq!(settings.access_ttl_s, 900);
        assert!(!settings.metrics_require_auth);
        assert!(!settings.has_bootstrap_admin());
        assert!(settings.signing_key().is_err());
    }

    #[test]
    fn refuses_an_empty_or_short_secret_without_echoing_it() {
        let short = Settings::with_secret("tooshort-secret-value");
        let e = short.signing_key().unwrap_err();
        assert_eq!(ragspin_core::status_for(&e), 503);
        assert!(!e.to_string().contains("tooshort"));
        assert!(Settings::with_secret("x".repeat(32)).signing_key().is_ok());
    }

    #[test]
    fn rejects_malformed_numbers_naming_the_variable() {
        let config = MapConfig::new().with("rate_limit_per_minute", "lots");
        let e = block_on(Settings::load(&config)).unwrap_err();
        assert_eq!(ragspin_core::status_for(&e), 503);
        assert!(e.to_string().contains("rate_limit_per_minute"), "{e}");
        let config = MapConfig::new().with("access_token_ttl_s", "5");
        assert!(block_on(Settings::load(&config)).is_err());
        let config = MapConfig::new().with("metrics_require_auth", "maybe");
        assert!(block_on(Settings::load(&config)).is_err());
    }

    #[test]
    fn reads_overrides_and_lowercases_the_admin_username() {
        let config = MapConfig::new()
            .with("admin_username", " Root ")
            .with("metrics_require_auth", "true")
            .with("rate_limit_per_minute", "0")
            .with("refresh_token_ttl_s", "3600");
        let settings = block_on(Settings::load(&config)).unwrap();
        assert_eq!(settings.admin_username, "root");
        assert!(settings.metrics_require_auth);
        assert_eq!(settings.rate_limit_per_minute, 0);
        assert_eq!(settings.refresh_ttl_s, 3600);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let mut settings = Settings::with_secret("s".repeat(40));
        settings.admin_password_hash = "$argon2id$secret".into();
        let text = format!("{settings:?}");
        assert!(!text.contains("sss"));
        assert!(!text.contains("argon2id"));
    }
}
