//! The memo of checked classes: the objects of each class that passed
//! [`check`], by a digest of all `check` was given. See [`Memo`] for its
//! bounds.
//!
//! Not `moka`: the memo's bounds (classes, and the YAML bytes they stand
//! for) could be one weigher, but moka's admission policy may refuse a new
//! class while the cache is full, so a node whose classes changed would
//! parse the new ones at every mount until they win a place; and its
//! evictions run as pending maintenance, so its bound holds eventually,
//! where this one holds at every insertion. A full memo here starts over:
//! the classes in use come back at their next mount, at the cost of one
//! parse each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::rules::check;
use super::{ObjectSpec, PathTranslation, Problem};

/// Classes kept by a [`Memo`].
const MEMO_ENTRIES: usize = 64;
/// Larger documents are checked every time.
const MEMO_MAX_YAML_BYTES: usize = 16 * 1024;
/// YAML bytes a [`Memo`] stands for, all classes together: what it holds
/// grows with them, and hostile classes must not make it hold much.
const MEMO_BUDGET_BYTES: usize = 256 * 1024;

/// The process's memo of [`check`], used by every mount.
static MEMO: Memo = Memo::new();

/// [`check`] through the process's [`Memo`].
pub(in crate::spc) fn check_memoized(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> (Arc<[ObjectSpec]>, Vec<Problem>) {
    MEMO.check(yaml, translation, has_failover_region)
}

/// The objects of classes that passed [`check`], by the SHA-256 of all it
/// was given.
///
/// A node mounts the same few classes again and again (every replica, every
/// rotation remount), and parsing their YAML was about 7% of a warm mount's
/// instructions (benchmarks/README.md). The answer depends only on the
/// arguments, so an answer found by their digest is the one `check` would
/// give. Only classes without problems are kept (a broken class costs its
/// sender, not the node): at most [`MEMO_ENTRIES`] of them, each of at most
/// [`MEMO_MAX_YAML_BYTES`] and together of at most [`MEMO_BUDGET_BYTES`].
/// When a class does not fit, the memo starts over.
pub(super) struct Memo {
    /// Empty until the first class is kept (`HashMap::new` is not `const`).
    classes: Mutex<Option<Classes>>,
}

/// The classes a [`Memo`] keeps.
#[derive(Default)]
struct Classes {
    /// A class's objects by the digest of its `objects`, `pathTranslation`
    /// and whether it has a `failoverRegion`.
    by_digest: HashMap<[u8; 32], Arc<[ObjectSpec]>>,
    /// The YAML bytes of the classes kept.
    yaml_bytes: usize,
}

impl Memo {
    pub(super) const fn new() -> Self {
        Self {
            classes: Mutex::new(None),
        }
    }

    /// [`check`], answered from the memo when these arguments passed it
    /// before.
    pub(super) fn check(
        &self,
        yaml: &str,
        translation: &PathTranslation,
        has_failover_region: bool,
    ) -> (Arc<[ObjectSpec]>, Vec<Problem>) {
        if yaml.len() > MEMO_MAX_YAML_BYTES {
            let (specs, problems) = check(yaml, translation, has_failover_region);
            return (specs.into(), problems);
        }
        let key = memo_key(yaml, translation, has_failover_region);
        let classes = || self.classes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(specs) = classes().as_ref().and_then(|c| c.by_digest.get(&key)) {
            return (specs.clone(), Vec::new());
        }
        let (specs, problems) = check(yaml, translation, has_failover_region);
        let specs: Arc<[ObjectSpec]> = specs.into();
        if problems.is_empty() {
            let mut classes = classes();
            let kept = classes.get_or_insert_with(Classes::default);
            if kept.by_digest.len() >= MEMO_ENTRIES
                || kept.yaml_bytes + yaml.len() > MEMO_BUDGET_BYTES
            {
                *kept = Classes::default();
            }
            if kept.by_digest.insert(key, specs.clone()).is_none() {
                kept.yaml_bytes += yaml.len();
            }
        }
        (specs, problems)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.classes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |c| c.by_digest.len())
    }
}

fn memo_key(yaml: &str, translation: &PathTranslation, has_failover_region: bool) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    match translation {
        PathTranslation::Replace(c) => {
            hash.update([b'R']);
            hash.update(u32::from(*c).to_le_bytes());
        }
        PathTranslation::Off => hash.update([b'O']),
    }
    hash.update([u8::from(has_failover_region)]);
    hash.update(yaml.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASS: &str = "- objectName: db\n  objectType: secretsmanager\n- objectName: /app/key\n  objectType: ssmparameter\n";

    #[test]
    fn the_memo_answers_as_check_does_and_keeps_only_passing_classes() {
        let memo = Memo::new();
        let underscore = PathTranslation::Replace('_');
        let (first, problems) = memo.check(CLASS, &underscore, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(&first[..], &check(CLASS, &underscore, false).0[..]);
        let (again, _) = memo.check(CLASS, &underscore, false);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second check was not remembered"
        );
        assert_eq!(memo.len(), 1);

        // Every argument is part of the key.
        let (off, _) = memo.check(CLASS, &PathTranslation::Off, false);
        assert_eq!(off[1].file, "app/key");
        assert_eq!(first[1].file, "_app_key");
        let (dash, _) = memo.check(CLASS, &PathTranslation::Replace('-'), false);
        assert_eq!(dash[1].file, "-app-key");
        memo.check(CLASS, &underscore, true);
        assert_eq!(memo.len(), 4);

        // A class with a problem is checked, and told, every time.
        let broken = "- objectName: db\n  objectType: vault\n";
        for _ in 0..2 {
            let (_, problems) = memo.check(broken, &underscore, false);
            assert_eq!(problems.len(), 1, "{problems:?}");
        }
        assert_eq!(memo.len(), 4);
    }

    #[test]
    fn the_memo_is_bounded_in_classes_and_in_size() {
        let memo = Memo::new();
        let underscore = PathTranslation::Replace('_');
        for i in 0..MEMO_ENTRIES {
            memo.check(
                &format!("- objectName: s{i}\n  objectType: secretsmanager\n"),
                &underscore,
                false,
            );
        }
        assert_eq!(memo.len(), MEMO_ENTRIES);
        memo.check(CLASS, &underscore, false);
        assert_eq!(memo.len(), 1, "a full memo starts over");

        // Large classes fill the byte budget before the count.
        let memo = Memo::new();
        let filler = "#".repeat(MEMO_MAX_YAML_BYTES - 200);
        let per_budget = MEMO_BUDGET_BYTES / MEMO_MAX_YAML_BYTES;
        for i in 0..per_budget {
            let class = format!("- objectName: s{i}\n  objectType: secretsmanager\n{filler}\n");
            memo.check(&class, &underscore, false);
        }
        assert_eq!(memo.len(), per_budget);
        let class = format!("- objectName: last\n  objectType: secretsmanager\n{filler}\n");
        memo.check(&class, &underscore, false);
        assert_eq!(
            memo.len(),
            1,
            "a class over the byte budget starts the memo over"
        );

        let padding = "#".repeat(MEMO_MAX_YAML_BYTES);
        let large = format!("{CLASS}{padding}\n");
        let (specs, problems) = memo.check(&large, &underscore, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(specs.len(), 2);
        assert_eq!(memo.len(), 1, "a large class is not kept");
    }
}
