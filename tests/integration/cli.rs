//! The command line around the engine: `version`, shell completion answered
//! from the local cache, saved repositories, man pages, help and output shapes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

/// A repository with one snapshot of `src/data/{personal,public}/...`,
/// browsed once so the catalog holds its trees.
struct Fixture {
    t: TestRepo,
    src: PathBuf,
    short_id: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let t = TestRepo::new("cli");
        let src = t.dir.mkdir("src");
        t.dir.write("src/data/personal/notes.txt", b"hello");
        t.dir.write("src/data/public/readme.txt", b"world");
        t.cellar()
            .args(["backup", "--host", "testhost", "--tag", "nightly"])
            .arg(&src)
            .ok();
        t.cellar().args(["ls", "-R", "latest"]).ok();
        let short_id = t.snapshot_ids()[0][..8].to_string();
        Fixture { t, src, short_id }
    })
}

/// The binary with a private configuration and cache home (saved repositories
/// must neither read nor write the developer's).
fn cellar_in(home: &Path) -> Cellar {
    let mut c = Cellar::new();
    c.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home);
    c
}

/// Exit code, stdout and stderr.
fn out(c: &mut Cellar) -> (i32, String, String) {
    let r = c.run();
    (r.code, r.stdout, r.stderr)
}

#[test]
fn version_json_has_build_facts() {
    let v = Cellar::new().args(["version", "--json"]).ok().json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let commit = v["commit"].as_str().unwrap();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{v}"
    );
    let date = v["build_date"].as_str().unwrap();
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{v}"
    );
    assert!(
        v["target"]
            .as_str()
            .unwrap()
            .contains(std::env::consts::ARCH),
        "{v}"
    );
    assert_eq!(v["os"], std::env::consts::OS);
    assert!(v["rustc"].as_str().unwrap().starts_with("rustc "), "{v}");
    assert_eq!(v["features"]["s3"], true);
    assert!(v["features"]["mount"].is_boolean() && v["features"]["keyring"].is_boolean());
    let text = Cellar::new().arg("version").ok().stdout;
    assert!(
        text.starts_with(&format!("cellar {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn complete_snapshot_paths_from_the_cache_without_the_password() {
    let f = fixture();
    let src = f.src.display().to_string();
    // A password file that does not exist: completion must not need it.
    let nopw = f.t.dir.join("no-such-password");
    let complete = |words: &[&str]| {
        f.t.cellar_with(&nopw)
            .args(["__complete", "--", "cellar"])
            .args(words)
            .run()
    };
    let r = complete(&["restore", &format!("latest:{src}/data/pers")]);
    assert_eq!(r.code, 0, "{}", r.report());
    assert_eq!(
        r.stdout,
        format!("latest:{src}/data/personal/\n"),
        "{}",
        r.report()
    );
    let r = complete(&["ls", &format!("{}:{src}/data/", f.short_id)]);
    assert_eq!(
        r.stdout,
        format!(
            "{id}:{src}/data/personal/\n{id}:{src}/data/public/\n",
            id = f.short_id
        ),
        "{}",
        r.report()
    );
    let r = complete(&["restore", ""]);
    assert_eq!(
        r.stdout,
        format!("latest\n{}\n", f.short_id),
        "{}",
        r.report()
    );
    // diff takes two snapshots, then a path: the third word is not ours.
    assert_eq!(complete(&["diff", "latest", "la"]).stdout, "latest\n");
    assert_eq!(complete(&["diff", "latest", "latest", ""]).code, 1);
    // Option values and other commands are the shell's business.
    assert_eq!(complete(&["restore", "latest", "--target", ""]).code, 1);
    assert_eq!(complete(&["backup", ""]).code, 1);
}

#[test]
fn bash_script_completes_inside_a_snapshot() {
    let f = fixture();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cellar")).parent().unwrap();
    let line = format!(
        "cellar -r {} --cache-dir {} restore latest:{}/data/pub",
        f.t.repo.display(),
        f.t.cache.display(),
        f.src.display()
    );
    let script = r#"source <(cellar completion bash) || exit 9
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$LINE"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_cellar_dynamic cellar
printf '%s\n' "${COMPREPLY[@]}""#;
    let o = Command::new("bash")
        .args(["-c", script])
        .env("LINE", &line)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("CELLAR_REPOSITORY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    // bash splits words at ':', so the reply is what follows "latest:".
    assert_eq!(
        stdout,
        format!("{}/data/public/\n", f.src.display()),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for shell in ["zsh", "fish"] {
        let s = Cellar::new().args(["completion", shell]).ok().stdout;
        assert!(s.contains("cellar __complete --"), "{shell}: {s}");
    }
}

#[test]
fn saved_repository_add_use_and_no_password_in_the_file() {
    let f = fixture();
    let home = Dir::new("cli-home");
    let pw_cmd = format!("cat {}", f.t.password_file.display());
    let (code, _, err) = out(cellar_in(home.path())
        .args(["repo", "add", "main", "-r"])
        .arg(&f.t.repo)
        .args(["--password-command", &pw_cmd, "--cache-dir"])
        .arg(&f.t.cache));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        out(cellar_in(home.path()).args(["repo", "add", "other", "-r", "/nonexistent/repo"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = out(cellar_in(home.path()).args(["repo", "use", "main"]));
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = out(cellar_in(home.path()).args(["--json", "snapshots"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    // -r NAME reaches it too.
    let (code, _, err) = out(cellar_in(home.path()).args(["-r", "main", "snapshots"]));
    assert_eq!(code, 0, "{err}");
    // And the unknown name is an error naming it.
    let (code, _, err) = out(cellar_in(home.path()).args(["repo", "use", "nope"]));
    assert!(code == 1 && err.contains("\"nope\""), "{err}");

    let file = home.join("config/cellar/cellar.toml");
    let bytes = fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("default-repository = \"main\""), "{text}");
    assert!(text.contains(&pw_cmd), "{text}");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (_, list, _) = out(cellar_in(home.path()).args(["repo", "list"]));
    let rows: Vec<&str> = list.lines().collect();
    assert!(
        rows[0].contains("Name") && rows[0].contains("Repository"),
        "{list}"
    );
    assert!(rows.iter().any(|r| r.starts_with("*  main")), "{list}");
}

#[test]
fn snapshots_table_and_json_shapes() {
    let f = fixture();
    let r = f.t.cellar().arg("snapshots").ok();
    assert!(
        !r.stdout.contains('\x1b'),
        "escapes on a pipe: {:?}",
        r.stdout
    );
    // Normalised: the id, the time and the path vary; the layout must not.
    let norm: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            let l = l
                .replace(&f.short_id, "<id>")
                .replace(&f.src.display().to_string(), "<path>");
            let cells: Vec<String> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if c.len() == 19 && c.as_bytes()[4] == b'-' && c.as_bytes()[13] == b':' {
                        "<time>".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            if cells.len() == 1 && cells[0].bytes().all(|b| b == b'-') {
                "---".to_string()
            } else {
                cells.join(" | ")
            }
        })
        .collect();
    assert_eq!(
        norm,
        [
            "ID | Time | Host | Tags | Paths | Size",
            "---",
            "<id> | <time> | testhost | nightly | <path> | 10 B",
            "1 snapshot(s)",
        ],
        "{}",
        r.stdout
    );
    let v = f.t.cellar().args(["--json", "snapshots"]).ok().json();
    let mut keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "gid",
            "host",
            "hostname",
            "id",
            "parent",
            "paths",
            "program_version",
            "short_id",
            "summary",
            "tags",
            "time",
            "tree",
            "uid",
            "username"
        ]
    );
    assert_eq!(v[0]["short_id"], f.short_id.as_str());
    assert_eq!(v[0]["tags"], serde_json::json!(["nightly"]));
}

#[test]
fn man_pages_help_examples_and_suggestions() {
    let d = Dir::new("cli-man");
    let man = d.join("man");
    Cellar::new().args(["man", "--dir"]).arg(&man).ok();
    for page in [
        "cellar.1",
        "cellar-restore.1",
        "cellar-key-add.1",
        "cellar-repo-use.1",
    ] {
        let text = fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    assert!(!man.join("cellar-__complete.1").exists());
    for cmd in ["restore", "snapshots", "backup", "version", "completion"] {
        let h = Cellar::new().args([cmd, "--help"]).ok().stdout;
        assert!(h.contains("Examples:\n  cellar "), "{cmd} --help:\n{h}");
    }
    let r = Cellar::new().arg("snapshot").expect(exit::USAGE);
    assert!(r.stderr.contains("'snapshots'"), "{}", r.stderr);
    let r = Cellar::new().arg("restor").expect(exit::USAGE);
    assert!(!r.stderr.contains('\x1b'), "{:?}", r.stderr);
}
