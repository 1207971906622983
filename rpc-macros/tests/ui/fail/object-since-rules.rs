use rpc_runtime::VersionedObject;

#[derive(VersionedObject)]
#[object(name = "Flavor", namespace = "nova", version = "1.2")]
struct Flavor {
    vcpus: u32,
    #[since("1.1")]
    memory_mb: u64,
    #[since("2.0")]
    disk: Option<u64>,
    #[since("1.3")]
    swap: Option<u64>,
    #[object(nullable)]
    name: String,
    #[object(default, colour)]
    is_public: bool,
}

fn main() {}
