//! The host view's bookkeeping: pending claims, reports out of order, alternates.

use std::collections::BTreeSet;

use super::candidate::Liveness;
use super::host_view::{HostRequest, HostView};
use crate::api::{HostReport, Resources};
use crate::settings::Settings;

fn report(host: &str, generation: u64, instances: &[&str]) -> HostReport {
    let per = Resources {
        vcpus: 1,
        memory_mb: 1024,
        disk_gb: 1,
    };
    HostReport {
        host: host.into(),
        nodename: host.into(),
        node_uuid: format!("{host}-uuid"),
        availability_zone: "nova".into(),
        total: Resources {
            vcpus: 8,
            memory_mb: 4096,
            disk_gb: 100,
        },
        used: instances
            .iter()
            .fold(Resources::default(), |used, _| used.plus(per)),
        instances: instances.iter().map(|s| (*s).to_owned()).collect(),
        generation,
    }
}

fn view(hosts: &[&str]) -> HostView {
    let mut view = HostView::default();
    view.set_services(
        hosts
            .iter()
            .map(|h| {
                let up = Liveness {
                    up: true,
                    disabled: false,
                };
                ((*h).to_owned(), up)
            })
            .collect(),
    );
    for host in hosts {
        view.report(report(host, 1, &[]));
    }
    view
}

fn request(alternates: usize) -> HostRequest<'static> {
    HostRequest {
        wanted: Resources {
            vcpus: 1,
            memory_mb: 1024,
            disk_gb: 1,
        },
        zone: None,
        force_hosts: &[],
        alternates,
    }
}

fn used_memory(view: &HostView, host: &str) -> u64 {
    view.summaries(&Settings::default())
        .into_iter()
        .find(|h| h.host == host)
        .map(|h| h.used.memory_mb)
        .unwrap_or_else(|| panic!("{host} is not in the view"))
}

#[test]
fn a_pending_claim_counts_until_a_report_includes_it_and_never_twice() {
    let settings = Settings::default();
    let mut view = view(&["a"]);
    let none = BTreeSet::new();
    assert!(view.pick(&settings, &request(0), "i1", &none).is_some());
    assert_eq!(used_memory(&view, "a"), 1024);
    // A report that already counts i1 arrives before the claim's answer: not counted twice.
    view.report(report("a", 2, &["i1"]));
    assert_eq!(used_memory(&view, "a"), 1024);
    view.confirm(report("a", 2, &["i1"]), "i1");
    assert_eq!(used_memory(&view, "a"), 1024);
    // After a release the instance is gone from both.
    view.report(report("a", 3, &[]));
    assert_eq!(used_memory(&view, "a"), 0);
}

#[test]
fn an_older_report_never_replaces_a_newer_one() {
    let mut view = view(&["a"]);
    view.report(report("a", 5, &["i1", "i2"]));
    view.report(report("a", 4, &["i1"]));
    assert_eq!(used_memory(&view, "a"), 2048);
}

#[test]
fn reservations_fill_a_host_then_picks_fail() {
    let settings = Settings::default();
    let mut view = view(&["a"]);
    let none = BTreeSet::new();
    for n in 0..4 {
        assert!(
            view.pick(&settings, &request(0), &format!("i{n}"), &none)
                .is_some()
        );
    }
    assert!(view.pick(&settings, &request(0), "i4", &none).is_none());
    view.unreserve("a", "i0");
    assert!(view.pick(&settings, &request(0), "i4", &none).is_some());
}

#[test]
fn hosts_without_a_live_service_or_excluded_are_not_picked() {
    let settings = Settings::default();
    let mut view = view(&["a", "b", "c"]);
    view.set_services(
        [(
            "b".to_owned(),
            Liveness {
                up: false,
                disabled: false,
            },
        )]
        .into(),
    );
    assert!(
        view.pick(&settings, &request(2), "i1", &BTreeSet::new())
            .is_none()
    );
    let mut view = self::view(&["a", "b", "c"]);
    let excluded: BTreeSet<String> = ["a".to_owned()].into();
    let pick = view
        .pick(&settings, &request(5), "i1", &excluded)
        .expect("pick");
    assert_eq!(pick.host.host, "b");
    let alternates: Vec<&str> = pick.alternates.iter().map(|p| p.host.as_str()).collect();
    assert_eq!(alternates, ["c"]);
    assert_eq!(view.unreported(), Vec::<String>::new());
}
