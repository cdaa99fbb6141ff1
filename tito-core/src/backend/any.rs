//! A backend chosen when the program starts: [`AnyBackend`] is the embedded engine or a TiKV
//! client, picked from the environment.
//!
//! Code generic over [`Backend`] needs its engine at compile time; a program that should run
//! unchanged on either engine (the examples, the test suites) names [`AnyBackend`] instead and
//! opens it with [`AnyBackend::from_env`]. With [`TIKV_PD_ENV`] unset, that opens the embedded
//! database it is given, so nothing changes for a program run with no setup; with PD endpoints
//! in it, the program runs on that TiKV cluster. Every call is a plain dispatch to the engine
//! inside.

use crate::engine::TitoEngine;
use crate::error::Result;

use super::embedded::EmbeddedTx;
#[cfg(feature = "tikv")]
use super::tikv::{TiKV, TiKVConfig, TiKVTx};
use super::{Backend, BackendTx, Embedded, EmbeddedBuilder, KeyRange, KvPair, TxKind};

/// The variable holding comma-separated TiKV PD endpoints (`"host:2379,host2:2379"`); when set
/// and non-empty, [`AnyBackend::from_env`] connects to that cluster.
pub const TIKV_PD_ENV: &str = "TITO_TIKV_PD";

/// The variable that, at `1` or `true`, makes the TiKV backend's transactions pessimistic
/// (`TiKVConfig::pessimistic`).
pub const TIKV_PESSIMISTIC_ENV: &str = "TITO_TIKV_PESSIMISTIC";

/// The variable holding the key prefix the TiKV backend keeps its keys under
/// (`TiKVConfig::namespace`); a temporary database's fresh namespace goes under it.
pub const TIKV_NAMESPACE_ENV: &str = "TITO_TIKV_NAMESPACE";

/// The prefix of the fresh namespace a temporary database gets on TiKV.
#[cfg(feature = "tikv")]
const TEMPORARY_NAMESPACE: &str = "tito-tmp/";

/// The embedded backend or, with feature `tikv`, the TiKV backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum AnyBackend {
    /// The embedded engine, in a local folder.
    Embedded(Embedded),
    /// A client of a TiKV cluster.
    #[cfg(feature = "tikv")]
    TiKV(TiKV),
}

/// A transaction of an [`AnyBackend`]: a transaction of the engine inside.
pub enum AnyTx {
    /// A transaction of the embedded engine.
    Embedded(EmbeddedTx),
    /// A transaction on a TiKV cluster.
    #[cfg(feature = "tikv")]
    TiKV(TiKVTx),
}

/// Runs `$body` with `$inner` bound to the engine value inside `$value`, an `$enum`.
macro_rules! dispatch {
    ($enum:ident, $value:expr, $inner:ident => $body:expr) => {
        match $value {
            $enum::Embedded($inner) => $body,
            #[cfg(feature = "tikv")]
            $enum::TiKV($inner) => $body,
        }
    };
}

impl AnyBackend {
    /// Opens the database the environment names: TiKV at [`TIKV_PD_ENV`] if set, else
    /// `fallback`.
    ///
    /// On TiKV, [`TIKV_PESSIMISTIC_ENV`] makes transactions pessimistic and
    /// [`TIKV_NAMESPACE_ENV`] sets the key prefix. A `fallback` made with
    /// [`Embedded::temporary_builder`] stands for a fresh, empty database: on TiKV it gets a new
    /// namespace of its own (`tito-tmp/<uuid>/`, under [`TIKV_NAMESPACE_ENV`] if set), so it sees
    /// no other data. Unlike the temporary folder, those keys stay on the cluster when the
    /// program ends. Without feature `tikv`, a set [`TIKV_PD_ENV`] is a
    /// [`TitoError::Backend`](crate::TitoError::Backend).
    pub async fn from_env(fallback: EmbeddedBuilder) -> Result<TitoEngine<AnyBackend>> {
        TitoEngine::new(Self::from_env_backend(fallback).await?).await
    }

    /// Opens the bare backend [`from_env`](AnyBackend::from_env) would open, without the
    /// engine's format check; for backend-level tests.
    pub async fn from_env_backend(fallback: EmbeddedBuilder) -> Result<AnyBackend> {
        open(fallback, Settings::read()).await
    }
}

impl From<Embedded> for AnyBackend {
    fn from(backend: Embedded) -> Self {
        AnyBackend::Embedded(backend)
    }
}

#[cfg(feature = "tikv")]
impl From<TiKV> for AnyBackend {
    fn from(backend: TiKV) -> Self {
        AnyBackend::TiKV(backend)
    }
}

impl Backend for AnyBackend {
    type Tx = AnyTx;

    async fn begin(&self, kind: TxKind) -> Result<AnyTx> {
        Ok(dispatch!(AnyBackend, self, backend => backend.begin(kind).await?.into()))
    }

    fn name(&self) -> &'static str {
        dispatch!(AnyBackend, self, backend => backend.name())
    }
}

impl From<EmbeddedTx> for AnyTx {
    fn from(tx: EmbeddedTx) -> Self {
        AnyTx::Embedded(tx)
    }
}

#[cfg(feature = "tikv")]
impl From<TiKVTx> for AnyTx {
    fn from(tx: TiKVTx) -> Self {
        AnyTx::TiKV(tx)
    }
}

impl BackendTx for AnyTx {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        dispatch!(AnyTx, self, tx => tx.get(key).await)
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        dispatch!(AnyTx, self, tx => tx.batch_get(keys).await)
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.put(key, value).await)
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.put_unique(key, value).await)
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.delete(key).await)
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.single_delete(key).await)
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        dispatch!(AnyTx, self, tx => tx.scan(range, limit).await)
    }

    async fn scan_many(&mut self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        dispatch!(AnyTx, self, tx => tx.scan_many(ranges, limit).await)
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        dispatch!(AnyTx, self, tx => tx.scan_reverse(range, limit).await)
    }

    async fn commit(self) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.commit().await)
    }

    async fn rollback(self) -> Result<()> {
        dispatch!(AnyTx, self, tx => tx.rollback().await)
    }
}

/// The values of the variables [`AnyBackend::from_env`] reads, apart from the process
/// environment so that tests can pass their own. Only TiKV reads the last two.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "tikv"), allow(dead_code))]
struct Settings {
    pd: Option<String>,
    pessimistic: Option<String>,
    namespace: Option<String>,
}

impl Settings {
    /// The variables of this process.
    fn read() -> Self {
        let var = |name| std::env::var(name).ok();
        Settings {
            pd: var(TIKV_PD_ENV),
            pessimistic: var(TIKV_PESSIMISTIC_ENV),
            namespace: var(TIKV_NAMESPACE_ENV),
        }
    }

    /// The PD endpoints named, without blanks; empty when none is.
    fn endpoints(&self) -> Vec<String> {
        self.pd
            .iter()
            .flat_map(|pd| pd.split(','))
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
            .map(String::from)
            .collect()
    }

    /// Whether TiKV transactions should be pessimistic.
    #[cfg(feature = "tikv")]
    fn pessimistic(&self) -> bool {
        self.pessimistic
            .as_deref()
            .is_some_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"))
    }

    /// The key prefix of the database on TiKV: a fresh one for a temporary database.
    #[cfg(feature = "tikv")]
    fn namespace(&self, temporary: bool) -> Vec<u8> {
        let mut prefix = self.namespace.clone().unwrap_or_default().into_bytes();
        if temporary {
            let id = uuid::Uuid::new_v4().simple();
            prefix.extend_from_slice(format!("{TEMPORARY_NAMESPACE}{id}/").as_bytes());
        }
        prefix
    }
}

/// Opens TiKV if `settings` names PD endpoints, else `fallback`.
async fn open(fallback: EmbeddedBuilder, settings: Settings) -> Result<AnyBackend> {
    let endpoints = settings.endpoints();
    if endpoints.is_empty() {
        return Ok(AnyBackend::Embedded(fallback.open_backend()?));
    }
    connect(endpoints, &settings, fallback.is_temporary()).await
}

/// Connects to the TiKV cluster at `endpoints`.
#[cfg(feature = "tikv")]
async fn connect(
    endpoints: Vec<String>,
    settings: &Settings,
    temporary: bool,
) -> Result<AnyBackend> {
    let config = TiKVConfig::default()
        .pessimistic(settings.pessimistic())
        .namespace(settings.namespace(temporary));
    Ok(AnyBackend::TiKV(
        TiKV::connect_backend(endpoints, config).await?,
    ))
}

/// Refuses: TiKV was asked for, but this build has no TiKV backend.
#[cfg(not(feature = "tikv"))]
async fn connect(
    endpoints: Vec<String>,
    _settings: &Settings,
    _temporary: bool,
) -> Result<AnyBackend> {
    Err(crate::error::TitoError::Backend(format!(
        "{TIKV_PD_ENV} names a TiKV cluster ({}), but this program was built without tito's \
         `tikv` feature: build it with that feature, or unset {TIKV_PD_ENV} to run embedded",
        endpoints.join(",")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(value: &str) -> Settings {
        Settings {
            pd: Some(value.into()),
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn no_pd_endpoints_open_the_fallback_embedded_database() {
        for settings in [Settings::default(), pd(""), pd(" , ")] {
            let backend = open(Embedded::temporary_builder(), settings).await.unwrap();
            assert_eq!(backend.name(), "embedded");
            assert!(matches!(backend, AnyBackend::Embedded(_)));
        }
    }

    #[tokio::test]
    async fn the_embedded_fallback_runs_transactions() {
        let backend = open(Embedded::temporary_builder(), Settings::default())
            .await
            .unwrap();
        let db = TitoEngine::new(backend).await.unwrap();
        let tx = db.begin().await.unwrap();
        tx.put(b"k".to_vec(), b"v".to_vec()).await.unwrap();
        tx.commit().await.unwrap();
        let tx = db.snapshot().await.unwrap();
        assert_eq!(tx.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn endpoints_are_split_on_commas_and_trimmed() {
        assert_eq!(
            pd(" a:2379, b:2379 ,,").endpoints(),
            vec!["a:2379".to_string(), "b:2379".to_string()]
        );
        assert!(Settings::default().endpoints().is_empty());
    }

    #[cfg(not(feature = "tikv"))]
    #[tokio::test]
    async fn pd_endpoints_without_the_tikv_feature_are_a_backend_error() {
        use crate::error::TitoError;
        let err = open(Embedded::temporary_builder(), pd("127.0.0.1:2379"))
            .await
            .unwrap_err();
        match err {
            TitoError::Backend(message) => {
                assert!(message.contains("`tikv` feature"), "{message}");
                assert!(message.contains("127.0.0.1:2379"), "{message}");
            }
            other => panic!("expected a backend error, got {other:?}"),
        }
    }

    #[cfg(feature = "tikv")]
    #[test]
    fn pessimistic_is_on_for_1_and_true_only() {
        let with = |value: &str| Settings {
            pessimistic: Some(value.into()),
            ..Settings::default()
        };
        assert!(with("1").pessimistic() && with("true").pessimistic());
        assert!(with("TRUE").pessimistic());
        assert!(!with("0").pessimistic() && !with("no").pessimistic());
        assert!(!Settings::default().pessimistic());
    }

    #[cfg(feature = "tikv")]
    #[test]
    fn a_temporary_database_gets_a_fresh_namespace_under_the_configured_one() {
        let plain = Settings::default();
        assert!(plain.namespace(false).is_empty());
        let (a, b) = (plain.namespace(true), plain.namespace(true));
        assert!(a.starts_with(TEMPORARY_NAMESPACE.as_bytes()) && a.ends_with(b"/"));
        assert_ne!(a, b);

        let named = Settings {
            namespace: Some("app/".into()),
            ..Settings::default()
        };
        assert_eq!(named.namespace(false), b"app/".to_vec());
        assert!(named.namespace(true).starts_with(b"app/tito-tmp/"));
    }
}
