//! Entry points for the fuzz targets (`fuzz/`) and their replay test
//! (`tests/it/fuzz_replay.rs`): one function per target, taking the fuzzer's
//! bytes.
//!
//! Each function feeds the bytes to one of ascp's own hostile-input parsers
//! and checks, beyond "no panic", the properties the rest of the program
//! relies on (an accepted file name has no `..` element, an accepted mode is
//! at most 0o777, ...). A broken property panics, which is what a fuzzer
//! reports. None of these functions touches the network, the file system,
//! the AWS SDK's clients, kube or tonic (the `:authority` target drives the
//! socket layer's pure frame rewriter, not a connection).
//!
//! Not part of the API, and not in the shipped binary: the module exists
//! only with the `fuzzing` cargo feature, which the fuzz crate enables and
//! the package's tests get through its dev-dependency on itself
//! (`Cargo.toml`). It is public only so that those separate crates reach it.

use crate::jmes;
use crate::secret::SecretBytes;
use crate::spc::objects::{self, PathTranslation};
use crate::spc::{Attributes, MountParams};

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory) and its entry function.
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every fuzz target, in the order the replay test runs them.
///
pub const TARGETS: &[Target] = &[
    Target {
        name: "attributes",
        run: attributes,
    },
    Target {
        name: "objects",
        run: objects,
    },
    Target {
        name: "jmespath",
        run: jmespath,
    },
    Target {
        name: "file_names",
        run: file_names,
    },
    Target {
        name: "agent_answer",
        run: agent_answer,
    },
    Target {
        name: "authority",
        run: authority,
    },
];

/// The request's `attributes` JSON through [`Attributes::parse`] and
/// [`MountParams::from_attributes`].
pub fn attributes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(attrs) = Attributes::parse(&text) else {
        return;
    };
    let Ok(params) = MountParams::from_attributes(&attrs) else {
        return;
    };
    assert!(!params.objects.is_empty(), "a mount with no object passed");
    assert!(
        params.objects.len() <= objects::MAX_OBJECTS,
        "more objects than the limit passed"
    );
    check_specs(&params.objects);
    if let (Some(p), Some(f)) = (&params.region, &params.failover_region) {
        assert_ne!(p, f, "failover region equal to the primary passed");
    }
    for region in [&params.region, &params.failover_region]
        .into_iter()
        .flatten()
    {
        assert!(crate::spc::check_region("region", region).is_ok());
    }
    let primary = params.region.as_deref().unwrap_or("us-east-1");
    let _ = objects::check_regions(&params.objects, primary, params.failover_region.as_deref());
}

/// The `objects` YAML through [`objects::parse`]. The first byte picks the
/// path translation and whether a failover region is set; the rest is the
/// YAML.
pub fn objects(data: &[u8]) {
    let Some((&selector, yaml)) = data.split_first() else {
        return;
    };
    let translation = match selector % 4 {
        0 => PathTranslation::Replace('_'),
        1 => PathTranslation::Off,
        2 => PathTranslation::Replace('-'),
        _ => PathTranslation::Replace(char::from(b'a' + selector % 26)),
    };
    let has_failover = selector & 0x80 != 0;
    let yaml = String::from_utf8_lossy(yaml);
    if let Ok(specs) = objects::parse(&yaml, &translation, has_failover) {
        assert!(!specs.is_empty(), "an empty objects list passed");
        check_specs(&specs);
        let _ = objects::check_regions(&specs, "us-east-1", has_failover.then_some("us-west-2"));
    }
}

/// JMESPath over arbitrary JSON: the expression, a NUL byte, then the value
/// (the whole input is the value when there is no NUL). The expression goes
/// through [`jmes::check_expression`] and [`jmes::Document::extract`], the
/// value through [`jmes::Document::parse`] and the one-shot [`jmes::extract`].
/// Beyond "no panic": a result is within the value bound and was reached
/// within the work bound, and an evaluation under far smaller bounds either
/// is refused or gives the very same result (bounds refuse, they never
/// alter).
pub fn jmespath(data: &[u8]) {
    let (expr, value) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"@"[..], data),
    };
    let expr = String::from_utf8_lossy(expr);
    let checked = jmes::check_expression(&expr);
    let value = SecretBytes::new(value.to_vec());
    let one_shot = jmes::extract(&value, &expr);
    if let Ok(document) = jmes::Document::parse(&value) {
        let extracted = document.extract(&expr);
        assert_eq!(
            extracted.is_ok(),
            one_shot.is_ok(),
            "one-shot and document extraction disagree"
        );
        if extracted.is_ok() {
            assert!(checked.is_ok(), "an expression refused by the check ran");
        }
        jmespath_within_bounds(&document, &expr);
    } else {
        assert!(
            one_shot.is_err(),
            "extraction from a value that is not JSON"
        );
    }
}

/// The budget properties of one evaluation (see [`jmespath`]).
fn jmespath_within_bounds(document: &jmes::Document, expr: &str) {
    const SMALL: jmes::Limits = jmes::Limits {
        value_bytes: 256,
        value_elements: 32,
        value_depth: 8,
        work: 256,
    };
    let full = document.extract_within(expr, jmes::LIMITS);
    if let Ok((value, work)) = &full {
        assert!(
            value.len() as u64 <= jmes::MAX_VALUE_BYTES,
            "a result over the bound"
        );
        assert!(*work <= jmes::MAX_WORK, "an evaluation over the work bound");
    }
    if let Ok((value, work)) = document.extract_within(expr, SMALL) {
        assert!(
            value.len() as u64 <= SMALL.value_bytes,
            "a result over a small bound"
        );
        assert!(work <= SMALL.work, "an evaluation over a small work bound");
        let (full, full_work) = full.expect("refused under the full bounds, not under small ones");
        assert_eq!(value.expose(), full.expose(), "the bounds changed a result");
        assert_eq!(work, full_work, "the bounds changed the work");
    }
}

/// File names and modes: the first line is a file name for
/// [`objects::check_file_name`] and [`PathTranslation::apply`], the second a
/// request `permission` for [`crate::spc::parse_permission`], the third a
/// `pathTranslation` value for [`PathTranslation::parse`].
pub fn file_names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let name = lines.next().unwrap_or_default();
    let permission = lines.next().unwrap_or_default();
    let translation = lines.next();
    if objects::check_file_name(name).is_ok() {
        check_file_name_properties(name);
    }
    if let Ok(mode) = crate::spc::parse_permission(permission) {
        assert!(mode <= 0o777, "mode {mode:o} passed");
    }
    if let Ok(t) = PathTranslation::parse(translation.filter(|t| !t.is_empty())) {
        let applied = t.apply(name);
        if let PathTranslation::Replace(c) = t
            && c != '/'
        {
            assert!(!applied.contains('/'), "a translated name kept a '/'");
        }
    }
}

/// The Pod Identity Agent's 200 answer through
/// [`crate::identity::pod_identity::parse_answer`].
pub fn agent_answer(data: &[u8]) {
    if let Ok(credentials) = crate::identity::pod_identity::parse_answer(data) {
        assert!(!credentials.access_key_id().is_empty());
        assert!(!credentials.secret_access_key().is_empty());
        // The same credentials with other secrets must print the same: then
        // neither the secret key nor the session token is in `Debug`.
        let mut other = aws_credential_types::Credentials::builder()
            .access_key_id(credentials.access_key_id())
            .secret_access_key("other secret")
            .provider_name("ascp-pod-identity-agent");
        other.set_session_token(
            credentials
                .session_token()
                .map(|_| "other token".to_owned()),
        );
        other.set_expiry(credentials.expiry());
        other.set_account_id(credentials.account_id().cloned());
        assert_eq!(
            format!("{credentials:?}"),
            format!("{:?}", other.build()),
            "Debug shows a secret"
        );
    }
}

/// What every accepted object must satisfy before the writer sees it.
fn check_specs(specs: &[objects::ObjectSpec]) {
    let mut files = std::collections::HashSet::new();
    let mut count = 0usize;
    for spec in specs {
        let names =
            std::iter::once(spec.file.as_str()).chain(spec.jmes.iter().map(|j| j.file.as_str()));
        for file in names {
            count += 1;
            assert!(
                objects::check_file_name(file).is_ok(),
                "an accepted object has a bad file name"
            );
            check_file_name_properties(file);
            assert!(files.insert(file), "two files of one mount share a name");
        }
        if let Some(mode) = spec.mode {
            assert!(mode <= 0o777, "mode {mode:o} passed");
        }
    }
    assert!(
        count <= objects::MAX_FILES,
        "more files than the limit passed"
    );
}

/// What an accepted file name must never be: the writer resolves it below
/// the target directory element by element.
fn check_file_name_properties(name: &str) {
    assert!(!name.is_empty(), "an empty file name passed");
    assert!(!name.starts_with('/'), "an absolute file name passed");
    assert!(!name.contains('\0'), "a file name with NUL passed");
    assert!(name.len() <= objects::MAX_PATH_BYTES);
    for element in name.split('/') {
        assert!(
            !matches!(element, "" | "." | ".."),
            "a file name with an {element:?} element passed"
        );
        assert!(element.len() <= objects::MAX_ELEMENT_BYTES);
    }
}

/// A client's HTTP/2 bytes (after the connection preface, which is
/// prepended) through the `:authority` rewrite of the provider socket.
///
/// The first byte picks where the stream is cut in two: a connection's bytes
/// arrive in arbitrary pieces, and the rewrite must give the same bytes to
/// the server, and the same verdict, however they are cut.
pub fn authority(data: &[u8]) {
    use crate::server::authority::Rewriter;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut stream = PREFACE.to_vec();
    stream.extend_from_slice(rest);

    let mut whole = Vec::new();
    let whole_result = Rewriter::new().feed(&stream, &mut whole);

    let at = (usize::from(cut) * stream.len() / 255).min(stream.len());
    let mut pieces = Vec::new();
    let mut rewriter = Rewriter::new();
    let pieces_result = rewriter
        .feed(&stream[..at], &mut pieces)
        .and_then(|()| rewriter.feed(&stream[at..], &mut pieces));

    assert_eq!(
        whole_result.is_ok(),
        pieces_result.is_ok(),
        "the verdict depends on how the bytes were cut"
    );
    if whole_result.is_ok() {
        assert_eq!(
            whole, pieces,
            "the output depends on how the bytes were cut"
        );
    }
}
