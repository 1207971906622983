use rpc_runtime::VersionedObject;

#[derive(VersionedObject)]
#[object(name = "Flavor", version = "1.x", colour = "red")]
struct Flavor {
    vcpus: u32,
}

fn main() {}
