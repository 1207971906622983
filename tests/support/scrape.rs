//! Reading a metrics endpoint as Prometheus and a probe would: an HTTP GET, and the samples of
//! the Prometheus text format picked by name and labels.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` on `addr` (blocking: call it from a blocking thread when the endpoint is served in
/// the same runtime); the status code and the body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the metrics endpoint {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

/// The sum of the samples named `name` whose labels include every one of `labels`; `None` when
/// no sample matches.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let wanted = labels.iter().all(|(k, v)| {
            series_labels
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        });
        if wanted && let Ok(value) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// Asserts that the samples [`sample`] picks add up to at least `least`, showing the whole text
/// when they do not.
///
/// # Panics
///
/// When they add up to less, or no sample matches.
pub fn assert_at_least(text: &str, name: &str, labels: &[(&str, &str)], least: f64) {
    let found = sample(text, name, labels);
    assert!(
        found.is_some_and(|value| value >= least),
        "{name}{labels:?} is {found:?}, expected at least {least}, in:\n{text}"
    );
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_picked_by_name_and_a_subset_of_labels() {
        let text = "# TYPE a_total counter\na_total{topic=\"t\",method=\"m\"} 2\n\
                    a_total{topic=\"t\",method=\"n\"} 3\nb 7\n";
        assert_eq!(sample(text, "a_total", &[("method", "m")]), Some(2.0));
        assert_eq!(sample(text, "a_total", &[("topic", "t")]), Some(5.0));
        assert_eq!(sample(text, "a_total", &[("topic", "u")]), None);
        assert_eq!(sample(text, "b", &[]), Some(7.0));
        assert_eq!(sample(text, "a", &[]), None);
    }
}
