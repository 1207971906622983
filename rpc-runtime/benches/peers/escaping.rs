//! The envelope's hand-written escaping judged against serde_json doing the same job.
//!
//! An oslo message is JSON inside a JSON string. `envelope::encode_reply` writes the inner message
//! straight into the outer string, escaping it in the one pass (`escape_into`, with serde_json's
//! escaping since the hand-written loop lost to it here). The plain way is two serde_json passes:
//! serialize the inner message to a `String`, then serialize the outer object, which escapes that
//! string. Both start from the same result JSON text and must produce
//! the same message; this times them side by side, alternating which goes first, and says whether
//! the hand-written pass wins by more than the run-to-run noise.

use std::hint::black_box;
use std::time::Instant;

use rpc_runtime::envelope::{JsonText, Reply, decode_reply, encode_reply};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::measure::median;

/// The inner reply as oslo writes it, for serde_json.
#[derive(Serialize)]
struct InnerReply<'a> {
    result: &'a RawValue,
    failure: Option<()>,
    ending: bool,
    _msg_id: &'a str,
    _unique_id: &'a str,
}

/// The outer envelope, for serde_json.
#[derive(Serialize)]
struct Outer<'a> {
    #[serde(rename = "oslo.version")]
    version: &'a str,
    #[serde(rename = "oslo.message")]
    message: &'a str,
}

const MSG_ID: &str = "01815e7f7cf949108ca1a822d249fbce";
const UNIQUE_ID: &str = "6cfba1aaead542a292e8985854cdf169";

fn two_serde_passes(result: &RawValue) -> Vec<u8> {
    let inner = serde_json::to_string(&InnerReply {
        result,
        failure: None,
        ending: true,
        _msg_id: MSG_ID,
        _unique_id: UNIQUE_ID,
    })
    .expect("an inner reply");
    serde_json::to_vec(&Outer {
        version: "2.0",
        message: &inner,
    })
    .expect("an envelope")
}

/// The payloads: the harness's 64-byte echo, and a nova `select_destinations` answer (versioned
/// `Selection` objects: many short keys and strings, so many quotes to escape).
fn payloads() -> Vec<(&'static str, String)> {
    let echo = serde_json::json!({"value": "x".repeat(64)}).to_string();
    let selection = |i: usize| {
        serde_json::json!({
            "nova_object.name": "Selection",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.1",
            "nova_object.data": {
                "compute_node_uuid": format!("8d7c0a3e-6f7b-4f3a-9d3e-0000000000{i:02}"),
                "service_host": format!("compute-{i}"),
                "nodename": format!("compute-{i}"),
                "cell_uuid": "00000000-0000-0000-0000-000000000000",
                "limits": {"nova_object.name": "SchedulerLimits", "nova_object.data":
                    {"numa_topology": null, "vcpu": 64, "disk_gb": 1000, "memory_mb": 131072}},
                "allocation_request": "{\"allocations\": {\"8d7c\": {\"resources\": {\"VCPU\": 1, \"MEMORY_MB\": 512}}}}",
                "allocation_request_version": "1.19",
                "availability_zone": "nova"
            },
            "nova_object.changes": ["service_host", "nodename", "limits"]
        })
    };
    let destinations: Vec<Vec<serde_json::Value>> = (0..4)
        .map(|instance| (0..3).map(|alt| selection(instance * 3 + alt)).collect())
        .collect();
    vec![
        ("64-byte echo result", echo),
        (
            "select_destinations, 4 x 3 Selections",
            serde_json::to_string(&destinations).expect("a nova answer"),
        ),
    ]
}

/// One figure per side: nanoseconds per message, median over rounds, and the spread of the rounds
/// ((max - min) / median).
struct Timing {
    ns: Vec<f64>,
}

impl Timing {
    fn median(&self) -> f64 {
        median(&self.ns)
    }

    fn spread(&self) -> f64 {
        let max = self.ns.iter().copied().fold(f64::MIN, f64::max);
        let min = self.ns.iter().copied().fold(f64::MAX, f64::min);
        (max - min) / self.median()
    }
}

fn time(iterations: usize, mut encode: impl FnMut() -> Vec<u8>) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(encode());
    }
    started.elapsed().as_nanos() as f64 / iterations as f64
}

/// The inner message a body carries, parsed.
fn inner_of(body: &[u8]) -> serde_json::Value {
    let outer: serde_json::Value = serde_json::from_slice(body).expect("an envelope");
    serde_json::from_str(outer["oslo.message"].as_str().expect("a message")).expect("inner JSON")
}

/// Runs the comparison and prints its table. In a smoke run, a few iterations: the check that
/// both ways write the same message is what counts then.
pub(crate) fn run(smoke: bool) {
    let (rounds, iterations) = if smoke { (2, 200) } else { (15, 200_000) };
    println!(
        "\nJSON escaping of the inner message: one pass into the outer string (ours) against two \
         serde_json passes; ns per reply, median of {rounds} alternating rounds of {iterations}\n"
    );
    println!(
        "| payload | ours | two serde_json passes | serde / ours | spread of rounds (ours, serde) | verdict |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, text) in payloads() {
        let reply = Reply::result(
            JsonText::from_serialize(
                &serde_json::from_str::<serde_json::Value>(&text).expect("payload JSON"),
            )
            .expect("a result"),
        );
        let raw = RawValue::from_string(
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&text).expect("JSON"))
                .expect("JSON text"),
        )
        .expect("raw JSON");
        let ours_body = encode_reply(&reply, MSG_ID, UNIQUE_ID);
        let serde_body = two_serde_passes(&raw);
        assert_eq!(
            inner_of(&ours_body),
            inner_of(&serde_body),
            "{name}: the two ways write different messages"
        );
        assert!(
            decode_reply(&serde_body).is_ok(),
            "{name}: serde's body does not decode"
        );
        let mut ours = Timing { ns: Vec::new() };
        let mut serde = Timing { ns: Vec::new() };
        for round in 0..rounds {
            let ours_step = || time(iterations, || encode_reply(&reply, MSG_ID, UNIQUE_ID));
            let serde_step = || time(iterations, || two_serde_passes(&raw));
            if round % 2 == 0 {
                ours.ns.push(ours_step());
                serde.ns.push(serde_step());
            } else {
                serde.ns.push(serde_step());
                ours.ns.push(ours_step());
            }
        }
        let ratio = serde.median() / ours.median();
        let noise = ours.spread().max(serde.spread());
        let verdict = if ratio - 1.0 > noise {
            "ours wins beyond the noise"
        } else if 1.0 / ratio - 1.0 > noise {
            "serde wins beyond the noise"
        } else {
            "within the noise"
        };
        println!(
            "| {name} ({} bytes) | {:.0} | {:.0} | {ratio:.2}x | {:.0}%, {:.0}% | {verdict} |",
            text.len(),
            ours.median(),
            serde.median(),
            ours.spread() * 100.0,
            serde.spread() * 100.0,
        );
        assert!(
            ours.median().is_finite() && ours.median() > 0.0 && serde.median() > 0.0,
            "{name}: a timing is missing"
        );
    }
}
