//! How many AWS calls may be in flight: per mount and region (the stores
//! built by one `StoreFactory::stores` call, which the mount makes once per
//! region it fetches from, through `OpenStores::open`, share one gate) and
//! for the whole process ([`CallBound`]: the stores' calls and the
//! identity's STS and EKS Auth calls together).
//!
//! Every AWS call takes its mount's permit, then the process's, and holds
//! them only until it ends; no call waits on another call while it holds a
//! permit, so the limits cannot deadlock. The process-wide bound is shared fairly: its permits go round
//! robin between mounts, so a mount with many calls cannot push another
//! mount's calls back behind all of its own.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::{Semaphore, SemaphorePermit, oneshot};

use super::throttle::{Service, Throttle, Tripped};

/// What the operator chose for fetching (command line and Helm values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// AWS calls in flight at once for one mount in one region, both stores
    /// together. 0 counts as 1.
    pub max_concurrent_per_mount: usize,
    /// AWS calls in flight at once in the whole process, the identity's STS
    /// and EKS Auth calls included ([`CallBound`]). 0 counts as 1.
    pub max_concurrent_global: usize,
    /// Read Secrets Manager objects without a pinned version or label with
    /// BatchGetSecretValue (beyond ASCP; needs that IAM permission).
    pub batch_get_secret_value: bool,
    /// How long one version check (DescribeSecret, or GetParameters for
    /// parameters) decides, for every pod of the node, whether a mounted
    /// version is still current (rotation remounts; 0: every remount
    /// checks).
    pub rotation_check_window: std::time::Duration,
}

impl FetchOptions {
    /// Default per-mount limit: a mount of up to 50 objects costs one round
    /// trip, up to 100 two. It bounds what one hostile SecretProviderClass
    /// can take of the process-wide limit, not the node's load.
    pub const DEFAULT_PER_MOUNT: usize = 50;
    /// Default process-wide limit: far below Secrets Manager's and SSM's
    /// request quotas, and a bound on sockets and memory under a burst of
    /// mounts (a node restart with many pods). On 2 cores a burst is bound
    /// by CPU before this: raising it to 500 made a 500-mount burst slower
    /// and fatter (benchmarks/README.md).
    pub const DEFAULT_GLOBAL: usize = 200;
    /// Default check window: below the driver's default 2-minute
    /// `--rotation-poll-interval`, so each poll sees a fresh answer.
    pub const DEFAULT_CHECK_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_concurrent_per_mount: Self::DEFAULT_PER_MOUNT,
            max_concurrent_global: Self::DEFAULT_GLOBAL,
            batch_get_secret_value: false,
            rotation_check_window: Self::DEFAULT_CHECK_WINDOW,
        }
    }
}

/// The process-wide bound on AWS calls in flight
/// (`--max-concurrent-fetches`). The stores take their permits from it, and
/// the identity backend its STS and EKS Auth calls: in a node's start-up
/// burst every mount is a first mount, and without the bound each would open
/// its own connection to STS at once. Cheap to clone; clones share permits.
///
/// Permits are shared fairly between mounts: calls waiting for one queue
/// per client (the calls of one mount in one region; each identity call is
/// its own client), and a freed permit goes to the next client in turn,
/// round robin, not to the oldest call. A mount with a thousand calls
/// queued therefore delays another mount's call by at most one call of its
/// own per permit, instead of all of them.
///
/// It also carries the node's backoff from throttling ([`Throttle`]), which
/// every AWS call goes through.
#[derive(Clone, Debug)]
pub struct CallBound(Arc<FairQueue>, Arc<Throttle>);

impl CallBound {
    /// A bound of `options.max_concurrent_global` calls (0 counts as 1).
    pub fn new(options: &FetchOptions) -> Self {
        CallBound(
            Arc::new(FairQueue {
                state: Mutex::new(Turns {
                    free: options.max_concurrent_global.max(1),
                    clients: VecDeque::new(),
                }),
            }),
            Arc::new(Throttle::new(options.rotation_check_window)),
        )
    }

    /// Makes one call once a permit is held, building its future only then
    /// and on the heap, as a fetch's gate does. A client of its own: one
    /// call waits its turn among the mounts. The call goes to `service` in
    /// `region`, under the node's backoff ([`Throttle::call`]), which may
    /// send it twice.
    pub async fn call<T, E: ProvideErrorMetadata, F>(
        &self,
        service: Service,
        region: &str,
        call: impl Fn() -> F,
    ) -> F::Output
    where
        F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        self.1
            .call(service, region, None, || async {
                let _permit = self.acquire(new_client()).await;
                Box::pin(call()).await
            })
            .await
    }

    /// One permit, in `client`'s turn.
    async fn acquire(&self, client: u64) -> FairPermit {
        let receiver = {
            let mut turns = self.0.lock();
            // Permits are handed to live waiters as they are freed, so a
            // free permit means nobody waits for it.
            if turns.free > 0 {
                turns.free -= 1;
                return FairPermit(self.0.clone());
            }
            let (sender, receiver) = oneshot::channel();
            match turns.clients.iter_mut().find(|(c, _)| *c == client) {
                Some((_, waiting)) => waiting.push_back(sender),
                None => turns.clients.push_back((client, VecDeque::from([sender]))),
            }
            receiver
        };
        crate::metrics::global().aws_calls_waiting.inc();
        let mut waiter = Waiter {
            receiver: Some(receiver),
            queue: &self.0,
        };
        if let Some(receiver) = waiter.receiver.as_mut() {
            // The queue sends before it drops a sender, and it lives as
            // long as this Arc: the wait only ends with a permit.
            let _ = receiver.await;
        }
        waiter.receiver = None;
        FairPermit(self.0.clone())
    }
}

/// Identifies the calls that share one turn.
fn new_client() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct FairQueue {
    state: Mutex<Turns>,
}

/// Free permits, and the clients with calls waiting, in turn order, each
/// with its waiting calls in arrival order.
#[derive(Debug)]
struct Turns {
    free: usize,
    clients: VecDeque<(u64, VecDeque<oneshot::Sender<()>>)>,
}

impl FairQueue {
    fn lock(&self) -> MutexGuard<'_, Turns> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a freed permit to the first waiting call of the next client in
    /// turn (that client goes to the back of the line), else keeps it.
    fn release(&self) {
        let mut turns = self.lock();
        while let Some((client, mut waiting)) = turns.clients.pop_front() {
            let next = waiting.pop_front();
            if !waiting.is_empty() {
                turns.clients.push_back((client, waiting));
            }
            // A waiter that gave up has dropped its receiver: try the next.
            if let Some(sender) = next
                && sender.send(()).is_ok()
            {
                return;
            }
        }
        turns.free += 1;
    }
}

/// Held while one call is in flight; frees its permit when dropped.
struct FairPermit(Arc<FairQueue>);

impl Drop for FairPermit {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A call waiting for its turn. Dropped before its turn came (the mount
/// was cancelled), it gives back a permit handed to it meanwhile.
struct Waiter<'a> {
    receiver: Option<oneshot::Receiver<()>>,
    queue: &'a Arc<FairQueue>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        crate::metrics::global().aws_calls_waiting.dec();
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.queue.release();
            }
        }
    }
}

/// The process-wide limit and the per-fetch size, shared by every store of a
/// factory.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    per_fetch: usize,
    global: CallBound,
}

impl Limits {
    pub(crate) fn new(options: &FetchOptions) -> Self {
        Limits {
            per_fetch: options.max_concurrent_per_mount.max(1),
            global: CallBound::new(options),
        }
    }

    /// The process-wide bound, to share with the identity backend.
    pub(crate) fn bound(&self) -> CallBound {
        self.global.clone()
    }

    /// The gate for one mount in `region`: its own limit, under the
    /// global one, where its calls take one turn together, and the node's
    /// backoff.
    pub(crate) fn for_mount(&self, region: &str) -> Gate {
        Gate {
            local: Semaphore::new(self.per_fetch.min(Semaphore::MAX_PERMITS)),
            global: self.global.clone(),
            client: new_client(),
            throttle: self.global.1.clone(),
            region: region.to_owned(),
            tripped: Tripped::default(),
        }
    }
}

/// The permits one fetch's calls take.
pub(crate) struct Gate {
    local: Semaphore,
    global: CallBound,
    client: u64,
    throttle: Arc<Throttle>,
    region: String,
    /// The services this mount's calls failed throttled at, here.
    tripped: Tripped,
}

/// Held while one AWS call is in flight.
pub(crate) struct Permit<'a> {
    _local: Option<SemaphorePermit<'a>>,
    _global: FairPermit,
}

impl Gate {
    /// Waits for room for one more call. The local semaphore is never
    /// closed, so acquiring cannot fail; if it ever did, the call would
    /// simply go ahead unthrottled rather than fail the mount.
    async fn enter(&self) -> Permit<'_> {
        let local = self.local.acquire().await.ok();
        let global = self.global.acquire(self.client).await;
        Permit {
            _local: local,
            _global: global,
        }
    }

    /// Makes one call once there is room for it: `call` builds the call's
    /// future only when both permits are held, and on the heap. An SDK
    /// operation's future takes kilobytes; built inline, every call waiting
    /// for a permit (most of them, in a burst of mounts) would hold that
    /// much for nothing.
    ///
    /// The call goes to `service`, under the node's backoff
    /// ([`Throttle::call`]), which may send it twice, and not at all once
    /// another call of this mount to `service` failed throttled.
    pub(crate) async fn call<T, E: ProvideErrorMetadata, F>(
        &self,
        service: Service,
        call: impl Fn() -> F,
    ) -> F::Output
    where
        F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        self.throttle
            .call(service, &self.region, Some(&self.tripped), || async {
                let _permit = self.enter().await;
                Box::pin(call()).await
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Counts the calls in flight and the most seen at once.
    #[derive(Default)]
    struct InFlight {
        now: AtomicUsize,
        max: AtomicUsize,
    }

    impl InFlight {
        /// One call, in flight across a sleep, so that calls started together
        /// overlap (on a paused clock the sleep takes no time).
        async fn call(&self) -> Result<(), SdkError<GetSecretValueError, HttpResponse>> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }

        fn max(&self) -> usize {
            self.max.load(Ordering::SeqCst)
        }
    }

    async fn peak(limits: &Limits, fetches: usize, calls: usize) -> usize {
        let counter = &InFlight::default();
        let gates: Vec<Gate> = (0..fetches)
            .map(|_| limits.for_mount("us-east-1"))
            .collect();
        let all = gates.iter().flat_map(|gate| {
            (0..calls).map(move |_| gate.call(Service::SecretsManager, || counter.call()))
        });
        futures::future::join_all(all).await;
        counter.max()
    }

    // The identity's calls and the stores' take from one bound.
    #[tokio::test(start_paused = true)]
    async fn identity_calls_share_the_process_wide_bound() {
        let limits = Limits::new(&FetchOptions {
            max_concurrent_per_mount: 10,
            max_concurrent_global: 3,
            ..FetchOptions::default()
        });
        let (gate, bound) = (limits.for_mount("us-east-1"), limits.bound());
        let counter = &InFlight::default();
        futures::join!(
            futures::future::join_all(
                (0..4).map(|_| gate.call(Service::SecretsManager, || counter.call()))
            ),
            futures::future::join_all((0..4).map(|_| bound.call(
                Service::Sts,
                "us-east-1",
                || counter.call()
            ))),
        );
        assert_eq!(counter.max(), 3);
    }

    /// Runs `calls` concurrently through `bound` (capacity 1), each named,
    /// and returns the names in the order the calls started. Each list is
    /// one client's calls: a gate's, or one identity call's.
    async fn order(bound: &CallBound, clients: &[(&'static str, usize)]) -> Vec<&'static str> {
        let started = &Mutex::new(Vec::new());
        let gates: Vec<(&'static str, usize, u64)> = clients
            .iter()
            .map(|(name, n)| (*name, *n, new_client()))
            .collect();
        let calls = gates.iter().flat_map(|(name, n, client)| {
            (0..*n).map(move |_| async move {
                let _permit = bound.acquire(*client).await;
                started.lock().unwrap().push(*name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            })
        });
        futures::future::join_all(calls).await;
        started.lock().unwrap().clone()
    }

    // Paused clock, one permit: the heavy client's first call takes it, all
    // the rest queue in the order join_all first polls them.
    #[tokio::test(start_paused = true)]
    async fn freed_permits_go_round_robin_between_clients() {
        let bound = CallBound::new(&FetchOptions {
            max_concurrent_global: 1,
            ..FetchOptions::default()
        });
        let got = order(&bound, &[("heavy", 5), ("a", 1), ("b", 1), ("c", 2)]).await;
        assert_eq!(
            got,
            [
                "heavy", "heavy", "a", "b", "c", "heavy", "c", "heavy", "heavy"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_frees_its_turn() {
        let bound = CallBound::new(&FetchOptions {
            max_concurrent_global: 1,
            ..FetchOptions::default()
        });
        let held = bound.acquire(1).await;
        let mut gone = Box::pin(bound.acquire(2));
        assert!(futures::poll!(&mut gone).is_pending());
        let mut next = Box::pin(bound.acquire(3));
        assert!(futures::poll!(&mut next).is_pending());
        drop(gone);
        drop(held);
        // The permit skipped the dropped waiter.
        let permit = futures::poll!(&mut next);
        assert!(permit.is_ready());
        drop(permit);
        drop(next);
        // And came back: one permit, free again.
        assert_eq!(bound.0.lock().free, 1);
    }

    // Paused clock: the sleeps only keep every task in flight at once.
    #[tokio::test(start_paused = true)]
    async fn both_limits_hold() {
        let per = |p, g| {
            Limits::new(&FetchOptions {
                max_concurrent_per_mount: p,
                max_concurrent_global: g,
                ..FetchOptions::default()
            })
        };
        assert_eq!(peak(&per(3, 100), 1, 10).await, 3);
        assert_eq!(peak(&per(3, 4), 3, 10).await, 4);
        assert_eq!(peak(&per(0, 0), 2, 3).await, 1);
    }
}
