//! Configuration: defaults, then `cartwright.toml`, then `CARTWRIGHT_*` environment variables.
//! Nothing needs setting: data in `./cartwright-data`, SQLite inside it, listening on
//! 127.0.0.1:8080. A bad value stops the start with a message naming the key.

use cartwright_store::{Backend, SecretKey};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every configuration key; each can be set in the file or as `CARTWRIGHT_<KEY>`.
pub const KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "listen",
    "secret_key",
    "log_format",
    "log_level",
    "token_ttl",
    "db_max_connections",
    "login_max_failures",
    "login_max_failures_per_ip",
    "allow_internal_addresses",
    "max_batch_orders",
    "max_body_bytes",
    "max_upload_bytes",
    "workers",
    "chromium_path",
    "profiles_dir",
    "max_runs",
    "retry_wait",
    "retry_wait_max",
    "node_id",
    "job_stale_after",
    "public_url",
    "market_poll_every",
    "embedding_model",
];

/// A configuration that cannot be used, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// A duration written like `12h`, `30m`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|_| {
                serde::de::Error::custom(format!("{text:?} is not a duration like 12h, 30m or 7d"))
            })
    }
}

/// The log filter for `spec` (`RUST_LOG` or the `log_level` setting): Chromium's DevTools
/// client warns of every protocol event it cannot decode (several per order, none of them
/// ours to act on), so its handler logs only errors unless `spec` names chromiumoxide itself.
pub fn log_filter(spec: &str) -> String {
    if spec.contains("chromiumoxide") {
        spec.to_owned()
    } else if spec.trim().is_empty() {
        "info,chromiumoxide::handler=error".to_owned()
    } else {
        format!("{spec},chromiumoxide::handler=error")
    }
}

/// The settings of one Cartwright process.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the SQLite database, the key file and artifacts live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; SQLite in `data_dir` when unset.
    pub database_url: Option<String>,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The master key (base64 or hex, 32 bytes); a key file in `data_dir` when unset.
    pub secret_key: Option<String>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `cartwright=debug,info`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// How long a sign-in token stays valid.
    pub token_ttl: HumanDuration,
    /// Database connections to keep (readers, for SQLite).
    pub db_max_connections: u32,
    /// Failed sign-ins per username before it is locked for 15 minutes.
    pub login_max_failures: u32,
    /// Failed sign-ins per client address (any username) within 15 minutes before that
    /// address must wait.
    pub login_max_failures_per_ip: u32,
    /// Whether storefronts may point to this machine or a private network (loopback,
    /// 10/8, 192.168/16, link-local such as 169.254.169.254, …). Off by default: what those
    /// answer would be shown in failure screenshots; `cartwright demo` turns it on.
    pub allow_internal_addresses: bool,
    /// Most orders one batch may hold (accounts × repetitions); a bigger one is refused, to
    /// be split.
    pub max_batch_orders: u64,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest upload (CSV import, backup restore).
    pub max_upload_bytes: usize,
    /// Browser runs (orders, sign-in tests) this process makes at once; 0 serves the API
    /// only, for a machine whose work is done by `cartwright worker` elsewhere.
    pub workers: usize,
    /// The Chromium executable; Debian's headless shell, then /usr/bin/chromium and the usual
    /// places when unset.
    pub chromium_path: Option<PathBuf>,
    /// Storefront profiles (`{name}.toml`) are read here first, then the built-in ones;
    /// `data_dir/profiles` when unset.
    pub profiles_dir: Option<PathBuf>,
    /// Runs an order gets before a transient failure becomes final.
    pub max_runs: u32,
    /// Wait before an order's second run; doubled for each run after.
    pub retry_wait: HumanDuration,
    /// Longest wait between an order's runs.
    pub retry_wait_max: HumanDuration,
    /// This process's name in the jobs it claims; host name and process id when unset.
    pub node_id: Option<String>,
    /// A job whose worker has not signalled for this long is taken over by another worker
    /// (the worker crashed or its machine went away).
    pub job_stale_after: HumanDuration,
    /// The address buyers reach Cartwright at (delivery links start with it); the listening
    /// address when unset.
    pub public_url: Option<String>,
    /// How often each marketplace connection's order list is read for changes a push missed.
    pub market_poll_every: HumanDuration,
    /// The buyer assistant's sentence-embedding model: a directory with `config.json`,
    /// `tokenizer.json` and `model.safetensors`; `none` for lexical retrieval only. When
    /// unset: `data_dir/models/all-minilm-l6-v2`, then the one `scripts/setup` installs in
    /// `~/.local/share/cartwright/models/all-minilm-l6-v2`.
    pub embedding_model: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./cartwright-data"),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secret_key: None,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            token_ttl: HumanDuration(Duration::from_secs(12 * 3600)),
            db_max_connections: 16,
            login_max_failures: 5,
            login_max_failures_per_ip: 30,
            allow_internal_addresses: false,
            max_batch_orders: 10_000,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 32 * 1024 * 1024,
            workers: 4,
            chromium_path: None,
            profiles_dir: None,
            max_runs: cartwright_engine::policy::RetryPolicy::default().max_runs,
            retry_wait: HumanDuration(Duration::from_secs(2)),
            retry_wait_max: HumanDuration(Duration::from_secs(120)),
            node_id: None,
            job_stale_after: HumanDuration(Duration::from_secs(30)),
            public_url: None,
            market_poll_every: HumanDuration(Duration::from_secs(60)),
            embedding_model: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url
                    .as_deref()
                    .map(cartwright_store::redact_url),
            )
            .field("listen", &self.listen)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("token_ttl", &self.token_ttl)
            .field("db_max_connections", &self.db_max_connections)
            .field("workers", &self.workers)
            .field("chromium_path", &self.chromium_path)
            .field("profiles_dir", &self.profiles_dir)
            .field("max_runs", &self.max_runs)
            .field("retry_wait", &self.retry_wait)
            .field("retry_wait_max", &self.retry_wait_max)
            .field("node_id", &self.node_id)
            .field("public_url", &self.public_url)
            .field("embedding_model", &self.embedding_model)
            .finish_non_exhaustive()
    }
}

/// The model `scripts/setup` installs.
pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";

impl Settings {
    /// The embedding model's directory in force: the configured one (none when it is `none`),
    /// else the first default place that holds a model.
    pub fn embedding_model(&self) -> Option<PathBuf> {
        match &self.embedding_model {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some(p.clone()),
            None => {
                let home = std::env::var_os("HOME").map(PathBuf::from);
                std::iter::once(self.data_dir.join("models").join(DEFAULT_MODEL))
                    .chain(
                        home.map(|h| h.join(".local/share/cartwright/models").join(DEFAULT_MODEL)),
                    )
                    .find(|p| p.join("model.safetensors").is_file())
            }
        }
    }

    /// The settings in force as a `cartwright.toml` would write them, the master key and the
    /// database password masked: what `cartwright config` prints.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        shown.secret_key = shown.secret_key.map(|_| "***".to_owned());
        shown.database_url = shown
            .database_url
            .as_deref()
            .map(cartwright_store::redact_url);
        toml::to_string(&shown).map_err(|e| ConfigError(format!("the settings as TOML: {e}")))
    }

    /// Loads defaults, then the TOML file (`path`, or `cartwright.toml` when present), then the
    /// environment, and checks the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("cartwright.toml")),
        }
        let settings: Settings = figment
            .merge(Env::prefixed("CARTWRIGHT_").only(KEYS))
            .extract()
            .map_err(|e| ConfigError(describe(e)))?;
        settings.check()?;
        Ok(settings)
    }

    /// Checks values serde cannot: URL schemes, ranges, the key's form.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| Err(ConfigError(format!("{key}: {message}")));
        if let Some(url) = &self.database_url
            && let Err(m) = Backend::of(url)
        {
            return bad("database_url", m);
        }
        if let Some(key) = &self.secret_key
            && let Err(e) = SecretKey::from_text(key)
        {
            return bad("secret_key", e.to_string());
        }
        let ttl = self.token_ttl.0;
        if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(30 * 86_400) {
            return bad("token_ttl", "must be between 1m and 30d".into());
        }
        if !(1..=1000).contains(&self.db_max_connections) {
            return bad("db_max_connections", "must be between 1 and 1000".into());
        }
        if self.login_max_failures == 0 {
            return bad("login_max_failures", "must be at least 1".into());
        }
        if self.max_batch_orders == 0 {
            return bad("max_batch_orders", "must be at least 1".into());
        }
        if self.login_max_failures_per_ip == 0 {
            return bad("login_max_failures_per_ip", "must be at least 1".into());
        }
        if self.max_body_bytes < 1024 || self.max_upload_bytes < self.max_body_bytes {
            return bad(
                "max_body_bytes",
                "must be at least 1024 and not above max_upload_bytes".into(),
            );
        }
        if self.workers > 256 {
            return bad("workers", "must be at most 256".into());
        }
        let stale = self.job_stale_after.0;
        if stale < Duration::from_secs(2) || stale > Duration::from_secs(3600) {
            return bad("job_stale_after", "must be between 2s and 1h".into());
        }
        if !(1..=20).contains(&self.max_runs) {
            return bad("max_runs", "must be between 1 and 20".into());
        }
        let wait = self.retry_wait.0;
        if wait < Duration::from_millis(100) || wait > Duration::from_secs(3600) {
            return bad("retry_wait", "must be between 100ms and 1h".into());
        }
        if self.retry_wait_max.0 < wait || self.retry_wait_max.0 > Duration::from_secs(86_400) {
            return bad(
                "retry_wait_max",
                "must be at least retry_wait and at most 24h".into(),
            );
        }
        let poll = self.market_poll_every.0;
        if poll < Duration::from_secs(1) || poll > Duration::from_secs(86_400) {
            return bad("market_poll_every", "must be between 1s and 24h".into());
        }
        if let Some(url) = &self.public_url
            && let Err(m) = cartwright_core::values::HttpUrl::parse(url)
        {
            return bad("public_url", m);
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return bad("log_level", e.to_string());
        }
        Ok(())
    }

    /// The digital-goods side's settings; `listening` is where the server listens (delivery
    /// links use it when no `public_url` is set).
    pub fn commerce(&self, listening: SocketAddr) -> cartwright_commerce::CommerceConfig {
        cartwright_commerce::CommerceConfig {
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{listening}")),
        }
    }

    /// The engine's settings.
    pub fn engine(&self) -> cartwright_engine::EngineConfig {
        let mut config = cartwright_engine::EngineConfig::new(&self.data_dir);
        config.profiles_dir = Some(
            self.profiles_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("profiles")),
        );
        config.retry.max_runs = self.max_runs;
        config.retry.base = self.retry_wait.0;
        config.retry.max = self.retry_wait_max.0;
        config.browser.executable = self.chromium_path.clone();
        config.allow_internal = self.allow_internal_addresses;
        config.max_batch_orders = self.max_batch_orders;
        config
    }

    /// The workers' housekeeping: heartbeats six times per stale period.
    pub fn job_timing(&self) -> cartwright_jobs::Timing {
        cartwright_jobs::Timing {
            idle_poll: Duration::from_secs(1),
            heartbeat: self.job_stale_after.0 / 6,
            stale_after: self.job_stale_after.0,
        }
    }

    /// This process's name in the jobs it claims.
    pub fn node(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default();
            format!(
                "{}-{}",
                if host.is_empty() { "cartwright" } else { &host },
                std::process::id()
            )
        })
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("cartwright.db").display())
        })
    }
}

/// Each problem as `key (where it came from): what is wrong`.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let origin = match &e.metadata {
                Some(m) if m.name.contains("environment") => {
                    format!(" (from CARTWRIGHT_{})", key.to_uppercase())
                }
                Some(m) => m
                    .source
                    .as_ref()
                    .map(|s| format!(" (from {s})"))
                    .unwrap_or_default(),
                None => String::new(),
            };
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("{key}{origin}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn the_devtools_clients_decode_warnings_are_off_unless_asked_for() {
        assert_eq!(log_filter("info"), "info,chromiumoxide::handler=error");
        assert_eq!(
            log_filter("cartwright=debug,info"),
            "cartwright=debug,info,chromiumoxide::handler=error"
        );
        assert_eq!(log_filter("chromiumoxide=debug"), "chromiumoxide=debug");
        assert_eq!(log_filter(""), "info,chromiumoxide::handler=error");
        for spec in ["info", "warn,cartwright=trace"] {
            assert!(tracing_subscriber::EnvFilter::try_new(log_filter(spec)).is_ok());
        }
    }

    #[test]
    fn defaults_need_nothing() {
        Jail::expect_with(|_| {
            let s = Settings::load(None).map_err(|e| e.0)?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.database_url(), "sqlite://./cartwright-data/cartwright.db");
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "cartwright.toml",
                "listen = \"0.0.0.0:9000\"\ntoken_ttl = \"2h\"\n",
            )?;
            jail.set_env("CARTWRIGHT_LISTEN", "127.0.0.1:9100");
            jail.set_env("CARTWRIGHT_TEST_DATABASE_URL", "ignored");
            let s = Settings::load(None).map_err(|e| e.0)?;
            assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
            assert_eq!(s.token_ttl.0, Duration::from_secs(7200));
            Ok(())
        });
    }

    #[test]
    fn the_wait_between_an_orders_runs_is_a_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("CARTWRIGHT_RETRY_WAIT", "5s");
            jail.set_env("CARTWRIGHT_RETRY_WAIT_MAX", "1m");
            let s = Settings::load(None).map_err(|e| e.0)?;
            let retry = s.engine().retry;
            assert_eq!(retry.base, Duration::from_secs(5));
            assert_eq!(retry.max, Duration::from_secs(60));
            jail.set_env("CARTWRIGHT_RETRY_WAIT_MAX", "1s");
            let e = Settings::load(None).unwrap_err().0;
            assert!(
                e.contains("retry_wait_max") && e.contains("at least retry_wait"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("CARTWRIGHT_LISTEN", "not-an-address");
            let e = Settings::load(None).unwrap_err().0;
            assert!(e.contains("listen"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("CARTWRIGHT_DATABASE_URL", "mysql://x");
            let e = Settings::load(None).unwrap_err().0;
            assert!(e.starts_with("database_url: "), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("cartwright.toml", "lisen = \"x\"\n")?;
            let e = Settings::load(None).unwrap_err().0;
            assert!(e.contains("lisen"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("CARTWRIGHT_TOKEN_TTL", "forever");
            let e = Settings::load(None).unwrap_err().0;
            assert!(e.contains("token_ttl") && e.contains("forever"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("CARTWRIGHT_SECRET_KEY", "short");
            let e = Settings::load(None).unwrap_err().0;
            assert!(e.contains("secret_key"), "{e}");
            Ok(())
        });
    }
}
