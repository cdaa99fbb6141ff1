//! The database every behaviour test runs on: a fresh embedded one by default, or a fresh
//! namespace on the TiKV cluster whose PD endpoints `TITO_TIKV_PD` holds (built with the `tikv`
//! feature, as `cargo test --workspace --all-features` does). The tests themselves do not know
//! which; the few that are about the embedded engine itself open `Embedded` directly.
#![allow(dead_code)]

use tito::backend::any::TIKV_PD_ENV;
use tito::{AnyBackend, Embedded, TitoEngine};

/// A fresh, empty database on the backend the environment names.
pub async fn engine() -> TitoEngine<AnyBackend> {
    AnyBackend::from_env(Embedded::temporary_builder())
        .await
        .expect("a fresh test database (see TITO_TIKV_PD)")
}

/// The bare backend of a fresh, empty database, for wrapping (`Counting`) before the engine.
pub async fn backend() -> AnyBackend {
    AnyBackend::from_env_backend(Embedded::temporary_builder())
        .await
        .expect("a fresh test backend (see TITO_TIKV_PD)")
}

/// Whether the tests run on a TiKV cluster, for the few that size themselves to a network.
pub fn on_tikv() -> bool {
    std::env::var(TIKV_PD_ENV).is_ok_and(|pd| !pd.trim().is_empty())
}
