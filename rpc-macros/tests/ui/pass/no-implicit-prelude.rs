#![no_implicit_prelude]

extern crate rpc_runtime as some_other_name;
extern crate std;

struct Manager;

#[::rpc_runtime::rpc_endpoint(topic = "t", version = "1.1", namespace = "ns")]
impl Manager {
    #[rpc(since = "1.0")]
    async fn add(&self, _ctx: &::rpc_runtime::Context, a: i64, b: i64) -> i64 {
        a + b
    }

    #[rpc(since = "1.0", cast)]
    async fn note(
        &self,
        _ctx: &::rpc_runtime::Context,
        #[since("1.1")] text: ::std::option::Option<::std::string::String>,
    ) {
        let _ = text;
    }
}

fn main() {}
