//! Acknowledgements of one consumer channel, coalesced. Settling a delivery (an ack, or a
//! reject that puts it back) queues it by its delivery tag, and one writer at a time writes what
//! is queued:
//!
//! - rejects first, each alone (a later `multiple` ack must not cover them);
//! - then the acks of the run of tags that follows, without a hole, every tag already written
//!   ([`Written`]): one `basic.ack` with `multiple` on the highest, which acknowledges the
//!   whole run and nothing else (every tag of the channel below it is settled);
//! - then the acks past the first hole (a delivery still running, or one not yet seen), each
//!   alone: a delivery that runs long never holds back the acknowledgement of those after it.
//!
//! Delivery tags count the channel's deliveries from 1, over all its consumers, so a hole is
//! exactly a delivery not settled yet. Nothing waits to coalesce: a settled delivery is written
//! as soon as the writer is free, so at a low rate every ack goes alone, as before, and under load
//! those settled while a write was under way share the next one. A settler that must know its
//! acknowledgement is written (a notification listener about to stop) waits for it;
//! [`ChannelAcks::idle`] waits for everything settled before the channel closes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tokio::sync::{Notify, oneshot};

use super::lock;
use crate::metrics::Unsettled;

/// What a settled delivery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
}

/// A settled delivery waiting to be written, with the handle that writes it.
struct Queued<A> {
    acker: A,
    settle: Settle,
    written: Option<oneshot::Sender<()>>,
}

/// The tags at or above the floor already written on their own, as runs `start..end`.
#[derive(Debug, Default)]
struct Written(BTreeMap<u64, u64>);

impl Written {
    /// The end of the run holding `tag`, if one does.
    fn run_end(&self, tag: u64) -> Option<u64> {
        self.0
            .range(..=tag)
            .next_back()
            .filter(|(_, end)| tag < **end)
            .map(|(_, end)| *end)
    }

    fn insert(&mut self, tag: u64) {
        if self.run_end(tag).is_some() {
            return;
        }
        let mut start = tag;
        let mut end = tag + 1;
        if let Some((&before, &before_end)) = self.0.range(..tag).next_back()
            && before_end == tag
        {
            start = before;
        }
        if let Some(after_end) = self.0.remove(&end) {
            end = after_end;
        }
        self.0.insert(start, end);
    }

    /// Forgets the tags below `floor`.
    fn forget_below(&mut self, floor: u64) {
        let kept = self.0.split_off(&floor);
        if let Some((_, &end)) = self.0.iter().next_back()
            && end > floor
        {
            self.0 = kept;
            self.0.insert(floor, end);
            return;
        }
        self.0 = kept;
    }
}

struct State<A> {
    /// Every tag below it is written.
    floor: u64,
    /// Settled, not yet written, by delivery tag.
    queued: BTreeMap<u64, Queued<A>>,
    written: Written,
    /// Whether a writer runs.
    writing: bool,
}

impl<A> State<A> {
    /// Takes what is queued, split as it is written; `None` (and the writer gone) when nothing is.
    fn take(&mut self) -> Option<Batch<A>> {
        let state = self;
        if state.queued.is_empty() {
            state.writing = false;
            return None;
        }
        // The run from the floor: tags queued now, or written before.
        let mut end = state.floor;
        loop {
            if state.queued.contains_key(&end) {
                end += 1;
            } else if let Some(run_end) = state.written.run_end(end) {
                end = run_end;
            } else {
                break;
            }
        }
        let past = state.queued.split_off(&end);
        let run = std::mem::take(&mut state.queued);
        let mut batch = Batch {
            requeues: Vec::new(),
            covered: None,
            alone: Vec::new(),
            floor: end,
        };
        let mut acks = Vec::new();
        for (tag, queued) in run {
            match queued.settle {
                Settle::Requeue => batch.requeues.push((tag, queued)),
                Settle::Ack => acks.push((tag, queued)),
            }
        }
        if let Some((tag, top)) = acks.pop() {
            batch.covered = Some((tag, top, acks.into_iter().map(|(_, q)| q).collect()));
        }
        for (tag, queued) in past {
            match queued.settle {
                Settle::Requeue => batch.requeues.push((tag, queued)),
                Settle::Ack => batch.alone.push((tag, queued)),
            }
        }
        Some(batch)
    }

    /// Records a batch as written: the floor moves to the end of its run, and the tags written
    /// alone past it are remembered.
    fn written(&mut self, floor: u64, alone: impl IntoIterator<Item = u64>) {
        self.floor = self.floor.max(floor);
        for tag in alone {
            if tag >= self.floor {
                self.written.insert(tag);
            }
        }
        self.written.forget_below(self.floor);
    }
}

impl<A> Default for State<A> {
    fn default() -> Self {
        Self {
            // A channel's first delivery tag.
            floor: 1,
            queued: BTreeMap::new(),
            written: Written::default(),
            writing: false,
        }
    }
}

/// One consumer channel's acknowledgements (delivery tags count per channel).
#[derive(Default)]
pub(super) struct ChannelAcks {
    state: Mutex<State<Acker>>,
    idle: Notify,
}

/// One write: what the writer took from the queue.
struct Batch<A> {
    requeues: Vec<(u64, Queued<A>)>,
    /// The highest ack of the run (its tag, its delivery), and the others it covers.
    covered: Option<(u64, Queued<A>, Vec<Queued<A>>)>,
    alone: Vec<(u64, Queued<A>)>,
    /// The new floor once written: the end of the run.
    floor: u64,
}

impl ChannelAcks {
    /// Acknowledges delivery `tag`; with `wait`, the returned receiver fires once the
    /// acknowledgement is written (it is dropped if that failed: the channel is gone).
    pub(super) fn ack(
        self: &Arc<Self>,
        tag: u64,
        acker: Acker,
        wait: bool,
    ) -> Option<oneshot::Receiver<()>> {
        if wait {
            let (tx, rx) = oneshot::channel();
            self.queue(tag, acker, Settle::Ack, Some(tx));
            Some(rx)
        } else {
            self.queue(tag, acker, Settle::Ack, None);
            None
        }
    }

    /// Rejects delivery `tag` with `requeue`, so the broker delivers it again; the receiver
    /// fires once that is written.
    pub(super) fn requeue(self: &Arc<Self>, tag: u64, acker: Acker) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.queue(tag, acker, Settle::Requeue, Some(tx));
        rx
    }

    fn queue(
        self: &Arc<Self>,
        tag: u64,
        acker: Acker,
        settle: Settle,
        written: Option<oneshot::Sender<()>>,
    ) {
        let start = {
            let mut state = lock(&self.state);
            state.queued.insert(
                tag,
                Queued {
                    acker,
                    settle,
                    written,
                },
            );
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            let acks = Arc::clone(self);
            tokio::spawn(async move { acks.write().await });
        }
    }

    /// Writes until nothing is queued.
    async fn write(&self) {
        loop {
            let Some(batch) = lock(&self.state).take() else {
                self.idle.notify_waiters();
                return;
            };
            let mut alone_tags = Vec::with_capacity(batch.requeues.len() + batch.alone.len());
            for (tag, queued) in batch.requeues {
                let options = BasicRejectOptions { requeue: true };
                if let Err(error) = queued.acker.reject(options).await {
                    // Its channel is gone: the broker puts back what was not acknowledged.
                    tracing::debug!(%error, "could not put a message back on its queue");
                }
                signal(queued.written);
                alone_tags.push(tag);
            }
            if let Some((_, top, covered)) = batch.covered {
                report(top.acker.ack(BasicAckOptions { multiple: true }).await);
                signal(top.written);
                covered.into_iter().for_each(|q| signal(q.written));
            }
            alone_tags.extend(batch.alone.iter().map(|(tag, _)| *tag));
            let alone = batch.alone.into_iter().map(|(_, queued)| async move {
                report(queued.acker.ack(BasicAckOptions::default()).await);
                signal(queued.written);
            });
            futures_util::future::join_all(alone).await;
            lock(&self.state).written(batch.floor, alone_tags);
        }
    }

    /// Waits until everything settled so far is written (before the channel closes).
    pub(super) async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !lock(&self.state).writing {
                return;
            }
            idle.await;
        }
    }
}

fn signal(tx: Option<oneshot::Sender<()>>) {
    if let Some(tx) = tx {
        let _ = tx.send(());
    }
}

fn report(result: lapin::Result<bool>) {
    if let Err(error) = result {
        tracing::warn!(%error, "could not acknowledge a message; the broker will deliver it again");
    }
}

/// A delivery's acknowledgement, through its channel's [`ChannelAcks`].
pub(crate) struct Settlement {
    acks: Arc<ChannelAcks>,
    tag: u64,
    acker: Acker,
    /// Counted in `rpc_transport_prefetch_in_use` until settled (or dropped unsettled).
    _unsettled: Option<Unsettled>,
}

impl Settlement {
    /// Delivery `tag` of the channel `acks` belongs to, with its acker (taken, not cloned: a
    /// clone copies three `Arc`s on every delivery).
    pub(super) fn new(acks: &Arc<ChannelAcks>, tag: u64, acker: Acker) -> Self {
        Self {
            acks: Arc::clone(acks),
            tag,
            acker,
            _unsettled: crate::metrics::get().map(|metrics| metrics.unsettled(super::METRICS_NAME)),
        }
    }

    /// Acknowledges without waiting for the write: a request runs at once, and an ack that
    /// cannot be written means the channel is gone, which the broker answers by redelivering.
    pub(crate) fn acknowledge(self) {
        self.acks.ack(self.tag, self.acker, false);
    }

    /// Acknowledges, and returns once the acknowledgement is written (or could not be).
    pub(crate) async fn acknowledge_now(self) {
        if let Some(written) = self.acks.ack(self.tag, self.acker, true) {
            let _ = written.await;
        }
    }

    /// Rejects with `requeue`, and returns once that is written (or could not be).
    pub(crate) async fn requeue(self) {
        let _ = self.acks.requeue(self.tag, self.acker).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(state: &mut State<()>, tag: u64, settle: Settle) {
        state.queued.insert(
            tag,
            Queued {
                acker: (),
                settle,
                written: None,
            },
        );
    }

    /// (requeued, the multiple ack's tag, alone) of the next batch, recorded as written.
    fn next(state: &mut State<()>) -> Option<(Vec<u64>, Option<u64>, Vec<u64>)> {
        let batch = state.take()?;
        let requeued: Vec<u64> = batch.requeues.iter().map(|(t, _)| *t).collect();
        let alone: Vec<u64> = batch.alone.iter().map(|(t, _)| *t).collect();
        let top = batch.covered.as_ref().map(|(t, _, _)| *t);
        state.written(batch.floor, requeued.iter().chain(&alone).copied());
        Some((requeued, top, alone))
    }

    #[test]
    fn a_run_from_the_floor_goes_as_one_multiple_ack() {
        let mut state = State::default();
        for tag in [3, 1, 2] {
            queue(&mut state, tag, Settle::Ack);
        }
        assert_eq!(next(&mut state), Some((vec![], Some(3), vec![])));
        assert_eq!(state.floor, 4);
        assert_eq!(next(&mut state), None);
        assert!(!state.writing);
    }

    #[test]
    fn acks_past_a_hole_go_alone_and_the_run_resumes_over_them() {
        let mut state = State::default();
        for tag in [1, 2, 4, 5] {
            queue(&mut state, tag, Settle::Ack);
        }
        // 3 still runs: 1-2 together, 4 and 5 each alone (never held back by 3).
        assert_eq!(next(&mut state), Some((vec![], Some(2), vec![4, 5])));
        assert_eq!(state.floor, 3);
        queue(&mut state, 3, Settle::Ack);
        queue(&mut state, 6, Settle::Ack);
        // 3 closes the hole; 4-5 are written already, so the run reaches 6: one ack of 6 covers
        // 3 and 6 (4 and 5 are no longer outstanding).
        assert_eq!(next(&mut state), Some((vec![], Some(6), vec![])));
        assert_eq!(state.floor, 7);
        assert!(state.written.0.is_empty());
    }

    #[test]
    fn rejects_are_written_alone_before_the_ack_that_passes_them() {
        let mut state = State::default();
        queue(&mut state, 1, Settle::Ack);
        queue(&mut state, 2, Settle::Requeue);
        queue(&mut state, 3, Settle::Ack);
        queue(&mut state, 5, Settle::Requeue);
        assert_eq!(next(&mut state), Some((vec![2, 5], Some(3), vec![])));
        assert_eq!(state.floor, 4);
        queue(&mut state, 4, Settle::Ack);
        assert_eq!(next(&mut state), Some((vec![], Some(4), vec![])));
        assert_eq!(state.floor, 6);
    }

    #[test]
    fn a_run_of_rejects_alone_moves_the_floor_without_an_ack() {
        let mut state = State::default();
        queue(&mut state, 1, Settle::Requeue);
        assert_eq!(next(&mut state), Some((vec![1], None, vec![])));
        assert_eq!(state.floor, 2);
    }

    #[test]
    fn written_runs_merge_and_are_forgotten_below_the_floor() {
        let mut written = Written::default();
        for tag in [5, 7, 6, 10] {
            written.insert(tag);
        }
        assert_eq!(written.0, BTreeMap::from([(5, 8), (10, 11)]));
        assert_eq!(written.run_end(6), Some(8));
        assert_eq!(written.run_end(8), None);
        written.forget_below(6);
        assert_eq!(written.0, BTreeMap::from([(6, 8), (10, 11)]));
        written.forget_below(11);
        assert!(written.0.is_empty());
    }
}
