use rpc_runtime::VersionedObject;

#[derive(VersionedObject)]
#[object(name = "Flavor", namespace = "nova", version = "1.0")]
enum Flavor {
    Small,
}

fn main() {}
