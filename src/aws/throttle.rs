//! The node backs off as a whole when AWS throttles it: one adaptive rate
//! limiter per (service, region), shared by every mount, store and identity
//! call of the process.
//!
//! - **Signal.** An answer is throttling when its error code is one of
//!   [`super::classify`]'s throttling codes (`ThrottlingException`,
//!   `TooManyRequestsException`, `Throttling`, ...) or its status is 429.
//!   The SDK clients do not retry throttling themselves
//!   ([`NoSdkThrottleRetry`]); they still retry 5xx and transport failures.
//! - **Policy** ([`Policy`], a pure function of the answers and the clock).
//!   Calm, calls go at once. A throttling answer to a call sent since the
//!   last cut cuts the allowed rate to [`CUT`] of the rate the node was
//!   sending at (calm: the calls sent in the last second; backing off: the
//!   allowed rate), never below the floor: one call per
//!   [`probe_interval`], [`FLOOR_WINDOWS`] check windows. So a service
//!   that keeps throttling is asked less and less, down to the floor.
//!   Throttling that resumes within [`MEMORY`] of the last cut starts from
//!   a cut of that cut's rate. Answers to calls sent before a cut say
//!   nothing new. The rate never grows by the clock: the first answer that
//!   is not throttling, to a call sent since the last cut (a probe), ends
//!   the backoff, and the node is calm again.
//! - **Probes.** While backing off, calls are spaced `1 / rate` apart; at
//!   the floor, on a grid of probe times per (service, region), Secrets
//!   Manager's and SSM's half a probe interval (one check window) apart,
//!   so that after throttling stops one of them probes within one window.
//!   A service that stops throttling lets the other services of its region
//!   probe at once ([`Policy::hint`]).
//! - **Who waits.** A first mount's call waits for its slot while the slot
//!   is within the mount's deadline ([`crate::store::Patience::Until`]); a
//!   remount with files and records ([`crate::store::Patience::None`])
//!   takes a slot only when it is free now (it is then the probe), and is
//!   otherwise not sent: it fails naming throttling, the driver keeps the
//!   pod's files, and the remount adds no call to a service asking for
//!   fewer.
//! - **Retries.** A throttled call is retried at most once, when the node's
//!   backoff gives it a slot (a remount's retry never gets one: the cut
//!   moved the next slot on).
//! - **Per mount.** Once a call of a mount fails throttled, the mount's
//!   remaining calls to that service in that region are not sent
//!   ([`Tripped`]), as ASCP stops at a mount's first failure.
//!
//! Regions outside [`crate::metrics::region_label`]'s known set share one
//! limiter per service (`other`), so hostile classes naming made-up regions
//! cannot grow the table. The state shows in metrics:
//! `ascp_aws_allowed_calls_per_second{service,region}` (the allowed rate as
//! of the last call or answer, 0 when calm) and
//! `ascp_aws_calls_held_back{service,region}` (calls not sent).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, RetryReason,
};
use aws_smithy_types::retry::ErrorKind;
use tokio::time::Instant;

use crate::store::{FailureKind, Patience, StoreError};

/// What a throttling answer keeps of the rate.
pub const CUT: f64 = 0.25;
/// At the floor, one call (a probe) per this many check windows.
pub const FLOOR_WINDOWS: u32 = 2;
/// The shortest probe interval at the floor (a check window of 0 or a few
/// milliseconds still probes at most once a second).
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The longest probe interval at the floor, whatever the window.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long a cut is remembered: throttling that resumes within it starts
/// from the remembered rate, not from what the node sends.
pub const MEMORY: Duration = Duration::from_secs(60);
/// How long a call outside any mount may wait for its slot.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

/// The services the node calls, a fixed label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager Parameter Store.
    Ssm,
    /// AWS STS (IRSA, role chaining).
    Sts,
    /// EKS Auth (Pod Identity in eks-auth mode).
    EksAuth,
}

impl Service {
    /// The metric label and the name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
            Service::Sts => "sts",
            Service::EksAuth => "eks-auth",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Where the service's probes fall within the probe interval at the
    /// floor, as a fraction of it: Secrets Manager's and SSM's half an
    /// interval apart, STS's and EKS Auth's between them.
    fn phase(self) -> f64 {
        match self {
            Service::SecretsManager => 0.0,
            Service::Ssm => 0.5,
            Service::Sts => 0.25,
            Service::EksAuth => 0.75,
        }
    }
}

/// Why a call was not sent. Carried, as a throttling [`StoreError`], as the
/// source of an SDK construction failure, which
/// [`super::classify::sdk_error`] turns into the operation's error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotSent {
    /// The node is backing off and the call may not wait for a slot.
    #[error(
        "not sent: {service} in {region} is throttling this node, which backs off (at most {} now){}",
        pace(*rate),
        wait.map(|w| format!("; the next slot is {:.1} s away, past this mount's deadline", w.as_secs_f64())).unwrap_or_default()
    )]
    BackingOff {
        /// The service's label.
        service: &'static str,
        /// The region's label.
        region: &'static str,
        /// The allowed rate.
        rate: f64,
        /// How long the call would have waited, when it may wait at all.
        wait: Option<Duration>,
    },
    /// A call of the same mount to this service and region failed throttled.
    #[error("not sent: another call of this mount to {service} in {region} was throttled")]
    MountThrottled {
        /// The service's label.
        service: &'static str,
        /// The region's label.
        region: &'static str,
    },
}

/// An allowed rate in words: `2.5 calls/s`, or `one call per 120 s` below
/// one call per second.
fn pace(rate: f64) -> String {
    if rate >= 1.0 {
        format!("{rate:.1} calls/s")
    } else {
        format!("one call per {:.0} s", 1.0 / rate.max(1e-6))
    }
}

/// Whether an SDK error is AWS throttling.
pub fn is_throttling<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            super::classify::classify(service.err().code(), Some(service.raw().status().as_u16()))
                == FailureKind::Throttled
        }
        SdkError::ResponseError(response) => response.raw().status().as_u16() == 429,
        _ => false,
    }
}

/// The probe interval at the floor for a `--rotation-check-window` of
/// `window`: [`FLOOR_WINDOWS`] windows, within [`MIN_PROBE_INTERVAL`] and
/// [`MAX_PROBE_INTERVAL`].
pub fn probe_interval(window: Duration) -> Duration {
    window
        .saturating_mul(FLOOR_WINDOWS)
        .clamp(MIN_PROBE_INTERVAL, MAX_PROBE_INTERVAL)
}

/// The per-(service, region) limiter's pure policy: what it allows and how
/// answers change it. Every method takes the time, so tests drive it on
/// any clock.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Start of the current one-second count of calls sent.
    second: Instant,
    /// Calls sent in the current second, and in the one before.
    sent: (u32, u32),
    /// Backing off: the allowed rate and the time of the last cut.
    cut: Option<(f64, Instant)>,
    /// The earliest time of the next call while backing off.
    next_slot: Instant,
    /// The last cut's rate and time, kept after calm returned.
    last_cut: Option<(f64, Instant)>,
    /// The lowest allowed rate, in calls per second: one probe per
    /// [`probe_interval`].
    floor: f64,
    /// The probe interval at the floor.
    probe: Duration,
    /// One of the times a probe may go at the floor; the others are whole
    /// probe intervals before or after it.
    grid: Instant,
}

impl Policy {
    /// A calm limiter whose floor is one call per `probe_interval`, at
    /// `grid` and whole intervals after it: the node's limiters of one
    /// region take different grids, so that their probes interleave.
    pub fn new(grid: Instant, probe_interval: Duration) -> Self {
        let probe = probe_interval.max(Duration::from_millis(1));
        Policy {
            second: grid,
            sent: (0, 0),
            cut: None,
            next_slot: grid,
            last_cut: None,
            floor: 1.0 / probe.as_secs_f64(),
            probe,
            grid,
        }
    }

    /// The first time on the floor's grid after `t`.
    fn grid_slot(&self, t: Instant) -> Instant {
        let Some(since) = t.checked_duration_since(self.grid) else {
            return self.grid;
        };
        let probe = self.probe.as_nanos();
        let steps = since.as_nanos() / probe + 1;
        let offset = u64::try_from(steps.saturating_mul(probe)).unwrap_or(u64::MAX);
        self.grid + Duration::from_nanos(offset)
    }

    /// The next slot after one taken at `slot`, at `rate`: `1 / rate`
    /// later, or at the floor the grid's next time at least half a probe
    /// interval later (a whole interval when `slot` is on the grid).
    fn after(&self, slot: Instant, rate: f64) -> Instant {
        if rate <= self.floor {
            self.grid_slot(slot + self.probe / 2)
        } else {
            slot + Duration::from_secs_f64(1.0 / rate)
        }
    }

    /// Another service of the region stopped throttling: the next call
    /// may go now, as a probe, instead of at its slot.
    pub fn hint(&mut self, now: Instant) {
        if self.cut.is_some() {
            self.next_slot = self.next_slot.min(now);
        }
    }

    /// The allowed rate in calls per second, `None` when calm. It changes
    /// only with answers, never with the clock.
    pub fn allowed(&self) -> Option<f64> {
        self.cut.map(|(rate, _)| rate)
    }

    /// Asks to send one call now. `Ok(at)`: send it at `at` (now when
    /// calm), its slot is taken. `Err(rate, wait)`: not allowed, backing
    /// off at `rate`; `wait` is how long it would have waited when it may
    /// wait at all. A call that may not wait ([`Patience::None`]) gets a
    /// slot that is free now: it is the probe that tells the node whether
    /// the service still throttles.
    pub fn reserve(
        &mut self,
        now: Instant,
        patience: Patience,
    ) -> Result<Instant, (f64, Option<Duration>)> {
        let Some(rate) = self.allowed() else {
            self.count(now);
            return Ok(now);
        };
        let slot = self.next_slot.max(now);
        match patience {
            Patience::None if slot > now => Err((rate, None)),
            Patience::Until(deadline) if slot > deadline => Err((rate, Some(slot - now))),
            Patience::None | Patience::Until(_) => {
                self.next_slot = self.after(slot, rate);
                self.count(slot);
                Ok(slot)
            }
        }
    }

    /// A call sent at `sent` was answered at `now`, throttling or not.
    /// Answers to calls sent before the last cut say nothing new. A later
    /// answer that is not throttling ends the backoff: the node is calm
    /// again. A later throttling answer cuts the rate to [`CUT`] of it,
    /// never below the floor. True when the answer ended the backoff.
    pub fn answered(&mut self, now: Instant, sent: Instant, throttled: bool) -> bool {
        if let Some((_, at)) = self.cut
            && sent < at
        {
            return false;
        }
        if !throttled {
            let ended = self.cut.take().is_some();
            if ended {
                self.next_slot = now;
            }
            return ended;
        }
        let from = match (self.cut, self.last_cut) {
            (Some((rate, _)), _) => rate,
            (None, last) => {
                self.roll(now);
                let measured = f64::from(self.sent.0.max(self.sent.1)).max(1.0);
                match last {
                    Some((rate, at)) if now.saturating_duration_since(at) < MEMORY => {
                        measured.min(rate)
                    }
                    _ => measured,
                }
            }
        };
        let rate = (from * CUT).max(self.floor);
        self.cut = Some((rate, now));
        self.last_cut = Some((rate, now));
        // At the floor, the grid's next time: a whole interval after a
        // probe sent on the grid, and never more than one interval away,
        // so that one of a region's interleaved services probes within
        // half an interval of any time.
        self.next_slot = if rate <= self.floor {
            self.grid_slot(now)
        } else {
            now + Duration::from_secs_f64(1.0 / rate)
        };
        false
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.second);
        if elapsed >= Duration::from_secs(1) {
            let before = if elapsed < Duration::from_secs(2) {
                self.sent.0
            } else {
                0
            };
            self.sent = (0, before);
            self.second = now;
        }
    }

    fn count(&mut self, at: Instant) {
        self.roll(at);
        self.sent.0 = self.sent.0.saturating_add(1);
    }
}

/// The mount's flags: which services failed throttled in this region.
#[derive(Debug, Default)]
pub(crate) struct Tripped([AtomicBool; 4]);

impl Tripped {
    fn get(&self, service: Service) -> bool {
        self.0[service.index()].load(Ordering::Relaxed)
    }

    fn set(&self, service: Service) {
        self.0[service.index()].store(true, Ordering::Relaxed);
    }
}

/// The process's limiters, one per (service, region label).
#[derive(Debug)]
pub struct Throttle {
    limiters: Mutex<HashMap<(Service, &'static str), Policy>>,
    /// The probe interval at the floor ([`probe_interval`]).
    probe_interval: Duration,
    /// The origin of the limiters' grids of probe times.
    epoch: Instant,
}

impl Default for Throttle {
    /// Limiters for the default check window.
    fn default() -> Self {
        Throttle::new(super::limits::FetchOptions::DEFAULT_CHECK_WINDOW)
    }
}

impl Throttle {
    /// Limiters for a node whose `--rotation-check-window` is `window`:
    /// at the floor, one probe per [`probe_interval`]`(window)`.
    pub fn new(window: Duration) -> Self {
        Throttle {
            limiters: Mutex::default(),
            probe_interval: probe_interval(window),
            epoch: Instant::now(),
        }
    }

    /// The node's limiters, locked.
    fn limiters(&self) -> std::sync::MutexGuard<'_, HashMap<(Service, &'static str), Policy>> {
        // The map holds plain data; a panic elsewhere cannot leave it torn.
        self.limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with<T>(
        &self,
        service: Service,
        region: &'static str,
        f: impl FnOnce(&mut Policy) -> T,
    ) -> T {
        let mut limiters = self.limiters();
        // The services of a region probe at the floor at interleaved times.
        let grid = self.epoch + self.probe_interval.mul_f64(service.phase());
        let policy = limiters
            .entry((service, region))
            .or_insert_with(|| Policy::new(grid, self.probe_interval));
        let out = f(policy);
        let rate = policy.allowed().unwrap_or(0.0);
        crate::metrics::global().throttle_rate(service.label(), region, rate);
        out
    }

    /// `service` stopped throttling in `region`: the region's other
    /// services that back off may send their next call now, a probe each,
    /// instead of waiting for their slot (throttling often ends for the
    /// whole account and region at once).
    fn hint(&self, service: Service, region: &'static str) {
        let now = Instant::now();
        for ((other, r), policy) in self.limiters().iter_mut() {
            if *other != service && *r == region {
                policy.hint(now);
            }
        }
    }

    /// Makes one AWS call of `service` in `region` under the node's backoff:
    /// `send` builds and sends it, and is called again for the one retry of
    /// a throttled answer. `tripped` is the mount's, when the call belongs
    /// to one. A call that is not sent answers an SDK construction failure
    /// whose source is a throttling [`StoreError`] saying why ([`NotSent`]).
    pub(crate) async fn call<T, E, F>(
        &self,
        service: Service,
        region: &str,
        tripped: Option<&Tripped>,
        mut send: impl FnMut() -> F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        E: ProvideErrorMetadata,
        F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let region = crate::metrics::region_label(region);
        let patience = Patience::current()
            .unwrap_or_else(|| Patience::Until(Instant::now() + DEFAULT_PATIENCE));
        let not_sent = |reason: NotSent| {
            crate::metrics::global().throttle_held_back(service.label(), region);
            SdkError::construction_failure(StoreError::new(
                FailureKind::Throttled,
                None,
                reason.to_string(),
            ))
        };
        let mount_throttled = || {
            not_sent(NotSent::MountThrottled {
                service: service.label(),
                region,
            })
        };
        // The first answer, when it was throttling and the call may go once more.
        let mut throttled: Option<Result<T, SdkError<E, HttpResponse>>> = None;
        loop {
            if tripped.is_some_and(|t| t.get(service)) {
                return match throttled {
                    Some(answer) => answer,
                    None => Err(mount_throttled()),
                };
            }
            let slot = self.with(service, region, |p| p.reserve(Instant::now(), patience));
            let at = match (slot, throttled) {
                (Ok(at), earlier) => {
                    throttled = earlier;
                    at
                }
                // The retry gets no slot: the throttled answer stands.
                (Err(_), Some(answer)) => {
                    crate::metrics::global().throttle_held_back(service.label(), region);
                    tripped.inspect(|t| t.set(service));
                    return answer;
                }
                (Err((rate, wait)), None) => {
                    return Err(not_sent(NotSent::BackingOff {
                        service: service.label(),
                        region,
                        rate,
                        wait,
                    }));
                }
            };
            tokio::time::sleep_until(at).await;
            // Another call of the mount may have failed while this one waited.
            if tripped.is_some_and(|t| t.get(service)) {
                return match throttled {
                    Some(answer) => answer,
                    None => Err(mount_throttled()),
                };
            }
            let answer = send().await;
            let now_throttled = matches!(&answer, Err(e) if is_throttling(e));
            // Only the service's own answers tell whether it throttles; a
            // call that failed before it was answered (a timeout, a refused
            // connection, not sent) tells nothing.
            let heard = matches!(
                &answer,
                Ok(_) | Err(SdkError::ServiceError(_) | SdkError::ResponseError(_))
            );
            if heard {
                let ended = self.with(service, region, |p| {
                    p.answered(Instant::now(), at, now_throttled)
                });
                if ended {
                    self.hint(service, region);
                }
            }
            if !now_throttled {
                return answer;
            }
            if throttled.is_some() {
                // The retry was throttled too.
                tripped.inspect(|t| t.set(service));
                return answer;
            }
            throttled = Some(answer);
        }
    }
}

/// A retry classifier that forbids the SDK's own retries of throttling:
/// the node's backoff ([`Throttle::call`]) decides whether and when a
/// throttled call is sent again. Runs after the SDK's classifiers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSdkThrottleRetry;

impl ClassifyRetry for NoSdkThrottleRetry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let too_many = ctx
            .response()
            .is_some_and(|response| response.status().as_u16() == 429);
        if too_many {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn classify_retry_v2(&self, ctx: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        match previous {
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            }) => RetryAction::RetryForbidden,
            _ => self.classify_retry(ctx),
        }
    }

    fn name(&self) -> &'static str {
        "ascp: the node's backoff retries throttling"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A policy whose floor is one probe per 4 s (a 2 s check window).
    fn policy(t0: Instant) -> Policy {
        Policy::new(t0, probe_interval(Duration::from_secs(2)))
    }

    #[test]
    fn the_probe_interval_at_the_floor_follows_the_window() {
        assert_eq!(probe_interval(Duration::from_secs(2)), ms(4000));
        assert_eq!(
            probe_interval(Duration::from_secs(60)),
            Duration::from_secs(120)
        );
        assert_eq!(probe_interval(Duration::ZERO), MIN_PROBE_INTERVAL);
        assert_eq!(
            probe_interval(Duration::from_secs(86_400)),
            MAX_PROBE_INTERVAL
        );
    }

    #[test]
    fn a_call_not_sent_names_throttling_and_the_pace() {
        let not_sent = |rate, wait| NotSent::BackingOff {
            service: "ssm",
            region: "us-east-1",
            rate,
            wait,
        };
        assert_eq!(
            not_sent(1.0 / 120.0, None).to_string(),
            "not sent: ssm in us-east-1 is throttling this node, which backs off \
             (at most one call per 120 s now)"
        );
        assert_eq!(
            not_sent(2.5, Some(ms(1500))).to_string(),
            "not sent: ssm in us-east-1 is throttling this node, which backs off \
             (at most 2.5 calls/s now); the next slot is 1.5 s away, past this mount's deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calm_until_throttled_then_a_quarter_of_the_rate_sent() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        // 40 calls in one second: calm, all at once.
        for i in 0..40 {
            assert_eq!(
                p.reserve(t0 + ms(i * 25), Patience::None),
                Ok(t0 + ms(i * 25))
            );
        }
        let now = t0 + ms(1000);
        p.answered(now, now - ms(10), true);
        assert_eq!(p.allowed(), Some(10.0));
        // A remount takes no slot that is not free now; a first mount gets
        // one, 1/10 s apart.
        assert_eq!(p.reserve(now, Patience::None), Err((10.0, None)));
        let deadline = Patience::Until(now + ms(1000));
        assert_eq!(p.reserve(now, deadline), Ok(now + ms(100)));
        assert_eq!(p.reserve(now, deadline), Ok(now + ms(200)));
        // A slot past the deadline is refused with the wait it would take.
        assert_eq!(
            p.reserve(now, Patience::Until(now + ms(220))),
            Err((10.0, Some(ms(300))))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_that_persists_keeps_cutting_down_to_the_floor() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        for _ in 0..40 {
            p.reserve(t0, Patience::None).unwrap();
        }
        p.answered(t0, t0, true);
        let mut rates = vec![p.allowed().unwrap()];
        let mut now = t0;
        for _ in 0..5 {
            // The next probe, sent at its slot and throttled again: 1/rate
            // after the cut, and at the floor on its grid.
            let slot = p.next_slot;
            let rate = *rates.last().unwrap();
            if rate > 0.25 {
                assert_eq!(slot, now + Duration::from_secs_f64(1.0 / rate));
            } else {
                // On the grid, at most one interval after the cut.
                assert!(slot <= now + ms(4000));
                assert_eq!((slot - t0).as_millis() % 4000, 0);
            }
            assert_eq!(p.reserve(slot, Patience::None), Ok(slot));
            now = slot + ms(5);
            p.answered(now, slot, true);
            rates.push(p.allowed().unwrap());
        }
        assert_eq!(rates, [10.0, 2.5, 0.625, 0.25, 0.25, 0.25]);
        // Answers to calls sent before the last cut cut nothing more.
        let mut again = p.clone();
        again.answered(now + ms(1), now - ms(1), true);
        assert_eq!(again.allowed(), Some(0.25));
        assert_eq!(again.next_slot, p.next_slot);
    }

    #[tokio::test(start_paused = true)]
    async fn no_growth_without_an_answer_that_is_not_throttling() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.answered(t0, t0, true);
        assert_eq!(p.allowed(), Some(0.25));
        // Hours pass without an answer: the rate stays where it is.
        let later = t0 + Duration::from_secs(3 * 3600);
        assert_eq!(p.allowed(), Some(0.25));
        // The free slot goes to one call, the probe; the next waits 4 s.
        assert_eq!(p.reserve(later, Patience::None), Ok(later));
        assert_eq!(p.reserve(later, Patience::None), Err((0.25, None)));
        // A success of a call sent before the cut tells nothing new.
        p.answered(later + ms(1), t0 - ms(1), false);
        assert_eq!(p.allowed(), Some(0.25));
        // Neither does a call that was never answered: the caller does not
        // report it, and the rate stays.
        assert_eq!(p.reserve(later + ms(10), Patience::None), Err((0.25, None)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_is_not_throttling_ends_the_backoff() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.answered(t0, t0, true);
        let probe = t0 + ms(4000);
        assert_eq!(p.reserve(probe, Patience::None), Ok(probe));
        // While the probe is out, the next remount is not sent.
        assert_eq!(p.reserve(probe + ms(1), Patience::None), Err((0.25, None)));
        p.answered(probe + ms(20), probe, false);
        assert_eq!(p.allowed(), None);
        // Calm: every call goes at once.
        let after = probe + ms(21);
        for _ in 0..10 {
            assert_eq!(p.reserve(after, Patience::None), Ok(after));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probes_at_the_floor_are_one_probe_interval_apart() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.answered(t0, t0, true);
        let mut slot = t0;
        for _ in 0..3 {
            slot += ms(4000);
            assert_eq!(
                p.reserve(slot - ms(1), Patience::None),
                Err((0.25, None)),
                "a probe before its slot"
            );
            assert_eq!(p.reserve(slot, Patience::None), Ok(slot));
            p.answered(slot + ms(5), slot, true);
            assert_eq!(p.allowed(), Some(0.25));
        }
        // A probe that comes late, off the grid, does not move it: the
        // next slot is the grid's next time, at least half an interval on.
        let late = slot + ms(4000 + 1500);
        assert_eq!(p.reserve(late, Patience::None), Ok(late));
        assert_eq!(p.next_slot, slot + ms(8000));
        let later = slot + ms(8000 + 2500);
        assert_eq!(p.reserve(later, Patience::None), Ok(later));
        assert_eq!(p.next_slot, slot + ms(16_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_stops_throttling_lets_the_regions_others_probe_now() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        // Calm: a hint changes nothing.
        p.hint(t0);
        assert_eq!(p.allowed(), None);
        p.answered(t0, t0, true);
        let now = t0 + ms(100);
        assert_eq!(p.reserve(now, Patience::None), Err((0.25, None)));
        p.hint(now);
        assert_eq!(p.reserve(now, Patience::None), Ok(now));
        assert_eq!(p.reserve(now, Patience::None), Err((0.25, None)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_regions_services_probe_half_an_interval_apart_and_hint_each_other() {
        let throttle = Throttle::new(Duration::from_secs(2));
        let (sm, ssm) = (Service::SecretsManager, Service::Ssm);
        let t0 = Instant::now();
        for service in [sm, ssm, Service::Sts] {
            throttle.with(service, "us-east-1", |p| p.answered(t0, t0, true));
        }
        // At the floor, one probe per 4 s each: Secrets Manager's on the
        // grid, SSM's 2 s after it.
        let next = |service| throttle.with(service, "us-east-1", |p| p.next_slot);
        assert_eq!(next(sm), throttle.epoch + ms(4000));
        assert_eq!(next(ssm), throttle.epoch + ms(2000));
        // Secrets Manager answers: SSM and STS of that region may probe
        // now; another region's do not.
        throttle.with(ssm, "eu-west-1", |p| p.answered(t0, t0, true));
        let at = t0 + ms(4000);
        throttle.with(sm, "us-east-1", |p| p.reserve(at, Patience::None).unwrap());
        let ended = throttle.with(sm, "us-east-1", |p| p.answered(at, at, false));
        assert!(ended);
        throttle.hint(sm, "us-east-1");
        let now = Instant::now();
        assert!(next(ssm) <= now && next(Service::Sts) <= now);
        let far = throttle.with(ssm, "eu-west-1", |p| p.next_slot);
        assert!(far > now);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_that_resumes_starts_lower() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        for _ in 0..40 {
            p.reserve(t0, Patience::None).unwrap();
        }
        p.answered(t0 + ms(10), t0, true);
        assert_eq!(p.allowed(), Some(10.0));
        // A probe succeeds: calm. 40 more calls, throttled again within
        // MEMORY: a quarter of the last cut, not of what was sent.
        let t1 = t0 + ms(110);
        p.reserve(t1, Patience::None).unwrap();
        p.answered(t1, t1, false);
        assert_eq!(p.allowed(), None);
        for _ in 0..40 {
            p.reserve(t1, Patience::None).unwrap();
        }
        p.answered(t1 + ms(10), t1, true);
        assert_eq!(p.allowed(), Some(2.5));
        // Past MEMORY, the next episode starts from what is sent.
        let probe = t1 + ms(10) + ms(400);
        p.reserve(probe, Patience::None).unwrap();
        p.answered(probe, probe, false);
        let t2 = t1 + MEMORY + ms(20);
        for _ in 0..40 {
            p.reserve(t2, Patience::None).unwrap();
        }
        p.answered(t2, t2, true);
        assert_eq!(p.allowed(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_call_is_retried_once_and_a_mount_stops_at_its_failure() {
        use aws_smithy_runtime_api::http::StatusCode;
        use std::cell::Cell;
        let throttle = Throttle::default();
        let tripped = Tripped::default();
        let sent = Cell::new(0);
        let throttled = || {
            sent.set(sent.get() + 1);
            async {
                let raw = HttpResponse::new(
                    StatusCode::try_from(429).unwrap(),
                    aws_smithy_types::body::SdkBody::empty(),
                );
                Err::<(), _>(SdkError::<
                    aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
                    HttpResponse,
                >::service_error(
                    aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError::unhandled(
                        "throttled",
                    ),
                    raw,
                ))
            }
        };
        let first = Patience::Until(Instant::now() + Duration::from_secs(60));
        let first_mount = || {
            first.scope(throttle.call(
                Service::SecretsManager,
                "us-east-1",
                Some(&tripped),
                throttled,
            ))
        };
        let answer = first_mount().await;
        assert!(is_throttling(&answer.unwrap_err()));
        assert_eq!(sent.get(), 2);
        // The mount's next call to that service is not sent.
        let answer = first_mount().await;
        assert!(matches!(answer, Err(SdkError::ConstructionFailure(_))));
        assert_eq!(sent.get(), 2);
        // A remount is not sent while the node backs off, in any mount.
        let answer = Patience::None
            .scope(throttle.call(Service::SecretsManager, "us-east-1", None, throttled))
            .await;
        assert!(matches!(answer, Err(SdkError::ConstructionFailure(_))));
        assert_eq!(sent.get(), 2);
        // Another service is calm.
        let answer = Patience::None
            .scope(throttle.call(Service::Ssm, "us-east-1", None, throttled))
            .await;
        assert!(answer.is_err());
        assert_eq!(sent.get(), 3);
    }
}
