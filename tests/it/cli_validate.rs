//! `ascp validate FILE`: the real binary on manifests in a temporary
//! directory. A good class prints the files a mount would produce (name,
//! mode, store, source, jmesPath) and exits 0; a bad one prints every error
//! and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn ascp(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_ascp"))
        .args(args)
        .env_remove("AWS_REGION")
        .env("RUST_LOG", "off")
        .output()
        .expect("run ascp");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write manifest");
        path
    }
}

fn validate(path: &Path, extra: &[&str]) -> Run {
    let p = path.to_str().expect("utf-8 path");
    let mut args = vec!["validate", p];
    args.extend_from_slice(extra);
    ascp(&args)
}

/// A SecretProviderClass manifest with `parameters` (already indented by 4).
fn spc(name: &str, parameters: &str) -> String {
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  provider: aws\n  parameters:\n{parameters}"
    )
}

/// Indents an objects YAML block under `objects: |`.
fn objects(yaml: &str) -> String {
    let body: String = yaml.lines().map(|l| format!("      {l}\n")).collect();
    format!("    objects: |\n{body}")
}

/// The output line for a file, split into whitespace-separated columns.
fn row<'a>(stdout: &'a str, file: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(file))
        .unwrap_or_else(|| panic!("no line for {file} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

/// Writes a class named `name` with `parameters` (each line indented by 4)
/// and an objects block.
fn class_file(dir: &Dir, name: &str, parameters: &str, objects_yaml: &str) -> PathBuf {
    dir.write(
        &format!("{name}.yaml"),
        &spc(name, &format!("{parameters}{}", objects(objects_yaml))),
    )
}

/// The problems a failed run lists, one a line.
fn listed(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .collect()
}

const GOOD_OBJECTS: &str = "\
- objectName: prod/db
  objectType: secretsmanager
  filePermission: \"0640\"
  jmesPath:
    - path: username
      objectAlias: db-user
    - path: password
      objectAlias: db-pass
      filePermission: \"0400\"
- objectName: /app/api-key
  objectType: ssmparameter
  objectVersion: 3
- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:shared-AbCdEf
  objectAlias: shared
  objectVersionLabel: AWSPREVIOUS
";

#[test]
fn good_class_prints_every_file_and_exits_zero() {
    let dir = Dir::new();
    let path = dir.write(
        "spc.yaml",
        &spc(
            "web-secrets",
            &format!("    region: us-east-1\n{}", objects(GOOD_OBJECTS)),
        ),
    );
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    let out = &run.stdout;
    assert!(
        out.contains("SecretProviderClass web-secrets: 3 object(s), region us-east-1"),
        "{run}"
    );
    assert!(out.contains("FILE") && out.contains("MODE") && out.contains("STORE"));

    assert_eq!(
        row(out, "prod_db"),
        ["prod_db", "0640", "secretsmanager", "prod/db"]
    );
    // jmesPath files: the entry's mode, else the object's.
    assert_eq!(
        row(out, "db-user"),
        [
            "db-user",
            "0640",
            "secretsmanager",
            "prod/db",
            "jmesPath",
            "username"
        ]
    );
    assert_eq!(
        row(out, "db-pass"),
        [
            "db-pass",
            "0400",
            "secretsmanager",
            "prod/db",
            "jmesPath",
            "password"
        ]
    );
    // The default mode, a translated name, a YAML number read as text.
    assert_eq!(
        row(out, "_app_api-key"),
        [
            "_app_api-key",
            "0644",
            "ssmparameter",
            "/app/api-key",
            "version",
            "3"
        ]
    );
    // An ARN: the store comes from the ARN, the file from the alias.
    assert_eq!(
        row(out, "shared"),
        [
            "shared",
            "0644",
            "secretsmanager",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:shared-AbCdEf",
            "label",
            "AWSPREVIOUS"
        ]
    );
    // Files are listed in the order of the class.
    let order: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("FILE"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        order,
        ["prod_db", "db-user", "db-pass", "_app_api-key", "shared"]
    );
}

#[test]
fn permission_flag_sets_the_default_mode() {
    let dir = Dir::new();
    let path = dir.write(
        "spc.yaml",
        &spc(
            "web",
            &format!("    region: us-east-1\n{}", objects(GOOD_OBJECTS)),
        ),
    );
    let run = validate(&path, &["--permission", "0600"]);
    assert!(run.ok(), "{run}");
    assert_eq!(row(&run.stdout, "_app_api-key")[1], "0600");
    assert_eq!(row(&run.stdout, "prod_db")[1], "0640", "its own wins");
    let run = validate(&path, &["--permission", "0999"]);
    assert!(!run.ok(), "{run}");
}

#[test]
fn path_translation_and_failover_are_shown() {
    let dir = Dir::new();
    let objects_yaml = "\
- objectName: /app/db/password
  objectType: ssmparameter
- objectName: prod/api
  objectType: secretsmanager
  objectAlias: api
  failoverObject:
    objectName: prod/api-dr
";
    let path = dir.write(
        "spc.yaml",
        &spc(
            "web",
            &format!(
                "    region: us-east-1\n    failoverRegion: us-west-2\n    pathTranslation: \"False\"\n{}",
                objects(objects_yaml)
            ),
        ),
    );
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert!(
        run.stdout.contains("region us-east-1, failover us-west-2"),
        "{run}"
    );
    assert_eq!(row(&run.stdout, "app/db/password")[2], "ssmparameter");
    let api = row(&run.stdout, "api");
    assert_eq!(api[3], "prod/api");
    assert!(api.join(" ").ends_with("(failover: prod/api-dr)"), "{run}");
}

#[test]
fn bad_class_prints_every_error_and_exits_non_zero() {
    let dir = Dir::new();
    let bad = "\
- objectName: db
  objectType: vault
- objectName: api
  objectType: secretsmanager
  filePermission: \"644\"
- objectName: api
  objectType: secretsmanager
  filePermission: \"0644\"
- objectName: cfg
  objectType: ssmparameter
  objectVersion: 3
  objectVersionLabel: prod
- objectName: creds
  objectType: secretsmanager
  jmesPath:
    - objectAlias: user
- objectName: failing
  objectType: secretsmanager
  failoverObject:
    objectName: failing-dr
-
";
    let path = dir.write(
        "bad.yaml",
        &spc(
            "broken",
            &format!("    region: us-east-1\n{}", objects(bad)),
        ),
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.is_empty(), "no file list on error: {run}");
    let err = &run.stderr;
    assert!(
        err.contains(path.to_str().unwrap()),
        "names the file: {run}"
    );
    // Each names its object, its position and its field; the duplicate
    // api is found although the first api has a bad field.
    let expected = [
        "object db (#1): objectType \"vault\" is not one of secretsmanager, ssmparameter",
        "object api (#2): filePermission \"644\" must be four octal digits, e.g. \"0600\"",
        "object api (#3): objectName repeats object #2 with the same objectAlias and objectVersionLabel",
        "object cfg (#4): objectVersionLabel and objectVersion cannot both be set on an ssmparameter",
        "object creds (#5): jmesPath entry #1 needs both path and objectAlias",
        "object failing (#6): objectAlias is required with a failoverObject",
        "object failing (#6): failoverObject is allowed only when failoverRegion is set",
        "object #7: empty (null) entry in the objects list",
    ];
    // One line per problem, in the class's order, counted in the heading.
    let listed: Vec<&str> = err.lines().filter_map(|l| l.strip_prefix("  - ")).collect();
    assert_eq!(listed, expected, "{run}");
    assert!(err.contains("8 problem(s)"), "{run}");
}

/// A class with four problems of four kinds: a bad parameter, a bad field,
/// a duplicate alias (on the object with the bad field) and an ARN in
/// another region than the class's.
const FOUR_PROBLEMS: &str = "\
- objectName: db
  objectType: secretsmanager
  objectAlias: shared
  filePermission: \"644\"
- objectName: api
  objectType: secretsmanager
  objectAlias: shared
- objectName: arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf
  objectAlias: x
";

#[test]
fn four_problems_of_four_kinds_are_all_reported() {
    let dir = Dir::new();
    let path = class_file(
        &dir,
        "four",
        "    region: us-east-1\n    pathTranslation: ab\n",
        FOUR_PROBLEMS,
    );
    let run = validate(&path, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert_eq!(
        listed(&run),
        [
            "parameter pathTranslation: \"ab\" must be \"False\" or a single character",
            "object db (#1): filePermission \"644\" must be four octal digits, e.g. \"0600\"",
            "object api (#2): objectAlias shared is already used by object #1",
            "object arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf (#3): objectName the ARN's region eu-west-1 must match the region us-east-1",
        ],
        "{run}"
    );
    assert!(run.stderr.contains("4 problem(s)"), "{run}");

    // Without a region in the class, --region plays the node's part.
    let path = class_file(
        &dir,
        "four-flag",
        "    pathTranslation: ab\n",
        FOUR_PROBLEMS,
    );
    let run = validate(&path, &["--region", "us-east-1"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("4 problem(s)"), "{run}");
    assert!(
        run.stderr
            .contains("the ARN's region eu-west-1 must match the region us-east-1"),
        "{run}"
    );
    // And without either, the three offline problems, and a bad --region.
    let run = validate(&path, &[]);
    assert!(run.stderr.contains("3 problem(s)"), "{run}");
    let run = validate(&path, &["--region", "Not A Region"]);
    assert!(run.stderr.contains("4 problem(s)"), "{run}");
    assert!(
        run.stderr
            .contains("parameter region: \"Not A Region\" is not a region name"),
        "{run}"
    );
}

#[test]
fn unknown_preferred_address_type_is_a_warning_under_pod_identity_only() {
    let dir = Dir::new();
    let pod_identity = class_file(
        &dir,
        "pi",
        "    region: us-east-1\n    usePodIdentity: \"true\"\n    preferredAddressType: bogus\n",
        GOOD_OBJECTS,
    );
    let run = validate(&pod_identity, &[]);
    assert!(run.ok(), "{run}");
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: parameter preferredAddressType: \"bogus\" is not one of ipv4, ipv6, auto; using auto, as ASCP does"
        ],
        "{run}"
    );
    let irsa = class_file(
        &dir,
        "irsa",
        "    region: us-east-1\n    preferredAddressType: bogus\n",
        GOOD_OBJECTS,
    );
    let run = validate(&irsa, &[]);
    assert!(run.ok(), "{run}");
    assert!(!run.stdout.contains("warning"), "{run}");
    assert!(!run.stdout.contains("bogus"), "{run}");
}

#[test]
fn control_characters_in_names_are_reported_escaped_on_one_line() {
    let dir = Dir::new();
    let bad = "\
- objectName: \"db\\nINFO forged line\"
  objectType: secretsmanager
- objectName: api
  objectType: secretsmanager
  objectAlias: \"api\\r\"
  jmesPath:
    - path: key
      objectAlias: \"k\\u001b[31m\"
- objectName: cfg
  objectType: secretsmanager
  objectAlias: cfg
  failoverObject:
    objectName: \"cfg\\u0085dr\"
";
    let path = class_file(
        &dir,
        "ctl",
        "    region: us-east-1\n    failoverRegion: us-west-2\n",
        bad,
    );
    let run = validate(&path, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        listed(&run),
        [
            "object db\\nINFO forged line (#1): objectName contains the control character U+000A; names and aliases must be printable",
            "object api (#2): objectAlias contains the control character U+000D; names and aliases must be printable",
            "object api (#2): jmesPath entry #1 objectAlias contains the control character U+001B; names and aliases must be printable",
            "object cfg (#3): failoverObject objectName contains the control character U+0085; names and aliases must be printable",
        ],
        "{run}"
    );
    assert!(!run.stderr.contains("\nINFO"), "{run}");
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "{run}"
    );
}

#[test]
fn file_names_starting_with_dot_dot_are_reported() {
    let dir = Dir::new();
    let bad = "\
- objectName: db
  objectType: secretsmanager
  objectAlias: ..data
- objectName: api
  objectType: secretsmanager
  objectAlias: ..2024_01_01_00_00_00.123
";
    let path = class_file(&dir, "dots", "    region: us-east-1\n", bad);
    let run = validate(&path, &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("2 problem(s)"), "{run}");
    assert!(
        run.stderr
            .contains("object db (#1): objectAlias file name ..data: must not start with \"..\""),
        "{run}"
    );
    // Deeper down, with subdirectories, such a name is an ordinary one.
    let good = "\
- objectName: db
  objectType: secretsmanager
  objectAlias: certs/..data
";
    let path = class_file(
        &dir,
        "nested",
        "    region: us-east-1\n    pathTranslation: \"False\"\n",
        good,
    );
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("certs/..data"), "{run}");
}

#[test]
fn duplicates_are_reported() {
    let dir = Dir::new();
    let dup = "\
- objectName: db
  objectType: secretsmanager
- objectName: db
  objectType: secretsmanager
";
    let path = dir.write(
        "dup.yaml",
        &spc("dup", &format!("    region: us-east-1\n{}", objects(dup))),
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr
            .contains("object db (#2): objectName repeats object #1 with the same objectAlias"),
        "{run}"
    );
}

#[test]
fn bad_parameters_are_reported() {
    let dir = Dir::new();
    for (params, needle) in [
        (
            "    pathTranslation: ab\n",
            "parameter pathTranslation: \"ab\" must be",
        ),
        (
            "    usePodIdentity: \"yes\"\n",
            "parameter usePodIdentity: \"yes\" is not a boolean",
        ),
        (
            "    region: us-east-1\n    failoverRegion: us-east-1\n",
            "parameter failoverRegion: us-east-1 is also the primary region",
        ),
        (
            "    region: US_EAST\n",
            "parameter region: \"US_EAST\" is not a region name",
        ),
    ] {
        let path = dir.write(
            "params.yaml",
            &spc("p", &format!("{params}{}", objects(GOOD_OBJECTS))),
        );
        let run = validate(&path, &[]);
        assert!(!run.ok(), "{params}: {run}");
        assert!(
            run.stderr.contains(needle),
            "{params}: missing {needle:?}: {run}"
        );
    }
    // No objects at all.
    let path = dir.write("none.yaml", &spc("p", "    region: us-east-1\n"));
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("objects: missing"), "{run}");
}

#[test]
fn arn_regions_are_checked_against_the_class_or_the_flag() {
    let dir = Dir::new();
    let arn_objects = "\
- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf
";
    // The class's region.
    let path = dir.write(
        "arn.yaml",
        &spc(
            "arn",
            &format!("    region: eu-west-1\n{}", objects(arn_objects)),
        ),
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr
            .contains("the ARN's region us-east-1 must match the region eu-west-1"),
        "{run}"
    );
    // No region in the class: --region decides, or nothing is checked.
    let path = dir.write("arn-noregion.yaml", &spc("arn", &objects(arn_objects)));
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("ARN regions are not checked"), "{run}");
    assert!(run.stdout.contains("region (from the node)"), "{run}");
    let run = validate(&path, &["--region", "us-east-1"]);
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("region us-east-1"), "{run}");
    let run = validate(&path, &["--region", "ap-south-1"]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr.contains("must match the region ap-south-1"),
        "{run}"
    );
    let run = validate(&path, &["--region", "Not A Region"]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("not a region name"), "{run}");
}

#[test]
fn failover_region_equal_to_the_flag_region_is_reported() {
    let dir = Dir::new();
    let path = dir.write(
        "fo.yaml",
        &spc(
            "fo",
            &format!("    failoverRegion: us-west-2\n{}", objects(GOOD_OBJECTS)),
        ),
    );
    let run = validate(&path, &["--region", "us-west-2"]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr
            .contains("failoverRegion: us-west-2 is also the primary region"),
        "{run}"
    );
    let run = validate(&path, &["--region", "us-east-1"]);
    assert!(run.ok(), "{run}");
}

#[test]
fn failover_arn_region_is_checked() {
    let dir = Dir::new();
    let fo = "\
- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf
  objectAlias: db
  failoverObject:
    objectName: arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-GhIjKl
";
    let path = dir.write(
        "fo.yaml",
        &spc(
            "fo",
            &format!(
                "    region: us-east-1\n    failoverRegion: us-west-2\n{}",
                objects(fo)
            ),
        ),
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr.contains(
            "failoverObject ARN's region eu-west-1 must match the failover region us-west-2"
        ),
        "{run}"
    );
}

#[test]
fn multi_document_file_finds_the_class() {
    let dir = Dir::new();
    let text = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/web\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      serviceAccountName: web\n      containers:\n        - name: web\n          image: nginx\n          volumeMounts:\n            - name: secrets\n              mountPath: /mnt/secrets\n      volumes:\n        - name: secrets\n          csi:\n            driver: secrets-store.csi.k8s.io\n            readOnly: true\n            volumeAttributes:\n              secretProviderClass: web-secrets\n---\n{}---\n# trailing empty document\n",
        spc(
            "web-secrets",
            &format!("    region: us-east-1\n{}", objects(GOOD_OBJECTS)),
        )
    );
    let path = dir.write("all.yaml", &text);
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert!(
        run.stdout
            .contains("SecretProviderClass web-secrets: 3 object(s)"),
        "{run}"
    );
    assert_eq!(row(&run.stdout, "db-pass")[1], "0400");
}

#[test]
fn file_without_a_class_is_an_error() {
    let dir = Dir::new();
    let path = dir.write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n",
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("holds no SecretProviderClass"), "{run}");
    assert!(run.stderr.contains(path.to_str().unwrap()), "{run}");
}

#[test]
fn other_providers_are_reported() {
    let dir = Dir::new();
    let text = spc(
        "azure",
        &format!("    region: us-east-1\n{}", objects(GOOD_OBJECTS)),
    )
    .replace("provider: aws", "provider: azure");
    let path = dir.write("azure.yaml", &text);
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("spec.provider is \"azure\""), "{run}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = Dir::new();
    let missing = dir.0.path().join("nope.yaml");
    let run = validate(&missing, &[]);
    assert!(!run.ok(), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(run.stderr.contains("cannot read"), "{run}");
    assert!(run.stderr.contains(missing.to_str().unwrap()), "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    // A directory is not a manifest either.
    let run = validate(dir.0.path(), &[]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("cannot read"), "{run}");
}

#[test]
fn file_that_is_not_yaml_is_a_clear_error() {
    let dir = Dir::new();
    let path = dir.write("junk.yaml", "kind: [unclosed\n  : : :\n");
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr.contains("not a Kubernetes YAML manifest"),
        "{run}"
    );
    assert!(!run.stderr.contains("panicked"), "{run}");
    let path = dir.write("bin.yaml", "\u{0}\u{1}\u{2}");
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn objects_that_are_not_a_list_are_reported() {
    let dir = Dir::new();
    let path = dir.write(
        "map.yaml",
        &spc(
            "m",
            "    region: us-east-1\n    objects: |\n      objectName: db\n      objectType: secretsmanager\n",
        ),
    );
    let run = validate(&path, &[]);
    assert!(!run.ok(), "{run}");
    assert!(
        run.stderr
            .contains("the objects parameter is not a YAML list of objects"),
        "{run}"
    );
}

#[test]
fn validate_without_a_file_is_a_usage_error() {
    let run = ascp(&["validate"]);
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.to_lowercase().contains("usage"), "{run}");
}

#[test]
fn object_encodings_are_shown_and_unknown_ones_reported() {
    let dir = Dir::new();
    let objects_yaml = "\
- objectName: prod/keystore
  objectType: secretsmanager
  objectAlias: keystore.p12
  objectEncoding: base64
  jmesPath:
    - path: key
      objectAlias: key.bin
      objectEncoding: HEX
    - path: user
      objectAlias: user
- objectName: /app/plain
  objectType: ssmparameter
  objectEncoding: utf-8
";
    let path = class_file(&dir, "enc", "    region: us-east-1\n", objects_yaml);
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    assert_eq!(
        row(&run.stdout, "keystore.p12")[3..],
        ["prod/keystore", "(decoded", "from", "base64)"]
    );
    assert_eq!(
        row(&run.stdout, "key.bin")[3..],
        [
            "prod/keystore",
            "jmesPath",
            "key",
            "(decoded",
            "from",
            "hex)"
        ]
    );
    // The default says nothing.
    assert_eq!(
        row(&run.stdout, "user")[3..],
        ["prod/keystore", "jmesPath", "user"]
    );
    assert_eq!(row(&run.stdout, "_app_plain")[3..], ["/app/plain"]);

    let bad = "\
- objectName: prod/keystore
  objectType: secretsmanager
  objectEncoding: base32
  jmesPath:
    - path: key
      objectAlias: key.bin
      objectEncoding: rot13
";
    let run = validate(
        &class_file(&dir, "bad", "    region: us-east-1\n", bad),
        &[],
    );
    assert!(!run.ok(), "{run}");
    let problems = listed(&run);
    assert_eq!(problems.len(), 2, "{run}");
    assert!(
        problems[0].contains("prod/keystore")
            && problems[0].contains("objectEncoding")
            && problems[0].contains("\"base32\" must be utf-8, base64 or hex"),
        "{run}"
    );
    assert!(
        problems[1].contains("jmesPath entry #1 objectEncoding")
            && problems[1].contains("\"rot13\""),
        "{run}"
    );
}

#[test]
fn paths_are_explained_and_their_forbidden_fields_refused() {
    let dir = Dir::new();
    let objects_yaml = "\
- objectName: prod/web/*
  objectType: secretsmanager
  filePermission: \"0400\"
- objectName: /app/prod/**
  objectType: ssmparameter
  objectEncoding: base64
";
    let path = class_file(&dir, "paths", "    region: us-east-1\n", objects_yaml);
    let run = validate(&path, &[]);
    assert!(run.ok(), "{run}");
    let one = row(&run.stdout, "*").join(" ");
    assert_eq!(
        one,
        "* 0400 secretsmanager prod/web/* (path: each secret directly under prod/web/, at most 256, in a file named by its name below the prefix, / becoming _)"
    );
    let all = row(&run.stdout, "**").join(" ");
    assert!(
        all.starts_with(
            "** 0644 ssmparameter /app/prod/** (path: each parameter at any depth under /app/prod/"
        ) && all.ends_with("(decoded from base64)"),
        "{run}"
    );

    let bad = "\
- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*
- objectName: prod/a/*
  objectType: secretsmanager
  objectAlias: a
- objectName: prod/b/**
  objectType: secretsmanager
  objectVersion: v1
- objectName: prod/c/*
  objectType: secretsmanager
  objectVersionLabel: AWSPREVIOUS
- objectName: prod/d/*
  objectType: secretsmanager
  jmesPath:
    - path: x
      objectAlias: x
- objectName: app/e/*
  objectType: ssmparameter
- objectName: prod/*/f/*
  objectType: secretsmanager
";
    let run = validate(
        &class_file(&dir, "bad", "    region: us-east-1\n", bad),
        &[],
    );
    assert!(!run.ok(), "{run}");
    let problems = listed(&run);
    let expected = [
        "(#1): objectName a path cannot be an ARN",
        "(#2): objectAlias cannot be set on a path",
        "(#3): objectVersion cannot be set on a path",
        "(#4): objectVersionLabel cannot be set on a path",
        "(#5): jmesPath cannot be set on a path",
        "(#6): objectName an ssmparameter path must start with /",
        "(#7): objectName * may only end a path",
    ];
    assert_eq!(problems.len(), expected.len(), "{run}");
    for (problem, want) in problems.iter().zip(expected) {
        assert!(problem.contains(want), "{want:?} not in {problem:?}\n{run}");
    }
}
