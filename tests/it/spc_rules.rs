//! Every rule of the SecretProviderClass contract (docs/secretproviderclass.md:
//! parameters and object descriptors), each from its valid and its invalid
//! side, plus the hostile inputs of issue 2, through the public API only.
//!
//! An invalid case asserts that the message names the object, the field and
//! the rule, so what reaches `kubectl describe pod` is enough to act on.
//! Hostile cases assert that parsing stops at the limit (the error names
//! it), because each mount runs this code on input any namespace can write;
//! their cost is never timed here, so a busy machine cannot fail them.

use ascp::error::Error;
use ascp::spc::objects::{self, Arn, MAX_OBJECTS, check_file_name, check_regions};
use ascp::spc::{
    self, Attributes, MAX_ATTRIBUTES_BYTES, MountParams, ObjectSpec, PathTranslation, Place,
    Warning, keys,
};
use ascp::store::{AddressPreference, StoreKind};

const UNDERSCORE: PathTranslation = PathTranslation::Replace('_');

fn parse_with(
    yaml: &str,
    translation: PathTranslation,
    failover: bool,
) -> Result<Vec<ObjectSpec>, Vec<String>> {
    objects::parse(yaml, &translation, failover)
}

/// Parses with the default translation and a failover region set.
fn ok(yaml: &str) -> Vec<ObjectSpec> {
    parse_with(yaml, UNDERSCORE, true)
        .unwrap_or_else(|e| panic!("expected valid, got {e:#?}\n--- yaml ---\n{yaml}"))
}

/// The errors of an invalid document (default translation, failover region set).
fn errs(yaml: &str) -> Vec<String> {
    errs_with(yaml, UNDERSCORE, true)
}

fn errs_with(yaml: &str, translation: PathTranslation, failover: bool) -> Vec<String> {
    match parse_with(yaml, translation, failover) {
        Ok(specs) => panic!("expected an error, got {specs:#?}\n--- yaml ---\n{yaml}"),
        Err(e) => {
            assert!(!e.is_empty(), "an invalid document must report something");
            e
        }
    }
}

/// Asserts some error contains every needle (case-insensitive).
fn assert_error(errors: &[String], needles: &[&str]) {
    let found = errors.iter().any(|e| {
        let lower = e.to_lowercase();
        needles.iter().all(|n| lower.contains(&n.to_lowercase()))
    });
    assert!(
        found,
        "no error mentions all of {needles:?}; errors: {errors:#?}"
    );
}

/// Asserts an invalid document's errors name the object and the rule.
fn rejects(yaml: &str, needles: &[&str]) -> Vec<String> {
    let e = errs(yaml);
    assert_error(&e, needles);
    e
}

/// A hostile case, labelled for the reader; its bound is what its error
/// says, not how long it took.
fn hostile<T>(_what: &str, f: impl FnOnce() -> T) -> T {
    f()
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes::from_pairs(pairs.iter().copied())
}

const ONE_SM: &str = "- objectName: db\n  objectType: secretsmanager\n";

fn params(pairs: &[(&str, &str)]) -> Result<MountParams, Error> {
    let mut all = vec![(keys::OBJECTS, ONE_SM)];
    all.extend_from_slice(pairs);
    MountParams::from_attributes(&attrs(&all))
}

fn param_error(pairs: &[(&str, &str)]) -> String {
    match params(pairs) {
        Ok(p) => panic!("expected an error for {pairs:?}, got {p:?}"),
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            e.to_string()
        }
    }
}

// ---------------------------------------------------------------------------
// §2 attributes
// ---------------------------------------------------------------------------

#[test]
fn attributes_json_object_of_strings_is_accepted() {
    let a = Attributes::parse(
        r#"{"csi.storage.k8s.io/pod.name":"web-0","objects":"- objectName: x","region":""}"#,
    )
    .unwrap();
    assert_eq!(a.get(keys::POD_NAME), Some("web-0"));
    // An empty value is treated as absent, as ASCP does.
    assert_eq!(a.get(keys::REGION), None);
    assert_eq!(a.get("missing"), None);
    assert_eq!(Attributes::parse("{}").unwrap().get(keys::OBJECTS), None);
}

#[test]
fn attributes_that_are_not_json_are_rejected_without_echo() {
    for bad in [
        "not json at all s3cr3t-value",
        r#"{"objects": "s3cr3t-value""#,
        "",
        "{'single': 's3cr3t-value'}",
    ] {
        let e = hostile("bad JSON", || Attributes::parse(bad)).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(msg.contains("not valid JSON"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "the value leaked: {msg}");
    }
}

#[test]
fn attributes_that_are_not_an_object_are_rejected() {
    for bad in [r#"["a","b"]"#, r#""s3cr3t-value""#, "42", "null"] {
        let msg = Attributes::parse(bad).unwrap_err().to_string();
        assert!(msg.contains("not a JSON object"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "{msg}");
    }
}

#[test]
fn attributes_with_non_string_values_name_the_key_not_the_value() {
    let e = Attributes::parse(
        r#"{"region":"us-east-1","csi.storage.k8s.io/serviceAccount.tokens":{"sts.amazonaws.com":{"token":"eyJs3cr3t"}},"permission":987654321,"flag":true,"none":null,"list":["s3cr3t"]}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("must be strings"), "{msg}");
    for key in [
        "csi.storage.k8s.io/serviceAccount.tokens",
        "permission",
        "flag",
        "none",
        "list",
    ] {
        assert!(msg.contains(key), "{key} not named: {msg}");
    }
    assert!(!msg.contains("\"region\""), "a good key was blamed: {msg}");
    for value in ["s3cr3t", "987654321", "true"] {
        assert!(!msg.contains(value), "value {value} leaked: {msg}");
    }
}

#[test]
fn attributes_debug_shows_keys_only() {
    let a = attrs(&[(
        keys::TOKENS,
        r#"{"sts.amazonaws.com":{"token":"eyJs3cr3t"}}"#,
    )]);
    let shown = format!("{a:?}");
    assert!(shown.contains(keys::TOKENS), "{shown}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[test]
fn ten_megabytes_of_attributes_are_rejected_at_the_limit() {
    let big = format!(r#"{{"objects":"{}"}}"#, "a".repeat(10 * 1024 * 1024));
    let e = hostile("10 MB attributes", || Attributes::parse(&big)).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("limit"), "{msg}");
    assert!(msg.len() < 300, "the message must not quote the input");
    // Just under the limit is parsed (the limit is on size, not on content).
    let under = format!(
        r#"{{"objects":"{}"}}"#,
        "a".repeat(MAX_ATTRIBUTES_BYTES - 20)
    );
    assert!(hostile("attributes at the limit", || Attributes::parse(&under)).is_ok());
}

#[test]
fn attributes_carry_nul_bytes_as_data_not_as_a_crash() {
    let a =
        Attributes::parse(r#"{"objects":"- objectName: a\u0000b\n  objectType: secretsmanager"}"#)
            .unwrap();
    // A raw NUL is not allowed in a YAML stream: the parser refuses it.
    let e = MountParams::from_attributes(&a).unwrap_err();
    assert!(matches!(e, Error::Class { .. }), "{e}");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Escaped, it is data, and refused as a control character in a name.
    let json = serde_json::json!({
        "objects": "- objectName: \"a\\0b\"\n  objectType: secretsmanager\n"
    })
    .to_string();
    let a = Attributes::parse(&json).unwrap();
    let e = MountParams::from_attributes(&a).unwrap_err();
    assert!(e.to_string().contains("control character U+0000"), "{e}");
    assert!(!e.to_string().contains('\0'), "{e}");
}

#[test]
fn from_attributes_reads_the_pod_and_the_parameters() {
    let a = attrs(&[
        (keys::POD_NAME, "web-0"),
        (keys::POD_NAMESPACE, "shop"),
        (keys::POD_UID, "uid-1"),
        (keys::SERVICE_ACCOUNT, "web"),
        (keys::TOKENS, "{}"),
        (keys::SPC, "web-secrets"),
        (keys::REGION, "eu-west-1"),
        (keys::FAILOVER_REGION, "eu-central-1"),
        (keys::OBJECTS, ONE_SM),
    ]);
    let p = MountParams::from_attributes(&a).unwrap();
    assert_eq!(p.pod.pod_name, "web-0");
    assert_eq!(p.pod.namespace, "shop");
    assert_eq!(p.pod.pod_uid, "uid-1");
    assert_eq!(p.pod.service_account, "web");
    assert!(p.pod.tokens.is_some());
    assert!(!p.pod.use_pod_identity);
    assert_eq!(p.pod.preferred_address, AddressPreference::Auto);
    assert_eq!(p.secret_provider_class, "web-secrets");
    assert_eq!(p.region.as_deref(), Some("eu-west-1"));
    assert_eq!(p.failover_region.as_deref(), Some("eu-central-1"));
    assert_eq!(p.translation, PathTranslation::Replace('_'));
    assert_eq!(p.objects.len(), 1);
}

// ---------------------------------------------------------------------------
// §2 parameters
// ---------------------------------------------------------------------------

#[test]
fn objects_parameter_is_required() {
    let e = MountParams::from_attributes(&attrs(&[(keys::REGION, "us-east-1")])).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.to_string().contains("objects"), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    // Empty is absent.
    let e = MountParams::from_attributes(&attrs(&[(keys::OBJECTS, "")])).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn objects_errors_surface_as_invalid_argument() {
    let e = MountParams::from_attributes(&attrs(&[(
        keys::OBJECTS,
        "- objectName: db\n  objectType: vault\n",
    )]))
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let Error::Class { problems } = &e else {
        panic!("expected Error::Class, got {e:?}")
    };
    assert_error(problems, &["object db (#1)", "objectType \"vault\""]);
}

#[test]
fn region_must_be_a_region_name() {
    for good in ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1"] {
        let p = params(&[(keys::REGION, good)]).unwrap();
        assert_eq!(p.region.as_deref(), Some(good));
        assert!(spc::check_region(keys::REGION, good).is_ok());
    }
    assert_eq!(params(&[(keys::REGION, "")]).unwrap().region, None);
    for bad in [
        "US-EAST-1",
        "us-east-1 ",
        "us east",
        "-us",
        "us-",
        "evil.example.com/",
        "a\0b",
    ] {
        let msg = param_error(&[(keys::REGION, bad)]);
        assert!(
            msg.contains("region") && msg.contains("not a region name"),
            "{msg}"
        );
    }
    let long = "a".repeat(65);
    assert!(param_error(&[(keys::REGION, &long)]).contains("not a region name"));
}

#[test]
fn failover_region_must_differ_from_the_primary() {
    let p = params(&[
        (keys::REGION, "us-east-1"),
        (keys::FAILOVER_REGION, "us-west-2"),
    ])
    .unwrap();
    assert_eq!(p.failover_region.as_deref(), Some("us-west-2"));
    // Without a primary region (the node decides) it is accepted here.
    assert!(params(&[(keys::FAILOVER_REGION, "us-west-2")]).is_ok());
    let msg = param_error(&[
        (keys::REGION, "us-east-1"),
        (keys::FAILOVER_REGION, "us-east-1"),
    ]);
    assert!(
        msg.contains("failoverRegion") && msg.contains("must differ"),
        "{msg}"
    );
    let msg = param_error(&[(keys::FAILOVER_REGION, "Not A Region")]);
    assert!(
        msg.contains("failoverRegion") && msg.contains("not a region name"),
        "{msg}"
    );
}

#[test]
fn path_translation_parameter() {
    let t = |v: &str| params(&[(keys::PATH_TRANSLATION, v)]).map(|p| p.translation);
    assert_eq!(t("").unwrap(), PathTranslation::Replace('_'));
    for off in ["False", "false", "FALSE", "fAlSe"] {
        assert_eq!(t(off).unwrap(), PathTranslation::Off, "{off}");
    }
    assert_eq!(t("-").unwrap(), PathTranslation::Replace('-'));
    assert_eq!(t(".").unwrap(), PathTranslation::Replace('.'));
    assert_eq!(t("_").unwrap(), PathTranslation::Replace('_'));
    // ASCP counts bytes: two characters, or one multi-byte character, is an error.
    for bad in ["__", "no", "true", "é", "0"] {
        if bad == "0" {
            // One character is one character, even a digit.
            assert_eq!(t(bad).unwrap(), PathTranslation::Replace('0'));
            continue;
        }
        let msg = param_error(&[(keys::PATH_TRANSLATION, bad)]);
        assert!(
            msg.contains("pathTranslation") && msg.contains("single character"),
            "{msg}"
        );
    }
    assert!(
        param_error(&[(keys::PATH_TRANSLATION, "\0")]).contains("pathTranslation"),
        "a NUL translation character would put NUL in file names"
    );
}

#[test]
fn use_pod_identity_is_go_parse_bool() {
    for (v, want) in [
        ("1", true),
        ("t", true),
        ("T", true),
        ("TRUE", true),
        ("true", true),
        ("True", true),
        ("0", false),
        ("f", false),
        ("F", false),
        ("FALSE", false),
        ("false", false),
        ("False", false),
        ("", false),
    ] {
        let p = params(&[(keys::USE_POD_IDENTITY, v)]).unwrap();
        assert_eq!(p.pod.use_pod_identity, want, "{v:?}");
        if !v.is_empty() {
            assert_eq!(spc::parse_go_bool(v), Some(want), "{v:?}");
        }
    }
    for bad in ["yes", "no", "tRUE", "on", "2", " true"] {
        assert_eq!(spc::parse_go_bool(bad), None, "{bad:?}");
        let msg = param_error(&[(keys::USE_POD_IDENTITY, bad)]);
        assert!(
            msg.contains("usePodIdentity") && msg.contains("not a boolean"),
            "{msg}"
        );
    }
}

#[test]
fn preferred_address_type_is_case_insensitive() {
    for (v, want) in [
        ("", AddressPreference::Auto),
        ("auto", AddressPreference::Auto),
        ("AUTO", AddressPreference::Auto),
        ("ipv4", AddressPreference::Ipv4),
        ("IPv4", AddressPreference::Ipv4),
        ("ipv6", AddressPreference::Ipv6),
        ("IPV6", AddressPreference::Ipv6),
    ] {
        let p = params(&[
            (keys::USE_POD_IDENTITY, "true"),
            (keys::PREFERRED_ADDRESS_TYPE, v),
        ])
        .unwrap();
        assert_eq!(p.pod.preferred_address, want, "{v:?}");
        assert!(p.warnings.is_empty(), "{v:?}: {:?}", p.warnings);
    }
}

#[test]
fn unknown_preferred_address_type_is_auto_with_one_warning_under_pod_identity() {
    for bad in ["bogus", "ipv5", "dual", "v4", " ipv4"] {
        let p = params(&[
            (keys::USE_POD_IDENTITY, "true"),
            (keys::PREFERRED_ADDRESS_TYPE, bad),
        ])
        .unwrap_or_else(|e| panic!("{bad:?} must not fail the mount: {e}"));
        assert_eq!(p.pod.preferred_address, AddressPreference::Auto, "{bad:?}");
        assert_eq!(
            p.warnings,
            vec![Warning::UnknownAddressType {
                value: bad.to_owned()
            }],
            "{bad:?}"
        );
        let line = p.warnings[0].to_string();
        assert!(
            line.contains(&format!("preferredAddressType: \"{bad}\""))
                && line.contains("using auto"),
            "{line}"
        );
    }
    // Hostile values are bounded and escaped in the warning.
    let hostile_value = format!("x\ny{}", "z".repeat(10_000));
    let p = params(&[
        (keys::USE_POD_IDENTITY, "true"),
        (keys::PREFERRED_ADDRESS_TYPE, &hostile_value),
    ])
    .unwrap();
    let line = p.warnings[0].to_string();
    assert!(!line.contains('\n') && line.contains("x\\ny"), "{line}");
    assert!(line.len() < 300, "{} bytes", line.len());
}

#[test]
fn preferred_address_type_is_never_read_under_irsa() {
    for v in ["bogus", "ipv6", "IPv4", "x\ny"] {
        for irsa in [vec![], vec![(keys::USE_POD_IDENTITY, "false")]] {
            let mut pairs = irsa.clone();
            pairs.push((keys::PREFERRED_ADDRESS_TYPE, v));
            let p = params(&pairs).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert!(!p.pod.use_pod_identity);
            assert_eq!(p.pod.preferred_address, AddressPreference::Auto, "{v:?}");
            assert!(p.warnings.is_empty(), "{v:?}: {:?}", p.warnings);
        }
    }
}

#[test]
fn assume_role_arn_must_be_an_iam_role() {
    let p = params(&[(
        keys::ASSUME_ROLE_ARN,
        "arn:aws:iam::123456789012:role/reader",
    )])
    .unwrap();
    assert_eq!(
        p.pod.assume_role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/reader")
    );
    for bad in [
        "reader",
        "arn:aws:iam::123456789012:user/bob",
        "arn:aws:iam::1234:role/reader",
        "arn:aws:sts::123456789012:role/reader",
        "arn:aws:iam::123456789012:role/",
    ] {
        let msg = param_error(&[(keys::ASSUME_ROLE_ARN, bad)]);
        assert!(msg.contains("assumeRoleArn"), "{msg}");
    }
}

#[test]
fn permission_is_a_decimal_json_number_up_to_0777() {
    assert_eq!(spc::parse_permission("420").unwrap(), 0o644);
    assert_eq!(spc::parse_permission("384").unwrap(), 0o600);
    assert_eq!(spc::parse_permission("0").unwrap(), 0);
    assert_eq!(spc::parse_permission("511").unwrap(), 0o777);
    assert_eq!(spc::parse_permission(" 420 ").unwrap(), 0o644);
    for bad in [
        "512",
        "4294967296",
        "99999999999999999999999",
        "-1",
        "0644",
        "420.0",
        "4.2e2",
        "0o644",
        "",
        "rw-r--r--",
        "\"420\"",
        "null",
    ] {
        let e = hostile("permission", || spc::parse_permission(bad)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        let msg = e.to_string();
        assert!(msg.contains("permission"), "{msg}");
    }
    let msg = spc::parse_permission("512").unwrap_err().to_string();
    assert!(msg.contains("out of range"), "{msg}");
    // A long value is cut in the message.
    let long = "9".repeat(10_000);
    let msg = spc::parse_permission(&long).unwrap_err().to_string();
    assert!(msg.len() < 300, "{msg}");
}

// ---------------------------------------------------------------------------
// §3 object descriptors: names, types, ARNs
// ---------------------------------------------------------------------------

#[test]
fn object_name_is_required() {
    let specs = ok("- objectName: db\n  objectType: secretsmanager\n");
    assert_eq!(specs[0].name, "db");
    assert_eq!(specs[0].index, 0);
    for yaml in [
        "- objectType: secretsmanager\n",
        "- objectName: \"\"\n  objectType: secretsmanager\n",
        "- objectName: ~\n  objectType: secretsmanager\n",
        "- objectName: ok\n  objectType: secretsmanager\n- objectType: ssmparameter\n",
    ] {
        let e = errs(yaml);
        assert_error(&e, &["object #", "objectName", "required"]);
    }
    // The position is counted from 1.
    assert_error(
        &errs("- objectName: ok\n  objectType: secretsmanager\n- objectType: ssmparameter\n"),
        &["object #2", "objectName is required"],
    );
}

#[test]
fn object_type_is_required_unless_the_name_is_an_arn() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n- objectName: /app/key\n  objectType: ssmparameter\n",
    );
    assert_eq!(s[0].kind, StoreKind::SecretsManager);
    assert_eq!(s[1].kind, StoreKind::ParameterStore);
    let s = ok(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf\n- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/app/key\n",
    );
    assert_eq!(s[0].kind, StoreKind::SecretsManager);
    assert_eq!(s[0].arn_region.as_deref(), Some("us-east-1"));
    assert_eq!(s[1].kind, StoreKind::ParameterStore);
    assert_eq!(
        s[0].file,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    );
    assert_eq!(
        s[1].file,
        "arn:aws:ssm:us-east-1:123456789012:parameter_app_key"
    );

    rejects(
        "- objectName: db\n",
        &["object db", "objectType is required", "ARN"],
    );
    rejects(
        "- objectName: db\n  objectType: \"\"\n",
        &["object db", "objectType is required"],
    );
}

#[test]
fn object_type_must_be_secretsmanager_or_ssmparameter() {
    for bad in [
        "ssm",
        "vault",
        "SecretsManager",
        "SSMParameter",
        "secrets-manager",
    ] {
        let yaml = format!("- objectName: db\n  objectType: {bad}\n");
        rejects(&yaml, &["object db", "objectType", bad, "not one of"]);
    }
    // `ssm` is refused even beside an ssm ARN, as ASCP does.
    rejects(
        "- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/p\n  objectType: ssm\n",
        &[
            "object arn:aws:ssm:us-east-1:123456789012:parameter/p",
            "objectType \"ssm\"",
        ],
    );
}

#[test]
fn arn_must_parse() {
    let s = ok("- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:a:b:c\n");
    assert_eq!(s[0].kind, StoreKind::SecretsManager);
    let arn = Arn::parse("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/a:1").unwrap();
    assert_eq!(arn.partition, "aws-cn");
    assert_eq!(arn.service, "ssm");
    assert_eq!(arn.region, "cn-north-1");
    assert_eq!(arn.account, "123456789012");
    assert_eq!(arn.resource, "parameter/a:1");
    for bad in [
        "arn:",
        "arn:aws",
        "arn:aws:secretsmanager",
        "arn:aws:secretsmanager:us-east-1",
        "arn:aws:secretsmanager:us-east-1:123456789012",
    ] {
        assert!(Arn::parse(bad).is_none(), "{bad}");
        let yaml = format!("- objectName: \"{bad}\"\n  objectType: secretsmanager\n");
        rejects(&yaml, &[&format!("object {bad}"), "not a valid ARN"]);
        let yaml = format!("- objectName: \"{bad}\"\n");
        rejects(&yaml, &[&format!("object {bad}"), "not a valid ARN"]);
    }
    // Only names beginning with `arn:` are ARNs.
    let s = ok("- objectName: Arn:aws:x\n  objectType: secretsmanager\n");
    assert_eq!(s[0].arn_region, None);
}

#[test]
fn arn_service_must_be_secretsmanager_or_ssm() {
    rejects(
        "- objectName: arn:aws:s3:us-east-1:123456789012:bucket/x\n",
        &[
            "object arn:aws:s3:",
            "service",
            "s3",
            "neither secretsmanager nor ssm",
        ],
    );
    rejects(
        "- objectName: arn:aws:kms:us-east-1:123456789012:key/x\n",
        &["kms", "neither"],
    );
}

#[test]
fn object_type_must_agree_with_the_arn() {
    let s = ok(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectType: secretsmanager\n- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/p\n  objectType: ssmparameter\n",
    );
    assert_eq!(s[0].kind, StoreKind::SecretsManager);
    assert_eq!(s[1].kind, StoreKind::ParameterStore);
    rejects(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectType: ssmparameter\n",
        &[
            "object arn:aws:secretsmanager",
            "ssmparameter does not match the ARN",
        ],
    );
    rejects(
        "- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/p\n  objectType: secretsmanager\n",
        &[
            "object arn:aws:ssm",
            "secretsmanager does not match the ARN",
        ],
    );
    // ASCP lets `ssmparameter` pass beside any unknown service (a Go zero
    // value); a mismatch is a mismatch here.
    rejects(
        "- objectName: arn:aws:s3:us-east-1:123456789012:bucket/p\n  objectType: ssmparameter\n",
        &["object arn:aws:s3", "does not match the ARN"],
    );
}

#[test]
fn arn_region_must_match_the_primary_region() {
    let s = ok(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n- objectName: plain\n  objectType: secretsmanager\n",
    );
    assert!(check_regions(&s, "us-east-1", None).is_ok());
    assert!(check_regions(&s, "us-east-1", Some("us-west-2")).is_ok());
    let e = check_regions(&s, "eu-west-1", None).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_error(
        &e,
        &[
            "object arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            "region us-east-1",
            "must match the region eu-west-1",
        ],
    );
    // An ARN with an empty region never matches.
    let s = ok("- objectName: arn:aws:secretsmanager::123456789012:secret:db\n");
    assert_eq!(s[0].arn_region.as_deref(), Some(""));
    assert!(check_regions(&s, "us-east-1", None).is_err());
}

#[test]
fn failover_arn_region_must_match_the_failover_region() {
    let yaml = "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectAlias: db\n  failoverObject:\n    objectName: arn:aws:secretsmanager:us-west-2:123456789012:secret:db\n";
    let s = ok(yaml);
    let f = s[0].failover.as_ref().unwrap();
    assert_eq!(f.arn_region.as_deref(), Some("us-west-2"));
    assert!(check_regions(&s, "us-east-1", Some("us-west-2")).is_ok());
    let e = check_regions(&s, "us-east-1", Some("eu-west-1")).unwrap_err();
    assert_error(
        &e,
        &[
            "object arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            "failoverObject",
            "us-west-2",
            "failover region eu-west-1",
        ],
    );
    // Both wrong: both reported.
    let e = check_regions(&s, "ap-south-1", Some("eu-west-1")).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn failover_object_name_follows_the_same_type_rules() {
    // A plain failover name needs an objectType, as the primary's does.
    rejects(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectAlias: db\n  failoverObject:\n    objectName: db-replica\n",
        &[
            "object arn:aws:secretsmanager",
            "failoverObject",
            "objectType is required",
        ],
    );
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: db-replica\n",
    );
    assert_eq!(s[0].failover.as_ref().unwrap().name, "db-replica");
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: \"arn:aws:secretsmanager\"\n",
        &["object db", "failoverObject", "not a valid ARN"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: arn:aws:ssm:us-west-2:123456789012:parameter/db\n",
        &["object db", "does not match the ARN"],
    );
    // Without objectType, a failover ARN of the other store is refused.
    rejects(
        "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectAlias: db\n  failoverObject:\n    objectName: arn:aws:ssm:us-west-2:123456789012:parameter/db\n",
        &[
            "object arn:aws:secretsmanager",
            "failoverObject",
            "is not a secretsmanager",
        ],
    );
}

// ---------------------------------------------------------------------------
// §3 versions and labels
// ---------------------------------------------------------------------------

#[test]
fn ssm_parameter_takes_version_or_label_not_both() {
    let s = ok(
        "- objectName: /p/a\n  objectType: ssmparameter\n  objectVersion: \"3\"\n- objectName: /p/b\n  objectType: ssmparameter\n  objectVersionLabel: prod\n",
    );
    assert_eq!(s[0].version.as_deref(), Some("3"));
    assert_eq!(s[1].label.as_deref(), Some("prod"));
    rejects(
        "- objectName: /p/a\n  objectType: ssmparameter\n  objectVersion: \"3\"\n  objectVersionLabel: prod\n",
        &[
            "object /p/a",
            "ssmparameter",
            "objectVersionLabel and objectVersion cannot both be set on an ssmparameter",
        ],
    );
    // Through an ssm ARN too.
    rejects(
        "- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/p\n  objectVersion: \"3\"\n  objectVersionLabel: prod\n",
        &[
            "object arn:aws:ssm",
            "objectVersionLabel and objectVersion cannot both be set on an ssmparameter",
        ],
    );
    // Secrets Manager accepts both (VersionId and VersionStage), as ASCP.
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectVersion: v1\n  objectVersionLabel: AWSCURRENT\n",
    );
    assert_eq!(s[0].version.as_deref(), Some("v1"));
    assert_eq!(s[0].label.as_deref(), Some("AWSCURRENT"));
}

#[test]
fn ssm_failover_object_takes_version_or_label_not_both() {
    let s = ok(
        "- objectName: /p/a\n  objectType: ssmparameter\n  objectAlias: a\n  failoverObject:\n    objectName: /p/a-dr\n    objectVersionLabel: prod\n",
    );
    let f = s[0].failover.as_ref().unwrap();
    assert_eq!(f.label.as_deref(), Some("prod"));
    rejects(
        "- objectName: /p/a\n  objectType: ssmparameter\n  objectAlias: a\n  objectVersion: \"3\"\n  failoverObject:\n    objectName: /p/a-dr\n    objectVersion: \"3\"\n    objectVersionLabel: prod\n",
        &[
            "object /p/a",
            "failoverObject",
            "objectVersionLabel and objectVersion cannot both be set on an ssmparameter",
        ],
    );
    // For Secrets Manager it is allowed.
    ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: a\n  objectVersion: v1\n  failoverObject:\n    objectName: db-dr\n    objectVersion: v1\n    objectVersionLabel: AWSCURRENT\n",
    );
}

#[test]
fn yaml_numbers_and_booleans_are_read_as_their_text() {
    let s = ok(
        "- objectName: 12345\n  objectType: ssmparameter\n  objectVersion: 3\n- objectName: db\n  objectType: secretsmanager\n  objectVersionLabel: 2024\n  objectAlias: 7\n- objectName: x\n  objectType: secretsmanager\n  objectVersion: 1.5\n",
    );
    assert_eq!(s[0].name, "12345");
    assert_eq!(s[0].version.as_deref(), Some("3"));
    assert_eq!(s[1].label.as_deref(), Some("2024"));
    assert_eq!(s[1].alias.as_deref(), Some("7"));
    assert_eq!(s[1].file, "7");
    assert_eq!(s[2].version.as_deref(), Some("1.5"));
    // Versions and labels compare as text in the failover rule.
    ok(
        "- objectName: /p\n  objectType: ssmparameter\n  objectAlias: p\n  objectVersion: 3\n  failoverObject:\n    objectName: /p-dr\n    objectVersion: \"3\"\n",
    );
    // A structured value where a scalar belongs is an error naming the place.
    let e = errs("- objectName: db\n  objectType: secretsmanager\n  objectVersion: [1, 2]\n");
    assert_error(&e, &["not a YAML list of objects", "line 3"]);
}

// ---------------------------------------------------------------------------
// §3 file names and path translation
// ---------------------------------------------------------------------------

#[test]
fn file_name_is_the_alias_else_the_name_translated() {
    let yaml = "- objectName: /app/db/password\n  objectType: ssmparameter\n- objectName: app/api\n  objectType: secretsmanager\n  objectAlias: api/key\n";
    let s = parse_with(yaml, UNDERSCORE, false).unwrap();
    assert_eq!(s[0].file, "_app_db_password");
    assert_eq!(s[1].file, "api_key");
    let s = parse_with(yaml, PathTranslation::Replace('-'), false).unwrap();
    assert_eq!(s[0].file, "-app-db-password");
    assert_eq!(s[1].file, "api-key");
    // Off: names keep their `/` (subdirectories); leading `/` are stripped.
    let s = parse_with(yaml, PathTranslation::Off, false).unwrap();
    assert_eq!(s[0].file, "app/db/password");
    assert_eq!(s[1].file, "api/key");
    assert_eq!(PathTranslation::Off.apply("///a/b"), "a/b");
    assert_eq!(UNDERSCORE.apply("a/b/"), "a_b_");
}

#[test]
fn translation_to_slash_behaves_like_off() {
    // pathTranslation "/" replaces `/` by itself; ASCP then joins the name
    // onto the target directory, which drops any leading `/`.
    let p = params(&[(keys::PATH_TRANSLATION, "/")]).unwrap();
    let yaml = "- objectName: /app/db\n  objectType: ssmparameter\n";
    let s = parse_with(yaml, p.translation, false).unwrap();
    assert_eq!(s[0].file, "app/db");
}

#[test]
fn dot_dot_in_file_names_is_refused() {
    // ASCP's rule: `/../`, a leading `../` or a trailing `/..`, when
    // translation is off (with it on there is no `/` left).
    for bad in ["../etc/passwd", "a/../../b", "a/..", "a/../b"] {
        let yaml =
            format!("- objectName: db\n  objectType: secretsmanager\n  objectAlias: \"{bad}\"\n");
        let e = errs_with(&yaml, PathTranslation::Off, false);
        assert_error(&e, &["object db", "file name", "../"]);
        let yaml = format!("- objectName: \"{bad}\"\n  objectType: secretsmanager\n");
        let e = errs_with(&yaml, PathTranslation::Off, false);
        assert_error(&e, &[&format!("object {bad}"), "../"]);
    }
    // Translated, the same names are single file names, but ones starting
    // with `..`: refused (see `file_names_starting_with_dot_dot_are_refused`).
    rejects(
        "- objectName: ../etc/passwd\n  objectType: secretsmanager\n",
        &[
            "object ../etc/passwd",
            "file name .._etc_passwd",
            "must not start with \"..\"",
        ],
    );
    // Beyond ASCP: a bare `..` or `.` element is refused too.
    for bad in ["..", ".", "a/./b", "a//b"] {
        let yaml =
            format!("- objectName: db\n  objectType: secretsmanager\n  objectAlias: \"{bad}\"\n");
        let e = errs_with(&yaml, PathTranslation::Off, false);
        assert_error(&e, &["object db", "file name"]);
    }
    // `..` inside an element is just a name.
    let s = parse_with(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: a..b/..c\n",
        PathTranslation::Off,
        false,
    )
    .unwrap();
    assert_eq!(s[0].file, "a..b/..c");
}

#[test]
fn dot_dot_in_jmes_path_aliases_is_refused() {
    let yaml = "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: user\n      objectAlias: ../../user\n";
    let e = errs_with(yaml, PathTranslation::Off, false);
    assert_error(
        &e,
        &[
            "object db",
            "jmesPath entry #1 objectAlias file name",
            "../",
        ],
    );
    let e = errs_with(yaml, UNDERSCORE, false);
    assert_error(&e, &["file name .._.._user", "must not start with"]);
}

#[test]
fn absolute_and_nul_file_names_are_refused() {
    // With translation off leading `/` are stripped, so an absolute alias
    // lands inside the target directory, as in ASCP.
    let s = parse_with(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: /etc/passwd\n",
        PathTranslation::Off,
        false,
    )
    .unwrap();
    assert_eq!(s[0].file, "etc/passwd");
    assert!(
        check_file_name("/etc/passwd")
            .unwrap_err()
            .contains("absolute")
    );
    assert!(check_file_name("a\0b").unwrap_err().contains("NUL"));
    assert!(check_file_name("").unwrap_err().contains("empty"));
    assert!(check_file_name("ok/name.txt").is_ok());
    // In a name or alias a NUL is refused as the control character it is,
    // once (not again as a file name).
    let e = rejects(
        "- objectName: \"a\\0b\"\n  objectType: secretsmanager\n",
        &[
            "object a\\u{0}b",
            "objectName contains the control character U+0000",
        ],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: \"x\\0y\"\n",
        &[
            "object db",
            "objectAlias contains the control character U+0000",
        ],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: \"x\\0y\"\n",
        &[
            "object db",
            "jmesPath entry #1 objectAlias contains the control character",
        ],
    );
}

#[test]
fn file_name_lengths_are_bounded() {
    let element = "e".repeat(255);
    assert!(check_file_name(&element).is_ok());
    let long_element = "e".repeat(256);
    assert!(check_file_name(&long_element).unwrap_err().contains("255"));
    let deep = vec!["d".repeat(200); 21].join("/");
    assert!(deep.len() > 4096);
    assert!(check_file_name(&deep).unwrap_err().contains("4096"));
    let yaml =
        format!("- objectName: db\n  objectType: secretsmanager\n  objectAlias: {long_element}\n");
    rejects(&yaml, &["object db", "255"]);
    // objectName, alias and versions are capped too.
    let huge = "n".repeat(objects::MAX_NAME_BYTES + 1);
    let yaml =
        format!("- objectName: {huge}\n  objectType: secretsmanager\n  objectAlias: short\n");
    let e = rejects(&yaml, &["objectName is longer than"]);
    assert!(
        e.iter().all(|m| m.len() < 1000),
        "names are shortened in messages"
    );
}

// ---------------------------------------------------------------------------
// §3 file permissions
// ---------------------------------------------------------------------------

#[test]
fn file_permission_is_four_octal_digits() {
    let s = ok(
        "- objectName: a\n  objectType: secretsmanager\n  filePermission: \"0600\"\n- objectName: b\n  objectType: secretsmanager\n  filePermission: \"0777\"\n- objectName: c\n  objectType: secretsmanager\n  filePermission: \"0000\"\n- objectName: d\n  objectType: secretsmanager\n",
    );
    assert_eq!(s[0].mode, Some(0o600));
    assert_eq!(s[1].mode, Some(0o777));
    assert_eq!(s[2].mode, Some(0));
    assert_eq!(s[3].mode, None);
    assert_eq!(s[0].mode_or(0o644), 0o600);
    assert_eq!(s[3].mode_or(0o644), 0o644);
    // The leading digit (setuid, setgid, sticky) is accepted and dropped.
    let s = ok("- objectName: a\n  objectType: secretsmanager\n  filePermission: \"4755\"\n");
    assert_eq!(s[0].mode, Some(0o755));
    for bad in [
        "600", "00600", "0800", "0x1a", "rw-r", "-600", " 0600", "0o600", "06OO",
    ] {
        let yaml =
            format!("- objectName: a\n  objectType: secretsmanager\n  filePermission: \"{bad}\"\n");
        rejects(&yaml, &["object a", "filePermission", "four octal digits"]);
    }
}

#[test]
fn unquoted_file_permission_is_read_as_written() {
    // `filePermission: 0600` without quotes: the scalar is read as its text,
    // "0600", so the mode is 0600. (ASCP's YAML 1.1 reader makes it the
    // octal number 384 and then refuses "384"; accepting what the user
    // meant breaks no class that works with ASCP.)
    let s = ok("- objectName: a\n  objectType: secretsmanager\n  filePermission: 0600\n");
    assert_eq!(s[0].mode, Some(0o600));
    // A number that is not four octal digits is still refused, by its text.
    rejects(
        "- objectName: a\n  objectType: secretsmanager\n  filePermission: 600\n",
        &["object a", "filePermission \"600\"", "four octal digits"],
    );
    rejects(
        "- objectName: a\n  objectType: secretsmanager\n  filePermission: 384\n",
        &["object a", "filePermission \"384\""],
    );
}

#[test]
fn jmes_path_entries_inherit_the_object_mode() {
    let yaml = "- objectName: db\n  objectType: secretsmanager\n  filePermission: \"0640\"\n  jmesPath:\n    - path: username\n      objectAlias: user\n    - path: password\n      objectAlias: pass\n      filePermission: \"0400\"\n- objectName: api\n  objectType: secretsmanager\n  jmesPath:\n    - path: key\n      objectAlias: key\n";
    let s = ok(yaml);
    let default = 0o644;
    let mode_of = |spec: &ObjectSpec, i: usize| spec.jmes[i].mode.unwrap_or(spec.mode_or(default));
    assert_eq!(s[0].mode_or(default), 0o640);
    assert_eq!(s[0].jmes[0].mode, None);
    assert_eq!(mode_of(&s[0], 0), 0o640, "inherits the object's mode");
    assert_eq!(mode_of(&s[0], 1), 0o400, "its own mode wins");
    assert_eq!(mode_of(&s[1], 0), 0o644, "neither: the request's default");
    assert_eq!(s[0].jmes[0].path, "username");
    assert_eq!(s[0].jmes[0].alias, "user");
    assert_eq!(s[0].jmes[0].file, "user");
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: username\n      objectAlias: user\n      filePermission: \"644\"\n",
        &[
            "object db",
            "jmesPath entry #1 filePermission \"644\"",
            "four octal digits",
        ],
    );
}

// ---------------------------------------------------------------------------
// §3 jmesPath entries
// ---------------------------------------------------------------------------

#[test]
fn jmes_path_entries_need_path_and_alias() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: '\"my-key\".inner'\n      objectAlias: inner\n    - path: list[0]\n      objectAlias: first\n",
    );
    assert_eq!(s[0].jmes.len(), 2);
    assert_eq!(s[0].jmes[0].path, "\"my-key\".inner");
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - objectAlias: user\n",
        &["object db", "jmesPath entry #1", "path and objectAlias"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: a\n    - path: username\n",
        &["object db", "jmesPath entry #2", "path and objectAlias"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: \"\"\n      objectAlias: \"\"\n",
        &["object db", "jmesPath entry #1"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - ~\n",
        &["object db", "jmesPath entry #1", "empty"],
    );
}

#[test]
fn jmes_path_expressions_must_compile() {
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: \"a[\"\n      objectAlias: a\n",
        &[
            "object db",
            "jmesPath entry #1 path \"a[\"",
            "not a valid JMESPath expression",
        ],
    );
    let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
    let yaml = format!(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: \"{deep}\"\n      objectAlias: a\n"
    );
    rejects(&yaml, &["object db", "nested deeper"]);
}

// ---------------------------------------------------------------------------
// §3 failoverObject
// ---------------------------------------------------------------------------

#[test]
fn failover_object_needs_an_alias() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: db-dr\n",
    );
    assert_eq!(s[0].failover.as_ref().unwrap().name, "db-dr");
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  failoverObject:\n    objectName: db-dr\n",
        &["object db", "objectAlias is required with a failoverObject"],
    );
}

#[test]
fn failover_object_needs_a_failover_region() {
    let yaml = "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: db-dr\n";
    assert!(parse_with(yaml, UNDERSCORE, true).is_ok());
    let e = errs_with(yaml, UNDERSCORE, false);
    assert_error(
        &e,
        &[
            "object db",
            "failoverObject",
            "only when failoverRegion is set",
        ],
    );
    // Through the parameters: failoverRegion is what decides.
    let e = MountParams::from_attributes(&attrs(&[(keys::OBJECTS, yaml)])).unwrap_err();
    assert!(e.to_string().contains("failoverRegion"), "{e}");
    assert!(
        MountParams::from_attributes(&attrs(&[
            (keys::OBJECTS, yaml),
            (keys::FAILOVER_REGION, "us-west-2")
        ]))
        .is_ok()
    );
}

#[test]
fn failover_object_version_must_equal_the_object_version() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  objectVersion: v1\n  failoverObject:\n    objectName: db-dr\n    objectVersion: v1\n",
    );
    assert_eq!(
        s[0].failover.as_ref().unwrap().version.as_deref(),
        Some("v1")
    );
    for (object, failover) in [("v1", "v2"), ("v1", ""), ("", "v2")] {
        let mut yaml =
            String::from("- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n");
        if !object.is_empty() {
            yaml.push_str(&format!("  objectVersion: {object}\n"));
        }
        yaml.push_str("  failoverObject:\n    objectName: db-dr\n");
        if !failover.is_empty() {
            yaml.push_str(&format!("    objectVersion: {failover}\n"));
        }
        rejects(
            &yaml,
            &["object db", "failoverObject objectVersion must equal"],
        );
    }
    // Labels may differ.
    ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  objectVersionLabel: AWSCURRENT\n  failoverObject:\n    objectName: db-dr\n    objectVersionLabel: AWSPENDING\n",
    );
}

#[test]
fn failover_target_falls_back_to_the_object() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: a\n  objectVersionLabel: L1\n  failoverObject:\n    objectName: db-dr\n- objectName: api\n  objectType: secretsmanager\n  objectAlias: b\n  objectVersionLabel: L1\n  failoverObject:\n    objectName: api-dr\n    objectVersionLabel: L2\n- objectName: plain\n  objectType: secretsmanager\n  objectVersion: v9\n",
    );
    assert_eq!(
        s[0].failover_target(),
        ("db-dr".into(), None, Some("L1".into()))
    );
    assert_eq!(
        s[1].failover_target(),
        ("api-dr".into(), None, Some("L2".into()))
    );
    assert_eq!(
        s[2].failover_target(),
        ("plain".into(), Some("v9".into()), None)
    );
    // A failoverObject without objectName is ignored, as ASCP does.
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  failoverObject:\n    objectVersionLabel: L2\n",
    );
    assert!(s[0].failover.is_none());
}

// ---------------------------------------------------------------------------
// §3 duplicates
// ---------------------------------------------------------------------------

const DUP: &str = "objectName repeats object #1";

fn two(a: &str, b: &str) -> String {
    format!(
        "- objectName: db\n  objectType: secretsmanager\n{a}- objectName: db\n  objectType: secretsmanager\n{b}"
    )
}

#[test]
fn duplicate_case_1_same_alias_no_labels() {
    rejects(
        &two("  objectAlias: a\n", "  objectAlias: a\n"),
        &["object db", DUP],
    );
    // Valid side: same name, different aliases.
    let s = ok(&two("  objectAlias: a\n", "  objectAlias: b\n"));
    assert_eq!((s[0].file.as_str(), s[1].file.as_str()), ("a", "b"));
}

#[test]
fn duplicate_case_2_no_alias_same_label() {
    rejects(
        &two("  objectVersionLabel: L\n", "  objectVersionLabel: L\n"),
        &["object db", DUP],
    );
    // Different labels pass ASCP's rule; without aliases both would be the
    // file `db`, which our own rule refuses (ASCP lets the last one win).
    let e = errs(&two(
        "  objectVersionLabel: L1\n",
        "  objectVersionLabel: L2\n",
    ));
    assert!(!e.iter().any(|m| m.contains(DUP)), "{e:?}");
    assert_error(
        &e,
        &["object db", "file name db", "is produced by object #1 too"],
    );
    // With aliases they are two files.
    ok(&two(
        "  objectVersionLabel: AWSCURRENT\n  objectAlias: current\n",
        "  objectVersionLabel: AWSPREVIOUS\n  objectAlias: previous\n",
    ));
}

#[test]
fn duplicate_case_3_same_alias_same_label() {
    rejects(
        &two(
            "  objectAlias: a\n  objectVersionLabel: L\n",
            "  objectAlias: a\n  objectVersionLabel: L\n",
        ),
        &["object db", DUP],
    );
    // Valid side of the name rule: same alias, different labels. The alias
    // itself is then used twice, which the alias rule refuses.
    let e = errs(&two(
        "  objectAlias: a\n  objectVersionLabel: L1\n",
        "  objectAlias: a\n  objectVersionLabel: L2\n",
    ));
    assert!(!e.iter().any(|m| m.contains(DUP)), "{e:?}");
    assert_error(&e, &["object db", "objectAlias a is already used"]);
    ok(&two(
        "  objectAlias: a\n  objectVersionLabel: L\n",
        "  objectAlias: b\n  objectVersionLabel: L\n",
    ));
}

#[test]
fn duplicate_case_4_no_alias_no_label() {
    rejects(&two("", ""), &["object db", DUP]);
    // Valid side: one of them aliased.
    let s = ok(&two("", "  objectAlias: db-copy\n"));
    assert_eq!((s[0].file.as_str(), s[1].file.as_str()), ("db", "db-copy"));
    // The rule compares with the last object of that name, as ASCP does.
    let yaml = format!(
        "{}- objectName: db\n  objectType: secretsmanager\n  objectAlias: c\n",
        two("", "  objectAlias: b\n")
    );
    ok(&yaml);
}

#[test]
fn duplicate_rule_ignores_versions() {
    // objectVersion plays no part in ASCP's duplicate rule.
    rejects(
        &two("  objectVersion: v1\n", "  objectVersion: v2\n"),
        &["object db", DUP],
    );
}

#[test]
fn object_alias_used_twice_is_refused() {
    rejects(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: same\n- objectName: b\n  objectType: ssmparameter\n  objectAlias: same\n",
        &["object b", "objectAlias same is already used"],
    );
    ok(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: one\n- objectName: b\n  objectType: ssmparameter\n  objectAlias: two\n",
    );
}

#[test]
fn jmes_alias_colliding_with_an_earlier_alias_is_refused() {
    // With the object's own alias.
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: creds\n  jmesPath:\n    - path: user\n      objectAlias: creds\n",
        &["object db", "jmesPath objectAlias creds is already used"],
    );
    // With an earlier object's alias.
    rejects(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: user\n- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: user\n      objectAlias: user\n",
        &["object db", "jmesPath objectAlias user is already used"],
    );
    // With an earlier jmesPath alias, in the same object or another.
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: x\n    - path: b\n      objectAlias: x\n",
        &["object db", "jmesPath objectAlias x is already used"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: x\n- objectName: api\n  objectType: secretsmanager\n  jmesPath:\n    - path: b\n      objectAlias: x\n",
        &["object api", "jmesPath objectAlias x is already used"],
    );
    // A later object alias equal to an earlier jmesPath alias.
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: a\n      objectAlias: x\n- objectName: api\n  objectType: secretsmanager\n  objectAlias: x\n",
        &["object api", "objectAlias x is already used"],
    );
    // Distinct aliases are fine.
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: db\n  jmesPath:\n    - path: a\n      objectAlias: db-a\n    - path: b\n      objectAlias: db-b\n",
    );
    assert_eq!(s[0].jmes.len(), 2);
}

#[test]
fn two_files_with_one_name_are_refused() {
    // Beyond ASCP: different names translating to the same file.
    let e = errs(
        "- objectName: a/b\n  objectType: secretsmanager\n- objectName: a_b\n  objectType: secretsmanager\n",
    );
    assert_error(
        &e,
        &[
            "object a_b",
            "file name a_b",
            "is produced by object #1 too",
        ],
    );
    // A jmesPath alias equal to an earlier unaliased object's name.
    let e = errs(
        "- objectName: user\n  objectType: secretsmanager\n- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: u\n      objectAlias: user\n",
    );
    assert_error(&e, &["file name user", "is produced by object #1 too"]);
}

// ---------------------------------------------------------------------------
// §3 list shape
// ---------------------------------------------------------------------------

#[test]
fn null_list_entries_are_refused() {
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n-\n",
        &["object #2", "empty (null) entry"],
    );
    rejects("- ~\n", &["object #1", "empty (null) entry"]);
    rejects("- null\n", &["object #1", "empty (null) entry"]);
    rejects("[null, null]", &["object #2", "empty (null) entry"]);
}

#[test]
fn objects_must_be_a_yaml_list() {
    for bad in [
        "objectName: db\nobjectType: secretsmanager\n",
        "just a string",
        "42",
        "- just a string",
        "- [a, b]",
        "{",
        "- objectName: db\n objectType: bad-indent\n   x: y",
    ] {
        let e = hostile("not a list", || errs(bad));
        assert_error(&e, &["objects", "not a YAML list of objects"]);
    }
    rejects("[]", &["objects list is empty"]);
    rejects("# only a comment\n", &["objects list is empty"]);
    // JSON is YAML.
    let s = ok(r#"[{"objectName": "db", "objectType": "secretsmanager", "objectVersion": 3}]"#);
    assert_eq!(s[0].version.as_deref(), Some("3"));
}

#[test]
fn unknown_fields_are_ignored_as_in_ascp() {
    let s = ok(
        "- objectName: db\n  objectType: secretsmanager\n  comment: whatever\n  extra: [1, {a: b}]\n",
    );
    assert_eq!(s[0].name, "db");
}

#[test]
fn field_names_match_case_insensitively_as_in_ascp() {
    // ASCP decodes through Go's encoding/json, which matches field names
    // without regard to case; a class written that way must keep working.
    let s = ok(
        "- objectname: db\n  OBJECTTYPE: secretsmanager\n  ObjectAlias: creds\n  objectversionlabel: AWSPREVIOUS\n  FilePermission: \"0600\"\n  JMESPath:\n    - Path: username\n      objectalias: user\n      filepermission: \"0400\"\n  FailoverObject:\n    ObjectName: db-dr\n    objectversion: \"\"\n",
    );
    let o = &s[0];
    assert_eq!(o.name, "db");
    assert_eq!(o.kind, StoreKind::SecretsManager);
    assert_eq!(o.alias.as_deref(), Some("creds"));
    assert_eq!(o.label.as_deref(), Some("AWSPREVIOUS"));
    assert_eq!(o.mode, Some(0o600));
    assert_eq!(o.jmes[0].path, "username");
    assert_eq!(o.jmes[0].alias, "user");
    assert_eq!(o.jmes[0].mode, Some(0o400));
    assert_eq!(o.failover.as_ref().unwrap().name, "db-dr");
}

#[test]
fn repeated_keys_keep_the_last_value_as_in_ascp() {
    // ASCP's YAML reader lets a repeated key's last value win.
    let s = ok("- objectName: first\n  objectType: secretsmanager\n  objectName: second\n");
    assert_eq!(s[0].name, "second");
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

#[test]
fn ten_thousand_objects_are_refused_by_a_limit() {
    let mut yaml = String::new();
    for i in 0..10_000 {
        yaml.push_str(&format!(
            "- objectName: s{i}\n  objectType: secretsmanager\n"
        ));
    }
    let e = hostile("10,000 objects", || errs(&yaml));
    assert_eq!(e.len(), 1, "one error, not one per object");
    assert_error(&e, &["limit", &MAX_OBJECTS.to_string()]);
    // Through the attributes: InvalidArgument.
    let err = hostile("10,000 objects via attributes", || {
        MountParams::from_attributes(&attrs(&[(keys::OBJECTS, &yaml)]))
    })
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // The limit itself is accepted.
    let mut at_limit = String::new();
    for i in 0..MAX_OBJECTS {
        at_limit.push_str(&format!(
            "- objectName: s{i}\n  objectType: secretsmanager\n"
        ));
    }
    assert_eq!(
        hostile("objects at the limit", || ok(&at_limit)).len(),
        MAX_OBJECTS
    );
}

#[test]
fn too_many_files_are_refused() {
    let mut yaml = String::new();
    for i in 0..5 {
        yaml.push_str(&format!(
            "- objectName: s{i}\n  objectType: secretsmanager\n  jmesPath:\n"
        ));
        for j in 0..250 {
            yaml.push_str(&format!("    - path: k{j}\n      objectAlias: s{i}-k{j}\n"));
        }
    }
    let e = hostile("1255 files", || errs(&yaml));
    assert_error(&e, &["files", "limit", &objects::MAX_FILES.to_string()]);
}

#[test]
fn oversized_objects_yaml_is_refused_by_a_limit() {
    let yaml = format!(
        "- objectName: db\n  objectType: secretsmanager\n  comment: \"{}\"\n",
        "x".repeat(10 * 1024 * 1024)
    );
    let e = hostile("10 MB objects", || errs(&yaml));
    assert_error(&e, &["bytes", "limit"]);
    assert!(e[0].len() < 300, "the message must not quote the input");
}

#[test]
fn deeply_nested_yaml_is_refused_by_a_limit() {
    for (what, yaml) in [
        ("flow [", "[".repeat(10_000)),
        (
            "flow [] closed",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        ("flow {", "{a: ".repeat(10_000)),
        (
            "block",
            (0..400)
                .map(|i| format!("{}- \n", "  ".repeat(i)))
                .collect::<String>(),
        ),
        (
            "inside an object",
            format!(
                "- objectName: db\n  objectType: secretsmanager\n  extra: {}{}\n",
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ),
    ] {
        let e = hostile(what, || errs(&yaml));
        assert_error(&e, &["not a YAML list of objects"]);
        assert!(e[0].len() < 500, "{what}: message too long: {}", e[0].len());
    }
}

#[test]
fn yaml_alias_bombs_are_refused_by_a_limit() {
    let laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    // As the objects list itself, and hidden in an ignored field.
    let as_list = String::from(
        "- &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n- &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n- &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n- &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n- &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n- &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n- &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n- &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n- &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
    );
    let in_field = format!(
        "- objectName: db\n  objectType: secretsmanager\n  extra:\n{}",
        laughs
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let in_objects = {
        // Each object replays an anchor that is itself a bomb.
        let mut y = format!(
            "- objectName: base\n  objectType: secretsmanager\n  extra: &x\n{}",
            laughs
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        for i in 0..200 {
            y.push_str(&format!(
                "- objectName: o{i}\n  objectType: secretsmanager\n  extra: *x\n"
            ));
        }
        y
    };
    let as_jmes = format!(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n{}",
        as_list
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    for (what, yaml) in [
        ("bomb as list", as_list),
        ("bomb as jmesPath", as_jmes),
        ("bomb in a field", in_field),
        ("bomb replayed", in_objects),
    ] {
        let result = hostile(what, || parse_with(&yaml, UNDERSCORE, true));
        let e = result.expect_err(what);
        assert!(!e.is_empty());
        assert!(e[0].len() < 500, "{what}: {}", e[0]);
    }
    // A few aliases in a real class are fine (e.g. a shared failoverObject).
    let s = ok(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  failoverObject: &f\n    objectName: shared\n- objectName: b\n  objectType: secretsmanager\n  objectAlias: b\n  failoverObject: *f\n",
    );
    assert_eq!(s[1].failover.as_ref().unwrap().name, "shared");
}

#[test]
fn nul_bytes_in_yaml_are_refused() {
    // A raw NUL is not allowed in a YAML stream.
    let e = hostile("raw NUL", || {
        errs("- objectName: a\0b\n  objectType: secretsmanager\n")
    });
    assert!(!e.is_empty());
    // As an escape it is data, refused as a control character.
    rejects(
        "- objectName: \"a\\0b\"\n  objectType: secretsmanager\n",
        &["U+0000"],
    );
    let e = rejects(
        "- objectName: \"a\\x00b\"\n  objectType: secretsmanager\n  objectAlias: \"c\\u0000\"\n",
        &["objectAlias contains the control character U+0000"],
    );
    assert_error(&e, &["objectName contains the control character U+0000"]);
}

#[test]
fn hostile_scalars_are_shortened_in_messages() {
    let long = "z".repeat(5000);
    let yaml = format!("- objectName: db\n  objectType: {long}\n");
    let e = errs(&yaml);
    assert!(e.iter().all(|m| m.len() < 600), "{}", e[0].len());
    assert_error(&e, &["object db", "objectType"]);
    // Parser messages that quote the document are escaped too.
    for raw in [
        "- objectName: a\u{1b}[31mred\r\n",
        "- objectName: a\0b\n",
        "- [\u{85}\n",
    ] {
        let e = errs(raw);
        assert!(
            e.iter().all(|m| !m.chars().any(char::is_control)),
            "{raw:?}: {e:?}"
        );
    }
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let e = errs(
        "- objectName: a\n  objectType: vault\n- objectName: b\n  objectType: secretsmanager\n  filePermission: \"999\"\n- ~\n",
    );
    assert_error(&e, &["object a", "vault"]);
    assert_error(&e, &["object b", "filePermission"]);
    assert_error(&e, &["object #3", "null"]);
}

#[test]
fn the_largest_class_the_limits_allow_is_accepted() {
    // Every object with every field and a failoverObject, and as many
    // jmesPath entries as the file limit leaves: the YAML caps must not
    // refuse what the object and file caps allow.
    let jmes_total = objects::MAX_FILES - MAX_OBJECTS;
    let per_object = jmes_total / MAX_OBJECTS;
    let mut yaml = String::new();
    for i in 0..MAX_OBJECTS {
        yaml.push_str(&format!(
            "- objectName: secret-{i}\n  objectType: secretsmanager\n  objectAlias: alias-{i}\n  objectVersion: v{i}\n  objectVersionLabel: AWSCURRENT\n  filePermission: \"0640\"\n  failoverObject:\n    objectName: secret-{i}-dr\n    objectVersion: v{i}\n    objectVersionLabel: AWSCURRENT\n  jmesPath:\n"
        ));
        for j in 0..per_object {
            yaml.push_str(&format!(
                "    - path: key{j}\n      objectAlias: alias-{i}-{j}\n      filePermission: \"0400\"\n"
            ));
        }
    }
    let specs = hostile("the largest class", || ok(&yaml));
    assert_eq!(specs.len(), MAX_OBJECTS);
    let files: usize = specs.iter().map(|s| 1 + s.jmes.len()).sum();
    assert_eq!(files, objects::MAX_FILES);
}

#[test]
fn documents_over_the_node_cap_are_refused_by_a_limit() {
    let many = format!(
        "- objectName: a\n  objectType: secretsmanager\n  extra: [{}]\n",
        vec!["x"; objects::MAX_YAML_NODES].join(",")
    );
    let e = hostile("node cap", || errs(&many));
    assert_error(&e, &["not a YAML list of objects", "budget"]);
    // Replayed aliases count too.
    let mut replayed = String::from(
        "- objectName: base\n  objectType: secretsmanager\n  extra: &x\n    a: &a [x,x,x,x,x,x,x,x,x,x]\n    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
    );
    for i in 0..200 {
        replayed.push_str(&format!(
            "- objectName: o{i}\n  objectType: secretsmanager\n  extra: *x\n"
        ));
    }
    let e = hostile("replayed nodes", || errs(&replayed));
    assert_error(&e, &["budget"]);
}

#[test]
fn yaml_merge_keys_work_as_in_ascp() {
    let s = ok(
        "- &base\n  objectName: a\n  objectType: ssmparameter\n  filePermission: \"0600\"\n- <<: *base\n  objectName: b\n",
    );
    assert_eq!(s[1].name, "b");
    assert_eq!(s[1].kind, StoreKind::ParameterStore);
    assert_eq!(s[1].mode, Some(0o600));
}

// ---------------------------------------------------------------------------
// jmesPath evaluation (docs/fetching.md#jmespath), as the mount applies it to a fetched value
// ---------------------------------------------------------------------------

#[test]
fn jmes_path_writes_strings_as_text_others_as_json_and_never_echoes_the_value() {
    use ascp::jmes::extract;
    use ascp::secret::SecretBytes;
    let value = SecretBytes::from(
        r#"{"username":"admin","password":"s3cr3t-pw","port":5432,"db":{"host":"h"},"tags":["a"],"flag":true,"none":null,"my-key":"v"}"#.to_string(),
    );
    assert_eq!(extract(&value, "username").unwrap().expose(), b"admin");
    assert_eq!(extract(&value, "db.host").unwrap().expose(), b"h");
    assert_eq!(extract(&value, "tags[0]").unwrap().expose(), b"a");
    assert_eq!(extract(&value, "\"my-key\"").unwrap().expose(), b"v");
    for (path, json) in [
        ("port", "5432"),
        ("db", r#"{"host":"h"}"#),
        ("tags", r#"["a"]"#),
        ("flag", "true"),
    ] {
        assert_eq!(extract(&value, path).unwrap().expose(), json.as_bytes());
    }
    for path in ["missing", "none", "db.missing"] {
        let e = extract(&value, path).unwrap_err();
        assert!(e.contains("selects nothing"), "{path}: {e}");
    }
    let e = extract(&value, "a[").unwrap_err();
    assert!(e.contains("not a valid JMESPath expression"), "{e}");
    let not_json = SecretBytes::from("password=s3cr3t-pw".to_string());
    let e = extract(&not_json, "password").unwrap_err();
    assert!(e.contains("not valid JSON"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    let binary = SecretBytes::from(vec![0xff, 0xfe, 0x00]);
    assert!(extract(&binary, "a").unwrap_err().contains("not UTF-8"));
}

// ---------------------------------------------------------------------------
// Beyond ASCP: control characters, `..` file names
// ---------------------------------------------------------------------------

/// YAML double-quoted escapes of C0, DEL and C1 characters, with the code
/// point each must be reported as.
const CONTROLS: [(&str, &str); 8] = [
    ("\\n", "U+000A"),
    ("\\r", "U+000D"),
    ("\\t", "U+0009"),
    ("\\0", "U+0000"),
    ("\\x1b", "U+001B"),
    ("\\x7f", "U+007F"),
    ("\\u0085", "U+0085"),
    ("\\u009f", "U+009F"),
];

#[test]
fn control_characters_in_names_and_aliases_are_refused() {
    let with_failover = |name: &str, alias: &str, jmes_alias: &str, failover: &str| {
        format!(
            "- objectName: \"{name}\"\n  objectType: secretsmanager\n  objectAlias: \"{alias}\"\n  jmesPath:\n    - path: key\n      objectAlias: \"{jmes_alias}\"\n  failoverObject:\n    objectName: \"{failover}\"\n"
        )
    };
    for (escape, code) in CONTROLS {
        let bad = format!("a{escape}b");
        for (yaml, field) in [
            (with_failover(&bad, "al", "jm", "fo"), "objectName"),
            (with_failover("db", &bad, "jm", "fo"), "objectAlias"),
            (
                with_failover("db", "al", &bad, "fo"),
                "jmesPath entry #1 objectAlias",
            ),
            (
                with_failover("db", "al", "jm", &bad),
                "failoverObject objectName",
            ),
        ] {
            let e = errs(&yaml);
            assert_eq!(e.len(), 1, "{escape} in {field}: {e:#?}");
            assert_error(
                &e,
                &[&format!("{field} contains the control character {code}")],
            );
            assert!(
                !e[0].chars().any(char::is_control),
                "the message escapes it: {:?}",
                e[0]
            );
        }
    }
    // The valid side: any printable name, Unicode and spaces included, as
    // ASCP accepts them (AWS decides whether such a name exists).
    let s = ok(&with_failover("café ключ/名前", "a b", "ü", "db-dr ☃"));
    assert_eq!(s[0].name, "café ключ/名前");
    assert_eq!(s[0].file, "a b");
    assert_eq!(s[0].jmes[0].file, "ü");
    assert_eq!(s[0].failover.as_ref().unwrap().name, "db-dr ☃");
}

#[test]
fn file_names_starting_with_dot_dot_are_refused() {
    // What the kubelet's atomic writer keeps at the top of a volume, and
    // anything else starting with `..`, as the driver refuses.
    for bad in [
        "..data",
        "..data_tmp",
        "..2024_01_01_00_00_00.123",
        "...",
        "..x/y",
    ] {
        let e = check_file_name(bad).unwrap_err();
        assert!(e.contains("must not start with \"..\""), "{bad}: {e}");
        let yaml =
            format!("- objectName: db\n  objectType: secretsmanager\n  objectAlias: \"{bad}\"\n");
        let e = errs_with(&yaml, PathTranslation::Off, false);
        assert_error(
            &e,
            &[
                "object db (#1)",
                "objectAlias file name",
                "must not start with",
            ],
        );
    }
    // An unaliased name and a jmesPath alias alike.
    rejects(
        "- objectName: ..data\n  objectType: secretsmanager\n",
        &["object ..data (#1)", "objectName file name ..data"],
    );
    rejects(
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - path: k\n      objectAlias: ..data\n",
        &[
            "jmesPath entry #1 objectAlias file name ..data",
            "must not start with",
        ],
    );
    // The valid side: only the first element counts (nested names cannot
    // meet the writer's entries), and dots elsewhere are ordinary.
    for good in [
        ".data",
        "a..b",
        "a/..data",
        "certs/..2024",
        ".hidden/..x",
        "a/b..",
    ] {
        assert!(check_file_name(good).is_ok(), "{good}");
    }
    let s = parse_with(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: certs/..data\n",
        PathTranslation::Off,
        false,
    )
    .unwrap();
    assert_eq!(s[0].file, "certs/..data");
}

// ---------------------------------------------------------------------------
// Every problem at once
// ---------------------------------------------------------------------------

#[test]
fn an_invalid_object_still_enters_the_duplicate_rules() {
    // The first object has a bad field; its alias still counts.
    let e = errs(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: shared\n  filePermission: \"644\"\n- objectName: api\n  objectType: secretsmanager\n  objectAlias: shared\n",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_error(&e, &["object db (#1): filePermission \"644\""]);
    assert_error(
        &e,
        &["object api (#2): objectAlias shared is already used by object #1"],
    );
    // An entry without objectName: its alias and jmesPath aliases count.
    let e = errs(
        "- objectType: secretsmanager\n  objectAlias: a\n  jmesPath:\n    - path: k\n      objectAlias: b\n- objectName: x\n  objectType: secretsmanager\n  objectAlias: b\n- objectName: y\n  objectType: secretsmanager\n  objectAlias: a\n",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_error(&e, &["object #1: objectName is required"]);
    assert_error(
        &e,
        &["object x (#2): objectAlias b is already used by object #1"],
    );
    assert_error(
        &e,
        &["object y (#3): objectAlias a is already used by object #1"],
    );
    // The duplicate-name rule runs over invalid objects too.
    let e = errs(
        "- objectName: db\n  objectType: secretsmanager\n  filePermission: bad\n- objectName: db\n  objectType: secretsmanager\n",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_error(&e, &["object db (#2): objectName repeats object #1"]);
    // The valid side: distinct aliases beside an invalid object are fine.
    let e = errs(
        "- objectName: db\n  objectType: secretsmanager\n  objectAlias: a\n  filePermission: bad\n- objectName: api\n  objectType: secretsmanager\n  objectAlias: b\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
}

/// A bad parameter, a bad field, a duplicate alias (on the object with the
/// bad field) and an ARN in another region than the class's.
const FOUR_PROBLEMS: &str = "- objectName: db\n  objectType: secretsmanager\n  objectAlias: shared\n  filePermission: \"644\"\n- objectName: api\n  objectType: secretsmanager\n  objectAlias: shared\n- objectName: arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf\n  objectAlias: x\n";

const FOUR_EXPECTED: [&str; 4] = [
    "parameter pathTranslation: \"ab\" must be \"False\" or a single character",
    "object db (#1): filePermission \"644\" must be four octal digits, e.g. \"0600\"",
    "object api (#2): objectAlias shared is already used by object #1",
    "object arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf (#3): objectName the ARN's region eu-west-1 must match the region us-east-1",
];

#[test]
fn four_problems_of_four_kinds_are_reported_together() {
    let a = attrs(&[
        (keys::REGION, "us-east-1"),
        (keys::PATH_TRANSLATION, "ab"),
        (keys::OBJECTS, FOUR_PROBLEMS),
    ]);
    let problems = MountParams::check(&a, None).unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown, FOUR_EXPECTED);
    assert_eq!(
        problems[1].place,
        Place::Object {
            index: 0,
            name: Some("db".into()),
            field: "filePermission".into()
        }
    );
    assert_eq!(problems[0].place, Place::Parameter(keys::PATH_TRANSLATION));
    // A Mount gets them all in one InvalidArgument.
    let e = MountParams::from_attributes(&a).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let Error::Class { problems } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(problems, &FOUR_EXPECTED);
    assert!(
        e.to_string()
            .starts_with("invalid SecretProviderClass: 4 problem(s): "),
        "{e}"
    );
    // The valid side: the same class fixed has none.
    let fixed = FOUR_PROBLEMS
        .replace("\"644\"", "\"0644\"")
        .replacen("objectAlias: shared", "objectAlias: one", 1)
        .replace("eu-west-1", "us-east-1");
    let p = MountParams::check(
        &attrs(&[(keys::REGION, "us-east-1"), (keys::OBJECTS, &fixed)]),
        None,
    )
    .unwrap();
    assert_eq!(p.objects.len(), 3);
}

#[test]
fn every_parameter_problem_is_reported_with_the_objects() {
    let a = attrs(&[
        (keys::REGION, "US_EAST"),
        (keys::FAILOVER_REGION, "eu west"),
        (keys::PATH_TRANSLATION, "ab"),
        (keys::USE_POD_IDENTITY, "yes"),
        (keys::ASSUME_ROLE_ARN, "arn:aws:iam::1:user/x"),
        (keys::OBJECTS, "- objectName: db\n  objectType: vault\n"),
    ]);
    let problems = MountParams::check(&a, None).unwrap_err();
    let places: Vec<&Place> = problems.iter().map(|p| &p.place).collect();
    assert_eq!(
        places,
        [
            &Place::Parameter(keys::REGION),
            &Place::Parameter(keys::FAILOVER_REGION),
            &Place::Parameter(keys::PATH_TRANSLATION),
            &Place::Parameter(keys::USE_POD_IDENTITY),
            &Place::Parameter(keys::ASSUME_ROLE_ARN),
            &Place::Object {
                index: 0,
                name: Some("db".into()),
                field: "objectType".into()
            },
        ]
    );
    // A missing objects parameter is one problem among the others.
    let problems = MountParams::check(&attrs(&[(keys::PATH_TRANSLATION, "ab")]), None).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(problems[1].place, Place::Parameter(keys::OBJECTS));
}

#[test]
fn a_known_region_checks_arn_regions_with_everything_else() {
    let arn = "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n  objectAlias: db\n  failoverObject:\n    objectName: arn:aws:secretsmanager:us-west-2:123456789012:secret:db\n";
    let with = |pairs: &[(&str, &str)], region: Option<&str>| {
        let mut all = vec![(keys::OBJECTS, arn)];
        all.extend_from_slice(pairs);
        MountParams::check(&attrs(&all), region)
    };
    let failover = [(keys::FAILOVER_REGION, "us-west-2")];
    // The class names none: the caller's region is checked as its own.
    assert!(with(&failover, Some("us-east-1")).is_ok());
    assert!(
        with(&failover, None).is_ok(),
        "no region known: not checked"
    );
    let e = with(&failover, Some("eu-west-1")).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_error(
        &e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        &["objectName the ARN's region us-east-1 must match the region eu-west-1"],
    );
    let e = with(&failover, Some("Not A Region")).unwrap_err();
    assert_eq!(e[0].place, Place::Parameter(keys::REGION), "{e:#?}");
    let e = with(&failover, Some("us-west-2")).unwrap_err();
    assert_eq!(
        e[0].place,
        Place::Parameter(keys::FAILOVER_REGION),
        "{e:#?}"
    );
    // The class's own region wins over the caller's.
    assert!(
        with(
            &[(keys::REGION, "us-east-1"), failover[0]],
            Some("eu-west-1")
        )
        .is_ok()
    );
    // The failover object's ARN against the failover region.
    let e = with(&[(keys::FAILOVER_REGION, "eu-west-1")], Some("us-east-1")).unwrap_err();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].to_string().contains("failoverObject objectName"),
        "{}",
        e[0]
    );
}

#[test]
fn a_region_resolved_later_brings_every_region_problem_at_once() {
    let yaml = "- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db\n- objectName: arn:aws:ssm:us-east-1:123456789012:parameter/p\n";
    let p = MountParams::from_attributes(&attrs(&[
        (keys::OBJECTS, yaml),
        (keys::FAILOVER_REGION, "eu-west-1"),
    ]))
    .unwrap();
    assert!(p.check_resolved_region("us-east-1").is_ok());
    let e = p.check_resolved_region("eu-west-1").unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let Error::Class { problems } = &e else {
        panic!("{e:?}")
    };
    // The failover region equal to the node's, and both ARNs.
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with("parameter failoverRegion: eu-west-1 is also the primary region")
    );
    assert!(
        problems[1].contains("object arn:aws:secretsmanager"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("object arn:aws:ssm"),
        "{}",
        problems[2]
    );
    // A node label that is no region name.
    let e = p.check_resolved_region("x\ny").unwrap_err();
    assert!(
        e.to_string()
            .contains("parameter region: \"x\\ny\" is not a region name"),
        "{e}"
    );
}

#[test]
fn problems_name_their_place_bounded_and_escaped() {
    let p = spc::Problem::object(2, Some("a\nb"), "objectAlias", "is bad");
    assert_eq!(p.to_string(), "object a\\nb (#3): objectAlias is bad");
    let p = spc::Problem::object(0, None, "", "empty (null) entry");
    assert_eq!(p.to_string(), "object #1: empty (null) entry");
    let p = spc::Problem::object(0, Some(""), "objectName", "is required");
    assert_eq!(p.to_string(), "object #1: objectName is required");
    assert_eq!(
        spc::Problem::parameter(keys::REGION, "is bad").to_string(),
        "parameter region: is bad"
    );
    assert_eq!(
        spc::Problem::objects("too many").to_string(),
        "objects: too many"
    );
    let long = "n".repeat(5000);
    let p = spc::Problem::object(0, Some(&long), "objectName", "is bad");
    assert!(p.to_string().len() < 300, "{p}");
    // A class with hundreds of problems still makes a short Mount error.
    let many: String = (0..MAX_OBJECTS)
        .map(|i| {
            format!(
                "- objectName: {}{i}\n  objectType: vault\n",
                "n".repeat(150)
            )
        })
        .collect();
    let e = MountParams::from_attributes(&attrs(&[(keys::OBJECTS, &many)])).unwrap_err();
    let Error::Class { problems } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(problems.len(), MAX_OBJECTS);
    let m = e.to_string();
    assert!(m.len() < 4096, "{} bytes", m.len());
    assert!(
        m.contains(&format!("{MAX_OBJECTS} problem(s)")) && m.contains("more"),
        "{m}"
    );
}

#[test]
fn the_unknown_address_type_warning_is_logged_once_per_mount() {
    let lines = crate::support::log::CapturedLog::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for (pod_identity, value) in [("true", "bogus"), ("false", "bogus"), ("true", "IPv6")] {
            params(&[
                (keys::SPC, "web\nsecrets"),
                (keys::USE_POD_IDENTITY, pod_identity),
                (keys::PREFERRED_ADDRESS_TYPE, value),
            ])
            .unwrap();
        }
    });
    let log = lines.text();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("WARN"), "{log}");
    assert!(
        lines[0].contains("preferredAddressType: \"bogus\""),
        "{log}"
    );
    assert!(lines[0].contains("spc=web\\nsecrets"), "{log}");
}

// ---------------------------------------------------------------------------
// Through the provider's socket
// ---------------------------------------------------------------------------

use crate::support;

#[tokio::test]
async fn a_mount_reports_all_four_problems_and_touches_nothing() {
    use support::memory::{Harness, request};

    let mut h = Harness::start(false).await;
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep"), "x").unwrap();
    let req = request(
        target.path(),
        FOUR_PROBLEMS,
        &[(keys::PATH_TRANSLATION, "ab")],
    );
    let status = h.mount(req).await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{}",
        status.message()
    );
    let m = status.message();
    assert!(
        m.starts_with("invalid SecretProviderClass: 4 problem(s): "),
        "{m}"
    );
    for problem in FOUR_EXPECTED {
        assert!(m.contains(problem), "{problem:?} not in {m}");
    }
    // Nothing fetched, nothing written.
    assert!(h.backend.regions.lock().unwrap().is_empty());
    let names: Vec<_> = std::fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep"]);

    // A forged log line in a name reaches the driver escaped.
    let req = request(
        target.path(),
        "- objectName: \"db\\nINFO mount finished\"\n  objectType: secretsmanager\n",
        &[],
    );
    let status = h.mount(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(!status.message().contains('\n'), "{}", status.message());
    assert!(
        status.message().contains(
            "object db\\nINFO mount finished (#1): objectName contains the control character U+000A"
        ),
        "{}",
        status.message()
    );
    h.stop().await;
}

#[test]
fn path_objects_are_read_and_count_as_their_most_matches() {
    let specs = ok(
        "- objectName: /app/prod/**\n  objectType: ssmparameter\n- objectName: prod/web/*\n  objectType: secretsmanager\n",
    );
    let path = specs[0].path.as_ref().expect("a path");
    assert_eq!((path.prefix.as_str(), path.recursive), ("/app/prod/", true));
    assert_eq!(path.file_of("/app/prod/a/b"), "a_b");
    let path = specs[1].path.as_ref().expect("a path");
    assert_eq!((path.prefix.as_str(), path.recursive), ("prod/web/", false));
    assert!(
        ok("- objectName: prod/web\n  objectType: secretsmanager\n")[0]
            .path
            .is_none()
    );

    let paths = |n: usize| -> String {
        (0..n)
            .map(|i| format!("- objectName: p{i}/*\n  objectType: secretsmanager\n"))
            .collect()
    };
    // Matches are counted as they are listed, not before: many paths pass.
    assert_eq!(ok(&paths(200)).len(), 200);
}
