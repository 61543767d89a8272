//! What both stores do the same way when they list a path
//! ([`crate::store::Store::list`]): keep only the names that lie under the
//! prefix (a service's filter may match more: ListSecrets' name filter is a
//! prefix match without regard to case, and a sibling such as
//! `prod/webhooks` shares the text `prod/web`), refuse more matches than
//! the path's limit, or than the mount's files left (a budget shared by its
//! paths), as soon as they are seen, and bound the pages followed.

use crate::store::{FailureKind, PathQuery, StoreError};

/// Pages followed for one listing. At ten parameters a page (the most
/// GetParametersByPath returns) the limit of matches takes 26; ListSecrets
/// pages hold up to 100 names, most of them possibly outside the prefix.
pub(crate) const MAX_PAGES: usize = 1000;

/// The matches of one listing, in the order found. Each holds a file of
/// the mount's budget, given back if the listing is dropped unfinished.
pub(crate) struct Matches<'a, T> {
    query: &'a PathQuery,
    found: Vec<(String, T)>,
}

impl<T> Drop for Matches<'_, T> {
    fn drop(&mut self) {
        self.query.budget.give_back(self.found.len());
    }
}

impl<'a, T> Matches<'a, T> {
    pub(crate) fn new(query: &'a PathQuery) -> Self {
        Matches {
            query,
            found: Vec::new(),
        }
    }

    /// Keeps `name` with `value` if it is a match; an error once there are
    /// more than the limit. A name listed twice (a page boundary moving
    /// under a concurrent write) is kept once.
    pub(crate) fn push(&mut self, name: String, value: T) -> Result<(), StoreError> {
        if !self.query.matches(&name) {
            tracing::debug!(object = %name, prefix = %self.query.prefix, "listed outside the path; left out");
            return Ok(());
        }
        if self.found.iter().any(|(n, _)| *n == name) {
            return Ok(());
        }
        if self.found.len() == self.query.limit {
            return Err(StoreError::new(
                FailureKind::InvalidArgument,
                None,
                format!(
                    "more than {} objects under {}, the limit per path",
                    self.query.limit,
                    crate::bounded_text::escape_bounded(&self.query.prefix, 200)
                ),
            ));
        }
        if !self.query.budget.take() {
            return Err(StoreError::new(
                FailureKind::InvalidArgument,
                None,
                format!(
                    "more than {} files in the mount with the objects under {} and its other paths",
                    self.query.budget.limit(),
                    crate::bounded_text::escape_bounded(&self.query.prefix, 200)
                ),
            ));
        }
        self.found.push((name, value));
        Ok(())
    }

    /// The matches, in name order; their files stay taken from the budget.
    pub(crate) fn into_sorted(mut self) -> Vec<(String, T)> {
        let mut found = std::mem::take(&mut self.found);
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

/// The error when a listing still has pages after [`MAX_PAGES`].
pub(crate) fn too_many_pages(operation: &str, query: &PathQuery) -> StoreError {
    StoreError::new(
        FailureKind::Internal,
        None,
        format!(
            "{operation}: still more pages under {} after {MAX_PAGES}",
            crate::bounded_text::escape_bounded(&query.prefix, 200)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MatchBudget;

    fn query(recursive: bool, limit: usize) -> PathQuery {
        PathQuery {
            prefix: "prod/web/".into(),
            recursive,
            limit,
            budget: MatchBudget::new(limit, limit),
        }
    }

    #[test]
    fn only_names_under_the_prefix_are_kept() {
        let q = query(false, 10);
        let mut m = Matches::new(&q);
        for name in [
            "prod/web/b",
            "prod/webhooks",
            "prod/web/a",
            "PROD/web/c",
            "prod/web/nested/d",
            "prod/web/",
            "prod/web/a",
        ] {
            m.push(name.to_owned(), ()).unwrap();
        }
        let names: Vec<String> = m.into_sorted().into_iter().map(|(n, ())| n).collect();
        assert_eq!(names, ["prod/web/a", "prod/web/b"]);

        let q = query(true, 10);
        let mut m = Matches::new(&q);
        m.push("prod/web/nested/d".into(), ()).unwrap();
        assert_eq!(m.into_sorted().len(), 1);
    }

    #[test]
    fn more_than_the_limit_is_an_error() {
        let q = query(false, 2);
        let mut m = Matches::new(&q);
        m.push("prod/web/a".into(), ()).unwrap();
        m.push("prod/web/b".into(), ()).unwrap();
        m.push("prod/other".into(), ()).unwrap();
        let e = m.push("prod/web/c".into(), ()).unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidArgument);
        assert!(
            e.message.contains("more than 2 objects under prod/web/"),
            "{e}"
        );
    }

    #[test]
    fn paths_share_the_mounts_files_and_a_failed_listing_gives_its_back() {
        let budget = MatchBudget::new(3, 1024);
        let a = PathQuery {
            budget: budget.clone(),
            ..query(false, 10)
        };
        let b = PathQuery {
            prefix: "prod/api/".into(),
            ..a.clone()
        };
        let mut first = Matches::new(&a);
        first.push("prod/web/a".into(), ()).unwrap();
        first.push("prod/web/b".into(), ()).unwrap();
        let kept = first.into_sorted();
        assert_eq!(kept.len(), 2);

        let mut second = Matches::new(&b);
        second.push("prod/api/a".into(), ()).unwrap();
        let e = second.push("prod/api/b".into(), ()).unwrap_err();
        assert!(
            e.message
                .contains("more than 1024 files in the mount with the objects under prod/api/"),
            "{e}"
        );
        // The failed listing is dropped: its one file comes back.
        drop(second);
        let mut third = Matches::new(&b);
        third.push("prod/api/a".into(), ()).unwrap();
        assert!(third.push("prod/api/b".into(), ()).is_err());
    }
}
