//! `#[derive(TitoModel)]`.

use proc_macro::TokenStream;

/// Derives `TitoModelTrait` from `#[tito(..)]` attributes.
#[proc_macro_derive(TitoModel, attributes(tito))]
pub fn derive_tito_model(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
