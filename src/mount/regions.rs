//! The regions of a mount and the failover rule (docs/fetching.md#regions,
//! docs/fetching.md#failover).
//!
//! A mount has a primary region and, with `failoverRegion`, a failover
//! region. Each object is asked of both; [`choose`] decides, from what each
//! region said about the object, which answer the mount uses or which
//! region's failure fails it. It is a pure function: logging and building
//! the error are the caller's.

/// Which of a mount's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The region the SecretProviderClass, the environment or the node names.
    Primary,
    /// `failoverRegion`.
    Failover,
}

/// The regions a mount fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    /// Asked first; its value wins when both regions answer.
    pub primary: String,
    /// Asked too; its value is used when the primary has service trouble.
    pub failover: Option<String>,
}

/// What one region said about one object, as the failover rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A value, or "unchanged" on a rotation remount.
    Answered,
    /// The request was wrong or refused (HTTP 4xx class): fixing it is the
    /// user's job, so no other region may hide it.
    ClientError,
    /// Service trouble (5xx, throttling, transport): the other region may
    /// answer instead.
    ServiceError,
}

/// The failover rule's decision for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Use this region's answer.
    Use(Side),
    /// Fail the mount with this region's error.
    Fail(Side),
}

/// The failover rule: a client error from either region fails the mount;
/// service trouble in one region gives the other's answer; the primary's
/// answer wins when both answer; both in trouble fails with the primary's
/// error. Without a failover region the primary's outcome is final.
pub fn choose(primary: Outcome, failover: Option<Outcome>) -> Choice {
    use Outcome::{Answered, ClientError, ServiceError};
    match (primary, failover) {
        (Answered, None) => Choice::Use(Side::Primary),
        (_, None) | (ClientError, Some(_)) => Choice::Fail(Side::Primary),
        (_, Some(ClientError)) => Choice::Fail(Side::Failover),
        (Answered, Some(_)) => Choice::Use(Side::Primary),
        (ServiceError, Some(Answered)) => Choice::Use(Side::Failover),
        (ServiceError, Some(ServiceError)) => Choice::Fail(Side::Primary),
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome::{Answered, ClientError, ServiceError};
    use super::Side::{Failover, Primary};
    use super::*;

    #[test]
    fn a_single_region_is_final() {
        assert_eq!(choose(Answered, None), Choice::Use(Primary));
        assert_eq!(choose(ClientError, None), Choice::Fail(Primary));
        assert_eq!(choose(ServiceError, None), Choice::Fail(Primary));
    }

    #[test]
    fn client_errors_fail_whichever_region_sent_them() {
        for other in [Answered, ClientError, ServiceError] {
            assert_eq!(choose(ClientError, Some(other)), Choice::Fail(Primary));
        }
        assert_eq!(choose(Answered, Some(ClientError)), Choice::Fail(Failover));
        assert_eq!(
            choose(ServiceError, Some(ClientError)),
            Choice::Fail(Failover)
        );
    }

    #[test]
    fn service_trouble_fails_over_and_the_primary_wins_ties() {
        assert_eq!(choose(Answered, Some(Answered)), Choice::Use(Primary));
        assert_eq!(choose(Answered, Some(ServiceError)), Choice::Use(Primary));
        assert_eq!(choose(ServiceError, Some(Answered)), Choice::Use(Failover));
        assert_eq!(
            choose(ServiceError, Some(ServiceError)),
            Choice::Fail(Primary)
        );
    }
}
