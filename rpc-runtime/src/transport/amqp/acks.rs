//! Acknowledgements of one channel's deliveries, coalesced.
//!
//! A server acknowledges a request when it starts on it (oslo's at-most-once). Sent one by one,
//! those acks cost the broker and the connection a frame and a round through lapin per message;
//! under load most of them can go as one `basic.ack` with `multiple` set. This does that without
//! acknowledging anything early: RabbitMQ numbers a channel's deliveries 1, 2, 3…, so a run of
//! consecutive tags that have all been opened is acknowledged by one `multiple` ack of its last
//! tag; an opened delivery behind a gap (a lower tag not opened yet) is acknowledged alone, at
//! once. A single task per channel sends the acks: while it writes one, the next ones gather.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use lapin::Acker;
use lapin::options::BasicAckOptions;
use tokio::sync::Notify;

/// Where one delivery of the channel is.
enum Entry<A> {
    /// Received, not opened yet: not to be acknowledged.
    Received(A),
    /// Opened: to be acknowledged.
    Opened(A),
    /// Acknowledged alone (it was behind a gap); a later `multiple` ack may pass over it.
    AckedAlone,
}

/// What to acknowledge next: one `multiple` ack, and single deliveries.
struct Work<A> {
    multiple: Option<A>,
    alone: Vec<A>,
}

/// The bookkeeping, apart from lapin (`A` is the acker; tests use numbers).
struct Ledger<A> {
    /// Deliveries not yet covered by a `multiple` ack, by tag.
    entries: BTreeMap<u64, Entry<A>>,
    /// Every tag up to this one is acknowledged.
    acked_through: u64,
    /// Tags opened since the sender last looked.
    fresh: Vec<u64>,
}

impl<A> Default for Ledger<A> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            acked_through: 0,
            fresh: Vec::new(),
        }
    }
}

impl<A> Ledger<A> {
    fn received(&mut self, tag: u64, acker: A) {
        if tag > self.acked_through {
            self.entries.insert(tag, Entry::Received(acker));
        }
    }

    /// Marks `tag` opened; whether there is something new to acknowledge.
    fn opened(&mut self, tag: u64) -> bool {
        let Some(entry) = self.entries.get_mut(&tag) else {
            return false;
        };
        match std::mem::replace(entry, Entry::AckedAlone) {
            Entry::Received(acker) => {
                *entry = Entry::Opened(acker);
                self.fresh.push(tag);
                true
            }
            other => {
                *entry = other;
                false
            }
        }
    }

    fn take_work(&mut self) -> Work<A> {
        let mut multiple = None;
        let mut through = self.acked_through;
        // The run of consecutive tags past `acked_through` with nothing left unopened.
        while let Some(entry) = self.entries.remove(&(through + 1)) {
            match entry {
                Entry::Received(acker) => {
                    self.entries.insert(through + 1, Entry::Received(acker));
                    break;
                }
                Entry::Opened(acker) => multiple = Some(acker),
                Entry::AckedAlone => {}
            }
            through += 1;
        }
        self.acked_through = through;
        // Opened deliveries behind a gap go alone, now.
        let mut alone = Vec::new();
        for tag in std::mem::take(&mut self.fresh) {
            if let Some(entry) = self.entries.get_mut(&tag)
                && let Entry::Opened(acker) = std::mem::replace(entry, Entry::AckedAlone)
            {
                alone.push(acker);
            }
        }
        Work { multiple, alone }
    }
}

/// The coalescing acknowledger of one channel; its sender task ends when this is dropped.
pub(crate) struct AckBatch {
    ledger: Mutex<Ledger<Acker>>,
    wake: Arc<Notify>,
}

impl AckBatch {
    /// A batch for a fresh channel, with its sender task.
    pub(super) fn start() -> Arc<Self> {
        let wake = Arc::new(Notify::new());
        let batch = Arc::new(Self {
            ledger: Mutex::default(),
            wake: Arc::clone(&wake),
        });
        tokio::spawn(send_acks(Arc::downgrade(&batch), wake));
        batch
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger<Acker>> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A delivery arrived.
    pub(super) fn received(&self, tag: u64, acker: Acker) {
        self.ledger().received(tag, acker);
    }

    /// A delivery was opened: acknowledge it (soon, with whatever else is ready).
    pub(crate) fn opened(&self, tag: u64) {
        if self.ledger().opened(tag) {
            self.wake.notify_one();
        }
    }
}

impl Drop for AckBatch {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Sends acks as they become ready until the batch is dropped. An ack that fails means the
/// channel is gone; the broker redelivers what it had not been told about.
async fn send_acks(batch: Weak<AckBatch>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(work) = batch.upgrade().map(|b| b.ledger().take_work()) else {
            return;
        };
        if let Some(acker) = work.multiple {
            let options = BasicAckOptions { multiple: true };
            if let Err(error) = acker.ack(options).await {
                tracing::warn!(%error, "could not acknowledge messages");
            }
        }
        for acker in work.alone {
            if let Err(error) = acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(%error, "could not acknowledge a message");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(work: &Work<u64>) -> (Option<u64>, Vec<u64>) {
        (work.multiple, work.alone.clone())
    }

    #[test]
    fn a_run_of_opened_deliveries_goes_as_one_multiple_ack() {
        let mut ledger = Ledger::default();
        for tag in 1..=5 {
            ledger.received(tag, tag);
        }
        for tag in [3, 1, 2, 4] {
            ledger.opened(tag);
        }
        // 1..=4 are opened: one ack of 4 with `multiple`; 5 waits for its turn.
        assert_eq!(acked(&ledger.take_work()), (Some(4), vec![]));
        assert_eq!(ledger.acked_through, 4);
        assert!(ledger.opened(5));
        assert_eq!(acked(&ledger.take_work()), (Some(5), vec![]));
        assert!(ledger.entries.is_empty());
    }

    #[test]
    fn nothing_unopened_is_acknowledged_and_what_is_behind_a_gap_goes_alone() {
        let mut ledger = Ledger::default();
        for tag in 1..=4 {
            ledger.received(tag, tag);
        }
        ledger.opened(1);
        ledger.opened(3);
        ledger.opened(4);
        // 2 is not opened: 1 goes as the run, 3 and 4 alone (never covered by a multiple ack of
        // a tag past 2).
        assert_eq!(acked(&ledger.take_work()), (Some(1), vec![3, 4]));
        assert_eq!(ledger.acked_through, 1);
        // When 2 opens, the run passes over 3 and 4 (already acknowledged) and ends at 4, but the
        // multiple ack is 2's, the last one not yet acknowledged.
        ledger.opened(2);
        assert_eq!(acked(&ledger.take_work()), (Some(2), vec![]));
        assert_eq!(ledger.acked_through, 4);
        assert!(ledger.entries.is_empty());
    }

    #[test]
    fn a_delivery_not_yet_received_is_a_gap() {
        let mut ledger = Ledger::default();
        // 1 arrives late (another queue's consumer on the same channel).
        ledger.received(2, 2);
        ledger.opened(2);
        assert_eq!(acked(&ledger.take_work()), (None, vec![2]));
        ledger.received(1, 1);
        ledger.opened(1);
        assert_eq!(acked(&ledger.take_work()), (Some(1), vec![]));
        assert_eq!(ledger.acked_through, 2);
    }

    #[test]
    fn opening_twice_or_an_unknown_tag_sends_nothing() {
        let mut ledger = Ledger::default();
        ledger.received(1, 1);
        assert!(ledger.opened(1));
        assert!(!ledger.opened(1));
        assert!(!ledger.opened(7));
        assert_eq!(acked(&ledger.take_work()), (Some(1), vec![]));
        assert_eq!(acked(&ledger.take_work()), (None, vec![]));
    }
}
