//! The atomic writer killed with SIGKILL after each of its steps, for every
//! step and two scenarios (a rotation of the layout, a conversion of an
//! earlier provider's plain files): the target shows the old set or the new
//! one, never a mix, and the next mount writes its set and cleans up.
//!
//! Its own binary with its own harness (`harness = false`, libtest-mimic):
//! the test runs this binary again as the writer it kills, and the child's
//! entry point is `main`'s, not a test that would pass in every run.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use ascp::output::{Step, Target};
use libtest_mimic::{Arguments, Trial};

#[path = "support/layout.rs"]
mod layout;
use layout::{as_map, commit, files, listing, target_dir, visible};

const CHILD_TARGET: &str = "ASCP_TEST_CRASH_TARGET";
const CHILD_STEP: &str = "ASCP_TEST_CRASH_STEP";
const CHILD_SCENARIO: &str = "ASCP_TEST_CRASH_SCENARIO";
const MARKER: &str = "ASCP-CRASH-AT ";

/// The sets of a crash scenario: what the target shows before, what the
/// killed mount writes, and what the next mount writes.
struct Scenario {
    name: &'static str,
    old: &'static [(&'static str, &'static str)],
    new: &'static [(&'static str, &'static str)],
    next: &'static [(&'static str, &'static str)],
    /// The old set is plain files of an earlier provider, not the layout.
    plain: bool,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "rotation",
        old: &[
            ("tls.crt", "cert-A"),
            ("tls.key", "key-A"),
            ("dropped", "d-A"),
        ],
        new: &[
            ("tls.crt", "cert-B"),
            ("tls.key", "key-B"),
            ("nested/added", "n-B"),
        ],
        next: &[("tls.crt", "cert-C"), ("tls.key", "key-C")],
        plain: false,
    },
    Scenario {
        name: "conversion",
        old: &[
            ("tls.crt", "cert-A"),
            ("tls.key", "key-A"),
            ("app/db/pw", "pw-A"),
        ],
        new: &[
            ("tls.crt", "cert-B"),
            ("tls.key", "key-B"),
            ("app/db/pw", "pw-B"),
        ],
        // Every old name again: plain files the new set drops are left alone.
        next: &[
            ("tls.crt", "cert-C"),
            ("tls.key", "key-C"),
            ("app/db/pw", "pw-C"),
        ],
        plain: true,
    },
];

/// The child process of the test: this binary run again with the
/// environment naming a target, a scenario and a step. It writes the
/// scenario's new set, announces the step on stdout when reached and waits
/// there to be killed. Without that environment (an ordinary run) it returns
/// `false` and `main` runs the test.
fn crash_child() -> bool {
    let (Ok(dir), Ok(step), Ok(scenario)) = (
        std::env::var(CHILD_TARGET),
        std::env::var(CHILD_STEP),
        std::env::var(CHILD_SCENARIO),
    ) else {
        return false;
    };
    let scenario = SCENARIOS.iter().find(|s| s.name == scenario).unwrap();
    let target = Target::open(Path::new(&dir)).unwrap();
    let mut observe = |reached: Step| {
        if format!("{reached:?}") == step {
            let mut out = std::io::stdout();
            writeln!(out, "{MARKER}{step}").unwrap();
            out.flush().unwrap();
            // Wait for SIGKILL; the parent never writes to stdin.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            std::process::exit(3);
        }
    };
    target
        .write_set_observed(&files(scenario.new), &commit, &mut observe)
        .unwrap();
    true
}

/// Runs the child writing `scenario`'s new set into `dir`; kills it with
/// SIGKILL once it reports `step`. Returns whether it was reached.
fn write_and_kill_at(dir: &Path, scenario: &Scenario, step: Step) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_TARGET, dir)
        .env(CHILD_STEP, format!("{step:?}"))
        .env(CHILD_SCENARIO, scenario.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains(MARKER) {
            reached = true;
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    if reached {
        assert_eq!(status.signal(), Some(9), "{step:?}: {status:?}");
    } else {
        assert!(status.success(), "{step:?}: the child failed: {status:?}");
    }
    reached
}

/// The scenario's old set on disk: through `Target` or as plain files.
fn prepare(scenario: &Scenario) -> tempfile::TempDir {
    let dir = target_dir();
    if scenario.plain {
        for (path, contents) in scenario.old {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
    } else {
        Target::open(dir.path())
            .unwrap()
            .write_set(&files(scenario.old), &commit)
            .unwrap();
    }
    dir
}

fn sigkill_at_every_step_leaves_the_old_or_the_new_set_and_the_next_mount_cleans_up() {
    for scenario in &SCENARIOS {
        let (old, new, next) = (
            as_map(scenario.old),
            as_map(scenario.new),
            as_map(scenario.next),
        );
        let mut reached_steps = Vec::new();
        for step in Step::ALL {
            let dir = prepare(scenario);
            let reached = write_and_kill_at(dir.path(), scenario, step);
            let seen = visible(dir.path());
            let swapped = Step::ALL.iter().position(|s| *s == step)
                >= Step::ALL.iter().position(|s| *s == Step::Swapped);
            if !reached {
                assert_eq!(seen, new, "{}: ran to the end", scenario.name);
            } else if !swapped {
                assert_eq!(seen, old, "{} killed at {step:?}", scenario.name);
            } else if !scenario.plain {
                assert_eq!(seen, new, "{} killed at {step:?}", scenario.name);
            } else {
                // Converting plain files: each name holds its old or its new value.
                assert_eq!(
                    seen.keys().collect::<Vec<_>>(),
                    new.keys().collect::<Vec<_>>(),
                    "{} killed at {step:?}",
                    scenario.name
                );
                for (name, value) in &seen {
                    assert!(
                        *value == old[name] || *value == new[name],
                        "{} killed at {step:?}: {name} = {value}",
                        scenario.name
                    );
                }
            }
            if reached {
                reached_steps.push(step);
            }

            // The next mount: its set exactly, and nothing left over.
            let target = Target::open(dir.path()).unwrap();
            target.write_set(&files(scenario.next), &commit).unwrap();
            assert_eq!(
                visible(dir.path()),
                next,
                "{} after a kill at {step:?}",
                scenario.name
            );
            let mut want = vec!["..data".to_owned(), "<data>".to_owned()];
            want.extend(
                scenario
                    .next
                    .iter()
                    .map(|(p, _)| p.split('/').next().unwrap().to_owned()),
            );
            want.sort();
            assert_eq!(
                listing(dir.path()),
                want,
                "{} after a kill at {step:?}",
                scenario.name
            );
        }
        let mut want: Vec<Step> = Step::ALL.to_vec();
        if !scenario.plain {
            // Nothing to replace when the old set is already the layout.
            want.retain(|s| *s != Step::NameReplaced);
        }
        assert_eq!(reached_steps, want, "{}", scenario.name);
    }
}

fn main() -> ExitCode {
    if crash_child() {
        return ExitCode::SUCCESS;
    }
    let tests = vec![Trial::test(
        "sigkill_at_every_step_leaves_the_old_or_the_new_set_and_the_next_mount_cleans_up",
        || {
            sigkill_at_every_step_leaves_the_old_or_the_new_set_and_the_next_mount_cleans_up();
            Ok(())
        },
    )];
    libtest_mimic::run(&Arguments::from_args(), tests).exit_code()
}
