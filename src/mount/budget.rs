//! Byte budgets: how much file content one mount may hold
//! (`--max-mount-bytes`) and how much all mounts in flight may hold together
//! (`--max-inflight-bytes`).
//!
//! A mount counts every buffer of file content it makes: each value fetched
//! or read back (a path's matches one by one), each value decoded per
//! `objectEncoding`, each jmesPath result. The count only grows: a buffer
//! freed on the way (a value once decoded) still counts, so the count is at
//! least what the mount holds at any moment.
//!
//! Past the per-mount bound the mount fails (`INVALID_ARGUMENT`: the class
//! asks for too much whatever the node does), naming the bound and the
//! object where it was crossed. Nothing is written: every count happens
//! before delivery.
//!
//! The process-wide bound is a pool of bytes ([`BytePool`]). Before it asks
//! AWS for anything, a mount reserves its worst case ([`estimate`]: what
//! the stores' own size limits let its objects bring, capped at the
//! per-mount bound and at the pool), waiting in arrival order (FIFO) for it
//! within its deadline instead of growing the process's memory. That one
//! wait is the only one: a mount never waits while holding part of the
//! pool, so mounts cannot deadlock each other. Bytes counted past the
//! reservation (a value larger than its store allows) are taken without
//! waiting; when the pool has none left the mount fails
//! (`RESOURCE_EXHAUSTED`, retried by the driver later). A mount whose
//! count passes the whole pool can never fit and fails at once, saying so.
//! Once its files are built the mount gives back all but what it counted.
//!
//! Fair share: no mount reserves more than the per-mount bound, so one
//! class holds at most that share of the pool; the rest keeps serving
//! other mounts.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::spc::ObjectSpec;
use crate::store::StoreKind;

/// Largest Secrets Manager value (SecretString or SecretBinary).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Largest Parameter Store value (advanced tier; standard is 4 KiB).
pub const MAX_PARAMETER_BYTES: usize = 8 * 1024;

/// Default `--max-inflight-bytes`: half the chart's 64 Mi memory request,
/// leaving the rest for the process itself (about 12 MiB idle) and the
/// AWS SDK's buffers under a burst of mounts.
pub const DEFAULT_INFLIGHT_BYTES: usize = 32 * 1024 * 1024;
/// Default `--max-mount-bytes` when the provider writes the files: a
/// quarter of the default pool, so four maximal mounts run at once; it
/// holds 128 secrets of the largest size, or the 1024 files a class may
/// have at the largest parameter size.
pub const DEFAULT_MOUNT_BYTES: usize = 8 * 1024 * 1024;

/// The pool of bytes every mount in flight reserves from
/// (`--max-inflight-bytes`). Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct BytePool {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl BytePool {
    /// A pool of `capacity` bytes, at least 1 and at most 4 GiB - 1.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        BytePool {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Bytes not reserved by any mount now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// The budget of one mount, bounded at `limit` bytes.
    pub fn mount(&self, limit: usize) -> MountBytes {
        MountBytes {
            pool: self.clone(),
            limit,
            state: Mutex::new(State::default()),
        }
    }
}

impl Default for BytePool {
    fn default() -> Self {
        BytePool::new(DEFAULT_INFLIGHT_BYTES)
    }
}

/// One mount's budget: what it counted, and what it holds of the pool.
/// Dropping it gives the reservation back.
#[derive(Debug)]
pub struct MountBytes {
    pool: BytePool,
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counted: usize,
    held: Option<OwnedSemaphorePermit>,
}

impl State {
    fn held(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        crate::metrics::global()
            .budget_bytes_in_use
            .inc_by(permit.num_permits() as i64);
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
    }
}

impl MountBytes {
    /// Reserves `estimate` bytes (capped at the per-mount bound and at the
    /// pool), waiting in arrival order until the pool has them. Called once,
    /// before the mount holds anything; the caller's deadline bounds the
    /// wait.
    pub async fn reserve(&self, estimate: usize) {
        let want = estimate.min(self.limit).min(self.pool.capacity);
        let already = self.lock().held();
        let Some(more) = want.checked_sub(already).filter(|n| *n > 0) else {
            return;
        };
        // `more` fits in u32: the pool's capacity does.
        let more = more as u32;
        let semaphore = self.pool.semaphore.clone();
        let permit = match semaphore.clone().try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                crate::metrics::global().budget_waits.inc();
                match semaphore.acquire_many_owned(more).await {
                    Ok(permit) => permit,
                    // Never closed; if it were, go ahead unreserved.
                    Err(_) => return,
                }
            }
        };
        self.lock().add(permit);
    }

    /// Counts `bytes` more of file content; `what` names the object (and
    /// the part of it) for the error. Fails past the per-mount bound, past
    /// the whole pool, or when the count outgrows the reservation and the
    /// pool has no more to give now.
    pub fn charge(&self, bytes: usize, what: impl FnOnce() -> String) -> Result<(), Error> {
        let mut state = self.lock();
        let counted = state.counted.saturating_add(bytes);
        if counted > self.limit {
            return Err(Error::MountBytes {
                limit: self.limit,
                at: what(),
            });
        }
        if counted > self.pool.capacity {
            return Err(Error::InflightBytes {
                capacity: self.pool.capacity,
                at: what(),
                busy: false,
            });
        }
        if let Some(more) = counted.checked_sub(state.held()).filter(|n| *n > 0) {
            match self
                .pool
                .semaphore
                .clone()
                .try_acquire_many_owned(more as u32)
            {
                Ok(permit) => state.add(permit),
                Err(_) => {
                    return Err(Error::InflightBytes {
                        capacity: self.pool.capacity,
                        at: what(),
                        busy: true,
                    });
                }
            }
        }
        state.counted = counted;
        Ok(())
    }

    /// Gives back every reserved byte not counted: once the files are
    /// built, the mount holds no more than them.
    pub fn shrink_to_count(&self) {
        let mut state = self.lock();
        let spare = state.held().saturating_sub(state.counted);
        if spare > 0
            && let Some(held) = &mut state.held
            && let Some(freed) = held.split(spare)
        {
            crate::metrics::global()
                .budget_bytes_in_use
                .dec_by(freed.num_permits() as i64);
        }
    }

    /// Bytes counted so far.
    #[cfg(test)]
    pub fn counted(&self) -> usize {
        self.lock().counted
    }

    /// Bytes held of the pool now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.lock().held()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for MountBytes {
    fn drop(&mut self) {
        let held = self.lock().held();
        crate::metrics::global()
            .budget_bytes_in_use
            .dec_by(held as i64);
    }
}

/// The most file content `objects` can bring, by the stores' own size
/// limits, over `regions` regions (each region's answer is held until the
/// failover rule picks one): per object its value, its decoded copy, each
/// jmesPath result and that result's decoded copy. A path may match up to
/// the mount's file limit, so its worst case is unbounded here: the caller
/// caps the estimate at the per-mount bound.
pub fn estimate(objects: &[&ObjectSpec], regions: usize) -> usize {
    objects
        .iter()
        .map(|spec| {
            if spec.path.is_some() {
                return usize::MAX;
            }
            let value = match spec.kind {
                StoreKind::SecretsManager => MAX_SECRET_BYTES,
                StoreKind::ParameterStore => MAX_PARAMETER_BYTES,
            };
            let decoded = |encoding: crate::encoding::Encoding| {
                usize::from(encoding != crate::encoding::Encoding::Utf8)
            };
            let copies = regions
                + decoded(spec.encoding)
                + spec
                    .jmes
                    .iter()
                    .map(|j| 1 + decoded(j.encoding))
                    .sum::<usize>();
            value.saturating_mul(copies)
        })
        .fold(0usize, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::PathTranslation;
    use crate::spc::objects::parse;

    fn specs(yaml: &str) -> Vec<ObjectSpec> {
        parse(yaml, &PathTranslation::Replace('_'), false).expect("a valid class")
    }

    #[test]
    fn estimates_follow_the_stores_limits() {
        let s = specs(
            "- objectName: a\n  objectType: secretsmanager\n  objectEncoding: base64\n  jmesPath:\n    - path: k\n      objectAlias: k\n- objectName: p\n  objectType: ssmparameter\n",
        );
        let objects: Vec<&ObjectSpec> = s.iter().collect();
        // a: value, decoded, one jmesPath result; p: its value.
        assert_eq!(estimate(&objects, 1), 3 * 64 * 1024 + 8 * 1024);
        // With a failover region, each region's value is held.
        assert_eq!(estimate(&objects, 2), 4 * 64 * 1024 + 2 * 8 * 1024);
        let s = specs("- objectName: prod/*\n  objectType: secretsmanager\n");
        let objects: Vec<&ObjectSpec> = s.iter().collect();
        assert_eq!(estimate(&objects, 1), usize::MAX);
    }

    #[test]
    fn the_per_mount_bound_names_the_object() {
        let pool = BytePool::new(1000);
        let mount = pool.mount(100);
        mount.charge(60, || "object a".into()).unwrap();
        let e = mount.charge(41, || "object b".into()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let m = e.to_string();
        assert!(m.contains("100 bytes") && m.contains("object b"), "{m}");
        assert!(m.contains("--max-mount-bytes"), "{m}");
        assert_eq!(mount.counted(), 60);
    }

    #[test]
    fn a_mount_larger_than_the_pool_never_fits() {
        let pool = BytePool::new(100);
        let mount = pool.mount(1000);
        mount.charge(100, || "object a".into()).unwrap();
        let e = mount.charge(1, || "object b".into()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        let m = e.to_string();
        assert!(
            m.contains("never") && m.contains("--max-inflight-bytes") && m.contains("object b"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn reservations_are_capped_and_given_back() {
        let pool = BytePool::new(1000);
        let mount = pool.mount(300);
        mount.reserve(usize::MAX).await;
        assert_eq!(mount.held(), 300);
        assert_eq!(pool.available(), 700);
        mount.charge(120, || "object a".into()).unwrap();
        assert_eq!(mount.held(), 300);
        mount.shrink_to_count();
        assert_eq!((mount.held(), pool.available()), (120, 880));
        // Past the reservation: taken from the pool without waiting.
        mount.charge(100, || "object b".into()).unwrap();
        assert_eq!((mount.held(), pool.available()), (220, 780));
        drop(mount);
        assert_eq!(pool.available(), 1000);
    }

    #[tokio::test]
    async fn growth_past_the_reservation_never_waits() {
        let pool = BytePool::new(100);
        let other = pool.mount(100);
        other.reserve(80).await;
        let mount = pool.mount(100);
        mount.reserve(10).await;
        mount.charge(10, || "object a".into()).unwrap();
        let e = mount.charge(20, || "object b".into()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.to_string().contains("in use by other mounts"), "{e}");
    }

    // Explicit ordering: the second reservation is pending until the
    // first mount is dropped, then completes.
    #[tokio::test(start_paused = true)]
    async fn a_mount_waits_for_room_in_arrival_order() {
        let pool = BytePool::new(100);
        let first = pool.mount(100);
        first.reserve(70).await;
        let second = pool.mount(100);
        let third = pool.mount(100);
        let mut second_waits = Box::pin(second.reserve(60));
        let mut third_waits = Box::pin(third.reserve(20));
        assert!(futures::poll!(&mut second_waits).is_pending());
        // FIFO: the small one behind does not overtake (no starvation of
        // the larger one), although 30 bytes are free.
        assert!(futures::poll!(&mut third_waits).is_pending());
        drop(first);
        assert!(futures::poll!(&mut second_waits).is_ready());
        assert!(futures::poll!(&mut third_waits).is_ready());
        assert_eq!(pool.available(), 20);
    }
}
