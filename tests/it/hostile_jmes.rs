//! Hostile jmesPath expressions through the real binary against moto, in
//! both write modes: an expression that multiplies its input, deep
//! projection nesting, a wide multi-select over a large value, `join` and
//! `map` amplification, a literal amplified by the data, a value nested
//! past the depth bound, and a pile of sorts past the work bound. Each is
//! refused with INVALID_ARGUMENT naming the object, the path and the bound;
//! nothing is written; the provider's peak memory stays under
//! [`PEAK_MIB`]; and a normal jmesPath mount still works afterwards in the
//! same process.

use crate::support;

use std::path::Path;

use support::loopback::{self, Pod};
use support::*;
use tonic::Code;

/// The pod every test mounts for.
const POD: Pod = Pod {
    namespace: "team",
    service_account: "app",
    role: "arn:aws:iam::123456789012:role/app",
    uid: "7c2e-uid",
    class: "hostile",
    token: "eyJhbGciOiJSUzI1NiJ9.HOSTILE-JMES-TOKEN-5a1d.sig",
};

/// The bound on the provider's peak resident memory (VmHWM) over a whole
/// run of hostile mounts. Before the bounds, the first expression alone
/// took it to 3.5 GB.
const PEAK_MIB: u64 = 64;

/// moto, a Kubernetes API knowing the service account, and the binary.
struct World {
    base: loopback::World,
    driver_writes: bool,
}

impl std::ops::Deref for World {
    type Target = loopback::World;

    fn deref(&self) -> &loopback::World {
        &self.base
    }
}

impl World {
    async fn start(driver_writes: bool) -> World {
        let flags: &[&str] = if driver_writes {
            &["--driver-writes-secrets"]
        } else {
            &[]
        };
        let base = loopback::World::start(POD, Path::new(env!("CARGO_BIN_EXE_ascp")), flags).await;
        let world = World {
            base,
            driver_writes,
        };
        world.seed().await;
        world
    }

    /// The secrets the expressions run on: all within Secrets Manager's
    /// 64 KiB.
    async fn seed(&self) {
        let sm = self.sm().await;
        create_secret_string(&sm, "app/db", r#"{"username":"admin","password":"pw"}"#).await;
        // 60,000 bytes of text in one key.
        let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(60_000));
        create_secret_string(&sm, "big/text", &big).await;
        // 20,000 numbers (20,000 elements in about 60 KB) and 10,000 empty
        // strings.
        let nums = vec!["0"; 20_000].join(",");
        let strs = vec!["\"\""; 10_000].join(",");
        create_secret_string(
            &sm,
            "big/list",
            &format!(r#"{{"nums":[{nums}],"strs":[{strs}]}}"#),
        )
        .await;
        // A separator of 30,000 bytes and a list of 5,000 strings.
        let sep = "y".repeat(30_000);
        let list = vec!["\"a\""; 5_000].join(",");
        create_secret_string(
            &sm,
            "big/join",
            &format!(r#"{{"sep":"{sep}","list":[{list}]}}"#),
        )
        .await;
        // Arrays nested 120 deep.
        let deep = format!("{}1{}", "[".repeat(120), "]".repeat(120));
        create_secret_string(&sm, "deep/value", &format!(r#"{{"d":{deep}}}"#)).await;
    }

    /// Mounts `path` on `object` and expects INVALID_ARGUMENT naming the
    /// object, the path and `bound`, nothing written and the peak memory
    /// within [`PEAK_MIB`].
    async fn refused(&self, name: &str, object: &str, path: &str, bound: &str) {
        let objects = format!(
            "- objectName: {object}\n  objectType: secretsmanager\n  jmesPath:\n    - path: '{}'\n      objectAlias: out\n",
            path.replace('\'', "''")
        );
        let target = self.target(name);
        let status = match self.mount(&target, &objects).await {
            Ok(r) => panic!("{name}: the mount succeeded with {} files", r.files.len()),
            Err(s) => s,
        };
        let message = status.message();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {message}");
        for needle in [object, bound] {
            assert!(
                message.contains(needle),
                "{name}: {needle:?} not in {message}"
            );
        }
        // The class's checks quote the path as it is, evaluation errors as
        // a Rust string literal.
        assert!(
            message.contains(path) || message.contains(&format!("{path:?}")),
            "{name}: the path is not in {message}"
        );
        let written: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
        assert!(written.is_empty(), "{name}: the target holds {written:?}");
        self.ascp.assert_peak_below_mib(
            PEAK_MIB,
            &format!("{name} (driver writes: {})", self.driver_writes),
        );
    }

    /// A normal jmesPath mount: its file, written or returned.
    async fn normal_mount_works(&self) {
        let objects = "- objectName: app/db\n  objectType: secretsmanager\n  jmesPath:\n    - path: username\n      objectAlias: user\n";
        let target = self.target("normal");
        let response = match self.mount(&target, objects).await {
            Ok(r) => r,
            Err(s) => panic!("normal mount: {:?}: {}", s.code(), s.message()),
        };
        let user = if self.driver_writes {
            response
                .files
                .iter()
                .find(|f| f.path == "user")
                .expect("the user file")
                .contents
                .clone()
        } else {
            std::fs::read(target.join("user")).expect("the user file")
        };
        assert_eq!(user, b"admin");
    }
}

fn multi(member: &str, width: usize) -> String {
    format!("[{}]", vec![member; width].join(","))
}

async fn hostile_expressions_are_refused(driver_writes: bool) {
    let world = World::start(driver_writes).await;
    world.normal_mount_works().await;

    // Refused by the class's checks, from the expression's shape alone.
    let ten = multi("@", 10);
    let amplifying = format!("@ | {}", [ten.as_str(); 8].join(" | "));
    world
        .refused("amplifying", "big/text", &amplifying, "bound of 128")
        .await;
    world
        .refused(
            "projections",
            "big/list",
            &format!("nums{}", "[*]".repeat(20)),
            "16 levels",
        )
        .await;

    // Refused during evaluation, by what the data shows.
    world
        .refused(
            "wide",
            "big/text",
            &format!("@ | {}", multi("@", 100)),
            "1048576 bytes",
        )
        .await;
    world
        .refused(
            "elements",
            "big/list",
            &format!("{}[]", multi("nums", 7)),
            "131072 elements",
        )
        .await;
    world
        .refused("join", "big/join", "join(sep, list)", "1048576 bytes")
        .await;
    world
        .refused(
            "map",
            "big/join",
            &format!(
                "map(&{}, list)",
                multi(&format!("'{}'", "m".repeat(30)), 10)
            ),
            "1048576 bytes",
        )
        .await;
    world
        .refused(
            "sort_by",
            "big/join",
            &format!("sort_by([sep, sep], &join(@, {}))", multi("@", 20)),
            "1048576 bytes",
        )
        .await;
    let literal = format!("`\"{}\"`", "z".repeat(900));
    world
        .refused(
            "literal",
            "big/list",
            &format!("join({literal}, strs)"),
            "1048576 bytes",
        )
        .await;
    world
        .refused(
            "depth",
            "deep/value",
            &format!("d{}", " | [@]".repeat(45)),
            "160 levels",
        )
        .await;
    world
        .refused(
            "work",
            "big/list",
            &format!("{}nums{}", "sort(".repeat(20), ")".repeat(20)),
            "4194304 steps",
        )
        .await;

    world.normal_mount_works().await;
    let memory = world.ascp.memory();
    eprintln!(
        "driver writes: {driver_writes}: VmHWM {} KiB, VmRSS {} KiB",
        memory.hwm_kib, memory.rss_kib
    );
    world.ascp.assert_peak_below_mib(
        PEAK_MIB,
        &format!("the whole run (driver writes: {driver_writes})"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expressions_are_refused_when_the_provider_writes() {
    hostile_expressions_are_refused(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_expressions_are_refused_when_the_driver_writes() {
    hostile_expressions_are_refused(true).await;
}
