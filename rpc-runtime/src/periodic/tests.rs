//! The loop's timing, on tokio's paused clock: time moves only when every task waits, so the
//! recorded run times are exact.

use std::sync::Mutex;

use super::*;
use crate::endpoint::{EndpointDescriptor, PeriodicTaskError};
use crate::envelope::{Args, JsonText};
use crate::error::RemoteError;
use crate::transport::BoxFuture;
use crate::version::Version;

static TASKS: [PeriodicTaskDescriptor; 4] = [
    PeriodicTaskDescriptor::new("every_10s", Duration::from_secs(10), true),
    PeriodicTaskDescriptor::new("every_25s", Duration::from_secs(25), false),
    PeriodicTaskDescriptor::new("fails", Duration::from_secs(20), true),
    PeriodicTaskDescriptor::new("panics", Duration::from_secs(20), true),
];
static DESCRIPTOR: EndpointDescriptor =
    EndpointDescriptor::new("Ticker", None, None, Version::new(1, 0), &[])
        .with_periodic_tasks(&TASKS);

/// Records `(task, seconds since start)` for every run.
struct Ticker {
    start: Instant,
    runs: Mutex<Vec<(&'static str, u64)>>,
}

impl Ticker {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            runs: Mutex::new(Vec::new()),
        })
    }

    fn runs_of(&self, name: &str) -> Vec<u64> {
        self.runs
            .lock()
            .expect("runs")
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .collect()
    }
}

impl Endpoint for Ticker {
    fn descriptor(&self) -> &EndpointDescriptor {
        &DESCRIPTOR
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        method: &'a str,
        _args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
        Box::pin(std::future::ready(Err(RemoteError::no_such_method(method))))
    }

    fn run_periodic_task<'a>(
        &'a self,
        ctx: Context,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PeriodicTaskError>> {
        assert!(ctx.is_admin, "periodic tasks run with an admin context");
        let at = (Instant::now() - self.start).as_secs();
        let name = TASKS
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.name)
            .expect("a listed task");
        self.runs.lock().expect("runs").push((name, at));
        Box::pin(async move {
            match name {
                "fails" => Err(PeriodicTaskError::Failed("the database is away".into())),
                "panics" => panic!("a bug in a periodic task"),
                _ => Ok(()),
            }
        })
    }
}

async fn run_for(ticker: &Arc<Ticker>, config: PeriodicConfig, seconds: u64) {
    let (stop, stopped) = watch::channel(false);
    let endpoint: Arc<dyn Endpoint> = Arc::clone(ticker) as Arc<dyn Endpoint>;
    let handle = spawn(vec![endpoint], config, stopped).expect("tasks to run");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.send(true).expect("the loop listens");
    handle.await.expect("the loop ends without panicking");
}

#[tokio::test(start_paused = true)]
async fn each_task_runs_at_its_spacing_and_failures_do_not_stop_the_others() {
    let ticker = Ticker::new();
    run_for(
        &ticker,
        PeriodicConfig::new(Duration::ZERO, Duration::from_secs(60)),
        55,
    )
    .await;
    assert_eq!(ticker.runs_of("every_10s"), vec![0, 10, 20, 30, 40, 50]);
    assert_eq!(ticker.runs_of("every_25s"), vec![25, 50]);
    // A task that errors, and one that panics, run again at their spacing.
    assert_eq!(ticker.runs_of("fails"), vec![0, 20, 40]);
    assert_eq!(ticker.runs_of("panics"), vec![0, 20, 40]);
}

#[tokio::test(start_paused = true)]
async fn the_first_pass_waits_a_random_delay_up_to_the_fuzzy_delay() {
    let ticker = Ticker::new();
    run_for(
        &ticker,
        PeriodicConfig::new(Duration::from_secs(7), Duration::from_secs(60)),
        // Long enough for the 25 s task after the longest initial delay (7 + 25 < 40).
        40,
    )
    .await;
    let first = ticker.runs_of("every_10s");
    assert!(first[0] <= 7, "{first:?}");
    // Later runs keep the spacing from the first.
    assert_eq!(first[1], first[0] + 10, "{first:?}");
    assert_eq!(ticker.runs_of("every_25s"), vec![first[0] + 25]);
}

#[tokio::test(start_paused = true)]
async fn stopping_during_the_initial_delay_runs_nothing() {
    let ticker = Ticker::new();
    run_for(
        &ticker,
        // A year of fuzzy delay: the chance of drawing a second or less is one in 31 million.
        PeriodicConfig::new(Duration::from_secs(365 * 86_400), Duration::from_secs(60)),
        1,
    )
    .await;
    // The tasks that run at once on the first pass did not: the loop was still waiting.
    assert_eq!(ticker.runs_of("every_10s"), Vec::<u64>::new());
    assert_eq!(ticker.runs_of("fails"), Vec::<u64>::new());
}

#[test]
fn the_loop_sleeps_until_the_next_task_but_at_most_interval_max() {
    static SLOW: [PeriodicTaskDescriptor; 1] = [PeriodicTaskDescriptor::new(
        "hourly",
        Duration::from_secs(3600),
        false,
    )];
    static SLOW_DESCRIPTOR: EndpointDescriptor =
        EndpointDescriptor::new("Slow", None, None, Version::new(1, 0), &[])
            .with_periodic_tasks(&SLOW);
    struct Slow;
    impl Endpoint for Slow {
        fn descriptor(&self) -> &EndpointDescriptor {
            &SLOW_DESCRIPTOR
        }
        fn invoke<'a>(
            &'a self,
            _ctx: Context,
            method: &'a str,
            _args: Args,
        ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
            Box::pin(std::future::ready(Err(RemoteError::no_such_method(method))))
        }
    }
    let start = Instant::now();
    let mut schedule = Schedule::new(&[Arc::new(Slow) as Arc<dyn Endpoint>], start);
    assert!(schedule.take_due(start).is_empty());
    assert_eq!(
        schedule.idle_for(start, Duration::from_secs(60)),
        Duration::from_secs(60)
    );
    let near = start + Duration::from_secs(3590);
    assert_eq!(
        schedule.idle_for(near, Duration::from_secs(60)),
        Duration::from_secs(10)
    );
    // A pass that comes late books the run on the spacing grid.
    let late = start + Duration::from_secs(3600 * 2 + 5);
    assert_eq!(schedule.take_due(late).len(), 1);
    assert_eq!(
        schedule.idle_for(late, Duration::from_secs(7200)),
        Duration::from_secs(3600 - 5)
    );
}

static METERED_TASKS: [PeriodicTaskDescriptor; 2] = [
    PeriodicTaskDescriptor::new("metered_ok", Duration::from_secs(10), true),
    PeriodicTaskDescriptor::new("metered_fails", Duration::from_secs(10), true),
];
static METERED: EndpointDescriptor =
    EndpointDescriptor::new("Metered", None, None, Version::new(1, 0), &[])
        .with_periodic_tasks(&METERED_TASKS);

/// Tasks of names no other test uses, so the process-wide counters are this test's alone.
struct Metered;

impl Endpoint for Metered {
    fn descriptor(&self) -> &EndpointDescriptor {
        &METERED
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        method: &'a str,
        _args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
        Box::pin(std::future::ready(Err(RemoteError::no_such_method(method))))
    }

    fn run_periodic_task<'a>(
        &'a self,
        _ctx: Context,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PeriodicTaskError>> {
        let failed = name == "metered_fails";
        Box::pin(async move {
            if failed {
                Err(PeriodicTaskError::Failed("metered".into()))
            } else {
                Ok(())
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn runs_are_counted_by_task_and_outcome_when_metrics_are_on() {
    crate::metrics::enable();
    let (stop, stopped) = watch::channel(false);
    let handle = spawn(
        vec![Arc::new(Metered) as Arc<dyn Endpoint>],
        PeriodicConfig::new(Duration::ZERO, Duration::from_secs(60)),
        stopped,
    )
    .expect("tasks to run");
    tokio::time::sleep(Duration::from_secs(25)).await;
    stop.send(true).expect("the loop listens");
    handle.await.expect("the loop ends");
    let text = crate::metrics::render();
    // Runs at 0, 10 and 20 s.
    for line in [
        r#"rpc_periodic_task_runs_total{task="metered_ok",outcome="ok"} 3"#,
        r#"rpc_periodic_task_runs_total{task="metered_fails",outcome="failed"} 3"#,
        r#"rpc_periodic_task_duration_seconds_count{task="metered_ok"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}
