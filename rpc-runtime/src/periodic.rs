//! The periodic task loop, as oslo.service runs it: a random initial delay up to the fuzzy delay (so
//! services started together do not hit the database in step), then each task at its own spacing,
//! the loop sleeping until the next task is due but never longer than `periodic_interval_max`.
//! A task that fails or panics is logged and the others go on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::Context;
use crate::endpoint::{Endpoint, PeriodicTaskDescriptor};

/// How the loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct PeriodicConfig {
    /// The longest random delay before the first pass.
    pub(crate) fuzzy_delay: Duration,
    /// The longest the loop sleeps between passes.
    pub(crate) interval_max: Duration,
}

impl PeriodicConfig {
    /// A loop with these delays.
    pub(crate) fn new(fuzzy_delay: Duration, interval_max: Duration) -> Self {
        Self {
            fuzzy_delay,
            interval_max,
        }
    }
}

/// One task and when it last ran.
#[derive(Debug)]
struct Scheduled {
    endpoint: usize,
    task: &'static PeriodicTaskDescriptor,
    last_run: Option<Instant>,
}

/// When each task is due. Pure: time is passed in.
#[derive(Debug)]
pub(crate) struct Schedule {
    tasks: Vec<Scheduled>,
}

impl Schedule {
    /// The tasks of `endpoints`, as of `start`: a task that does not run immediately is first due
    /// one spacing after it.
    pub(crate) fn new(endpoints: &[Arc<dyn Endpoint>], start: Instant) -> Self {
        let tasks = endpoints
            .iter()
            .enumerate()
            .flat_map(|(endpoint, e)| {
                e.descriptor()
                    .periodic_tasks
                    .iter()
                    .map(move |task| Scheduled {
                        endpoint,
                        task,
                        last_run: (!task.run_immediately).then_some(start),
                    })
            })
            .collect();
        Self { tasks }
    }

    /// The tasks due at `now`, marked as run. A task's run is booked on its spacing grid, so a
    /// slow pass does not push every later run back.
    pub(crate) fn take_due(
        &mut self,
        now: Instant,
    ) -> Vec<(usize, &'static PeriodicTaskDescriptor)> {
        let mut due = Vec::new();
        for scheduled in &mut self.tasks {
            let spacing = scheduled.task.spacing;
            let run_at = match scheduled.last_run {
                None => now,
                Some(last) if now >= last + spacing => {
                    let periods = (now - last).as_nanos() / spacing.as_nanos().max(1);
                    let periods = u32::try_from(periods).unwrap_or(u32::MAX);
                    last + spacing * periods
                }
                Some(_) => continue,
            };
            scheduled.last_run = Some(run_at);
            due.push((scheduled.endpoint, scheduled.task));
        }
        due
    }

    /// How long to sleep after a pass at `now`: until the next task is due, at most `interval_max`.
    pub(crate) fn idle_for(&self, now: Instant, interval_max: Duration) -> Duration {
        self.tasks
            .iter()
            .map(|s| match s.last_run {
                None => Duration::ZERO,
                Some(last) => (last + s.task.spacing).saturating_duration_since(now),
            })
            .min()
            .unwrap_or(interval_max)
            .min(interval_max)
    }
}

/// Starts the loop over the periodic tasks of `endpoints`; it ends when `stop` turns true. `None`
/// when no endpoint has a task.
pub(crate) fn spawn(
    endpoints: Vec<Arc<dyn Endpoint>>,
    config: PeriodicConfig,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if endpoints
        .iter()
        .all(|e| e.descriptor().periodic_tasks.is_empty())
    {
        return None;
    }
    Some(tokio::spawn(async move {
        let fuzzy = config.fuzzy_delay.as_millis();
        let delay =
            Duration::from_millis(u64::try_from(rand::random_range(0..=fuzzy)).unwrap_or(u64::MAX));
        tracing::info!(initial_delay = ?delay, "periodic tasks start after a random delay");
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(delay) => {}
        }
        // Spacings count from the end of the initial delay.
        let mut schedule = Schedule::new(&endpoints, Instant::now());
        loop {
            for (endpoint, task) in schedule.take_due(Instant::now()) {
                run_once(Arc::clone(&endpoints[endpoint]), task.name).await;
                if *stop.borrow() {
                    return;
                }
            }
            let idle = schedule.idle_for(Instant::now(), config.interval_max);
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(idle) => {}
            }
        }
    }))
}

/// Runs one task in a task of its own, so a panic is caught and logged like an error.
async fn run_once(endpoint: Arc<dyn Endpoint>, name: &'static str) {
    let span = tracing::info_span!("periodic_task", task = name);
    let ctx = Context::new().with_admin(true);
    let run =
        tokio::spawn(async move { endpoint.run_periodic_task(ctx, name).await }.instrument(span));
    let started = std::time::Instant::now();
    let outcome = run.await;
    if let Some(metrics) = crate::metrics::get() {
        metrics.periodic_ran(name, started.elapsed(), matches!(outcome, Ok(Ok(()))));
    }
    match outcome {
        Ok(Ok(())) => tracing::debug!(task = name, "periodic task done"),
        Ok(Err(error)) => tracing::error!(task = name, %error, "periodic task failed"),
        Err(join) if join.is_panic() => tracing::error!(task = name, "periodic task panicked"),
        Err(_) => tracing::warn!(task = name, "periodic task cancelled"),
    }
}

#[cfg(test)]
mod tests;
