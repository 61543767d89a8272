//! One target, newest wins: the order of the mounts of one target directory.
//!
//! Two mounts of one target can run at once (a slow one and the driver's
//! retry, a remount and a rotation). Each takes a [`Ticket`] on arrival,
//! carrying a generation number that grows with every arrival in the
//! process. A mount makes its set visible (the `..data` swap, or its answer
//! in driver-writes mode) only if it has not been cancelled and no later
//! generation has already done so; otherwise it makes nothing visible.
//!
//! Every decision and every write happens under the target's lock: the
//! writer holds it from before the first file until after the swap, and
//! [`Ticket::cancel`] takes it too. So once `cancel` returns, no swap of
//! that mount is under way or can start, and two writers never work in one
//! target at once.
//!
//! The registry holds an entry only while a mount of that target is in
//! flight (its ticket alive, the writer's copy included), so it is bounded
//! by the mounts in flight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The targets with a mount in flight.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    targets: Mutex<HashMap<PathBuf, Entry>>,
}

struct Entry {
    slot: Arc<Slot>,
    tickets: usize,
}

/// What the mounts of one target share.
#[derive(Default)]
struct Slot {
    /// Held while a set is written and swapped, and while a mount is
    /// cancelled.
    lock: tokio::sync::Mutex<()>,
    /// The latest generation that made its set visible; only read and
    /// written under `lock`.
    committed: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // The map holds plain data; a panic elsewhere cannot leave it torn.
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A ticket for a mount of `target` arriving now.
    pub fn arrive(self: &Arc<Self>, target: &Path) -> Arc<Ticket> {
        let mut targets = self.lock();
        let generation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = targets.entry(target.to_owned()).or_insert_with(|| Entry {
            slot: Arc::default(),
            tickets: 0,
        });
        entry.tickets += 1;
        Arc::new(Ticket {
            registry: self.clone(),
            target: target.to_owned(),
            slot: entry.slot.clone(),
            generation,
            cancelled: AtomicBool::new(false),
        })
    }

    /// Targets with a mount in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no mount is in flight.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One mount's place in its target's order.
pub struct Ticket {
    registry: Arc<Registry>,
    target: PathBuf,
    slot: Arc<Slot>,
    generation: u64,
    cancelled: AtomicBool,
}

impl Ticket {
    /// Under the target's lock: whether this mount may make its set visible
    /// now; if so, it is recorded as the latest that did.
    fn may_commit(&self, _held: &tokio::sync::MutexGuard<'_, ()>) -> bool {
        if self.cancelled.load(Ordering::SeqCst)
            || self.slot.committed.load(Ordering::SeqCst) > self.generation
        {
            return false;
        }
        self.slot.committed.store(self.generation, Ordering::SeqCst);
        true
    }

    /// The target's lock, taken from a blocking thread for the writer: held
    /// until the [`Turn`] is dropped, from before the first file until
    /// after the swap.
    pub fn hold_blocking(&self) -> Turn<'_> {
        Turn {
            ticket: self,
            held: self.slot.lock.blocking_lock(),
        }
    }

    /// Driver-writes mode: whether this mount may still answer with its
    /// files (no later mount answered first, not cancelled).
    pub async fn may_answer(&self) -> bool {
        let held = self.slot.lock.lock().await;
        self.may_commit(&held)
    }

    /// The caller gave up: after this returns, this mount makes nothing
    /// visible, and no swap of it is under way.
    pub async fn cancel(&self) {
        let _held = self.slot.lock.lock().await;
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

/// A writer's hold on its target's lock ([`Ticket::hold_blocking`]).
pub struct Turn<'a> {
    ticket: &'a Ticket,
    held: tokio::sync::MutexGuard<'a, ()>,
}

impl Turn<'_> {
    /// Whether the mount may make its set visible now (called right before
    /// the swap); if so, it is recorded as the latest that did.
    pub fn may_commit(&self) -> bool {
        self.ticket.may_commit(&self.held)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut targets = self.registry.lock();
        if let Some(entry) = targets.get_mut(&self.target) {
            entry.tickets -= 1;
            if entry.tickets == 0 {
                targets.remove(&self.target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(ticket: &Arc<Ticket>) -> bool {
        let ticket = ticket.clone();
        std::thread::spawn(move || ticket.hold_blocking().may_commit())
            .join()
            .unwrap()
    }

    #[test]
    fn the_newest_wins_whatever_order_they_finish_in() {
        let registry = Arc::new(Registry::default());
        let target = Path::new("/t");
        let older = registry.arrive(target);
        let newer = registry.arrive(target);
        assert!(commit(&newer));
        assert!(!commit(&older), "an older mount never lands after a newer");

        let older = registry.arrive(target);
        let newer = registry.arrive(target);
        assert!(commit(&older));
        assert!(commit(&newer));
    }

    #[test]
    fn targets_are_independent_and_entries_leave_with_their_last_ticket() {
        let registry = Arc::new(Registry::default());
        let a = registry.arrive(Path::new("/a"));
        let b_old = registry.arrive(Path::new("/b"));
        let b_new = registry.arrive(Path::new("/b"));
        assert_eq!(registry.len(), 2);
        assert!(commit(&b_new));
        assert!(commit(&a), "a later mount of another target is no rival");
        drop(a);
        assert_eq!(registry.len(), 1);
        drop(b_new);
        assert_eq!(registry.len(), 1, "b still has a mount in flight");
        drop(b_old);
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_mount_makes_nothing_visible() {
        let registry = Arc::new(Registry::default());
        let ticket = registry.arrive(Path::new("/t"));
        ticket.cancel().await;
        assert!(!ticket.may_answer().await);
        assert!(!commit(&ticket));
    }

    #[tokio::test]
    async fn cancel_waits_for_a_swap_under_way() {
        let registry = Arc::new(Registry::default());
        let ticket = registry.arrive(Path::new("/t"));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let ticket = ticket.clone();
            std::thread::spawn(move || {
                let turn = ticket.hold_blocking();
                let committed = turn.may_commit();
                entered_tx.send(()).unwrap();
                // The swap is under way until the test lets it finish.
                finish_rx.recv().unwrap();
                committed
            })
        };
        entered_rx.recv().unwrap();
        let cancel = tokio::spawn({
            let ticket = ticket.clone();
            async move { ticket.cancel().await }
        });
        tokio::task::yield_now().await;
        assert!(!cancel.is_finished(), "cancel waits for the swap");
        finish_tx.send(()).unwrap();
        assert!(writer.join().unwrap(), "the swap under way completes");
        cancel.await.unwrap();
        assert!(!commit(&ticket), "nothing after the cancel");
    }

    #[tokio::test]
    async fn in_driver_writes_mode_an_older_answer_is_refused_after_a_newer() {
        let registry = Arc::new(Registry::default());
        let older = registry.arrive(Path::new("/t"));
        let newer = registry.arrive(Path::new("/t"));
        assert!(newer.may_answer().await);
        assert!(!older.may_answer().await);
    }
}
