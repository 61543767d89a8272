//! Which store an object lives in: Secrets Manager or Parameter Store.
//!
//! Plain data at the bottom of the module graph, imported by `spc` (the
//! `objectType`), `store` (routing; it re-exports the type to the stores)
//! and the CLI's `validate` and `doctor`, and importing nothing from the
//! crate.

/// Which store an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// AWS Secrets Manager (`objectType: secretsmanager`).
    SecretsManager,
    /// AWS Systems Manager Parameter Store (`objectType: ssmparameter`).
    ParameterStore,
}

impl StoreKind {
    /// The SecretProviderClass spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretsManager => "secretsmanager",
            StoreKind::ParameterStore => "ssmparameter",
        }
    }
}
