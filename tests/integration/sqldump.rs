//! Database dumps: a nightly mysqldump with scattered row changes must cost a
//! fraction of its size on the second night (small chunks for streams), and
//! every night must restore byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{Dir, TestRepo, assert_same_file};

/// Generates the small (about 40 MiB) deterministic dump of the given night
/// with the benchmark's generator.
fn dump(dir: &Dir, night: u32) -> PathBuf {
    let out = dir.join(format!("night{night}.sql"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_corpus.py");
    let st = Command::new("python3")
        .arg(&script)
        .args(["sqldump"])
        .arg(&out)
        .args(["--small", "--night", &night.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        st.status.success(),
        "gen_corpus.py failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    out
}

fn stored_bytes(v: &serde_json::Value) -> u64 {
    v["data_added_packed"]
        .as_u64()
        .expect("data_added_packed in the summary")
}

#[test]
fn second_night_of_a_dump_costs_a_fraction_of_the_first() {
    let t = TestRepo::new("sqldump");
    let n1 = dump(&t.dir, 1);
    let n2 = dump(&t.dir, 2);
    let backup_dump = |dump: &Path| {
        t.cellar()
            .args([
                "--json",
                "backup",
                "--stdin",
                "--stdin-filename",
                "cells.sql",
            ])
            .stdin_file(dump)
            .ok()
            .json()
    };
    let first = backup_dump(&n1);
    let second = backup_dump(&n2);
    let (a, b) = (stored_bytes(&first), stored_bytes(&second));
    let size = std::fs::metadata(&n1).unwrap().len();
    eprintln!("dump {size} bytes: night 1 stored {a}, night 2 stored {b}");
    assert!(a > 0 && a < size, "night 1 stored {a} of {size} bytes");
    assert!(
        b * 100 <= a * 30,
        "night 2 stored {b} bytes, more than 30% of night 1's {a}"
    );
    let ids = t.snapshot_ids();
    assert_eq!(ids.len(), 2);
    for (id, original) in ids.iter().zip([&n1, &n2]) {
        let target = t.dir.join(format!("restore-{id}"));
        let r = t.restore(&format!("{id}:/cells.sql"), &target);
        assert_eq!(r.code, 0, "{}", r.report());
        assert_same_file(original, &target.join("cells.sql"));
    }
}

#[test]
fn folder_and_two_command_streams_in_one_snapshot() {
    let t = TestRepo::new("streams");
    let src = t.dir.mkdir("cells");
    t.dir.write("cells/pydio.json", b"{\"version\": 4}\n");
    t.dir.write(
        "cells/data/alice/report.docx",
        &crate::util::random_bytes(300_000, 5),
    );
    let cmd1 = "seq 1 200000";
    let cmd2 = "printf 'db2\\n'; seq 5 9";
    let run = t
        .cellar()
        .args(["--json", "backup"])
        .arg(&src)
        .args(["--stdin-from-command", &format!("cells.sql={cmd1}")])
        .args(["--stdin-from-command", &format!("other.dump={cmd2}")])
        .ok()
        .json();
    assert!(run["snapshot_id"].is_string());
    let target = t.dir.join("out");
    let r = t.restore("latest", &target);
    assert_eq!(r.code, 0, "{}", r.report());
    for (name, cmd) in [("cells.sql", cmd1), ("other.dump", cmd2)] {
        let expected = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .unwrap()
            .stdout;
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            expected,
            "{name}"
        );
    }
    let inner = target.join(src.strip_prefix("/").unwrap());
    assert_same_file(
        &src.join("data/alice/report.docx"),
        &inner.join("data/alice/report.docx"),
    );
}

#[test]
fn failing_dump_command_saves_no_snapshot() {
    let t = TestRepo::new("failing-dump");
    // 10 MB of output, then failure: a truncated dump must not look like a backup.
    let run = t
        .cellar()
        .args([
            "backup",
            "--stdin-from-command",
            "cells.sql=head -c 10000000 /dev/zero; echo boom >&2; exit 1",
        ])
        .run();
    assert_ne!(run.code, 0, "{}", run.report());
    assert!(run.stderr.contains("cells.sql"), "{}", run.report());
    assert!(
        run.stderr.contains("boom"),
        "the command's stderr is shown: {}",
        run.report()
    );
    assert!(t.snapshot_ids().is_empty());
    // A command that cannot start fails the same way.
    let run = t
        .cellar()
        .args([
            "backup",
            "--stdin-from-command",
            "x.sql=/nonexistent/mysqldump",
        ])
        .run();
    assert_ne!(run.code, 0);
    assert!(t.snapshot_ids().is_empty());
    // The data already written is reused: the next run of the same dump adds little.
    let ok = t
        .cellar()
        .args([
            "--json",
            "backup",
            "--stdin-from-command",
            "cells.sql=head -c 10000000 /dev/zero",
        ])
        .ok()
        .json();
    assert!(stored_bytes(&ok) < 1_000_000, "{ok}");
}
