//! End to end with a real MariaDB server started by the test: a Pydio-Cells
//! style profile (folder + `mariadb-dump` stream) runs twice around row
//! changes, and the first snapshot's dump, piped into a fresh database, gives
//! the table checksums taken at the first run. Where no server can be started
//! the test is skipped, unless CI is set, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::profiles::{profile_head, run_profile, write_config};
use crate::util::{Dir, TestRepo, assert_same_tree, exit};

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    for n in names {
        for d in &dirs {
            let p = d.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Fails under CI, skips elsewhere.
fn unavailable(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("MariaDB unavailable under CI: {why}");
    }
    eprintln!("SKIPPED: mariadb test: {why}");
}

/// A private mariadbd on a unix socket in a temporary data directory;
/// shut down (and killed if need be) when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    client: PathBuf,
    dump: PathBuf,
    _dir: Dir,
}

impl Server {
    fn start() -> Result<Server, String> {
        let daemon = find(&["mariadbd", "mysqld"]).ok_or("no mariadbd or mysqld")?;
        let install =
            find(&["mariadb-install-db", "mysql_install_db"]).ok_or("no mariadb-install-db")?;
        let client = find(&["mariadb", "mysql"]).ok_or("no mariadb client")?;
        let dump = find(&["mariadb-dump", "mysqldump"]).ok_or("no mariadb-dump")?;
        // A short base: the socket path must fit in sun_path (108 bytes).
        let dir = Dir::new("mdb");
        let data = dir.mkdir("data");
        let socket = dir.join("sock");
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--user=root")
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db")
            .output()
            .map_err(|e| format!("{}: {e}", install.display()))?;
        if !out.status.success() {
            return Err(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let child = Command::new(&daemon)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .args([
                "--skip-networking",
                "--user=root",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", daemon.display()))?;
        let mut s = Server {
            child,
            socket,
            client,
            dump,
            _dir: dir,
        };
        // Ready when a query answers; up to a minute on a loaded machine.
        for _ in 0..600 {
            if let Ok(Some(st)) = s.child.try_wait() {
                let log = std::fs::read_to_string(s._dir.join("error.log")).unwrap_or_default();
                return Err(format!("mariadbd exited ({st}): {log}"));
            }
            if s.try_sql("SELECT 1").is_ok() {
                return Ok(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err("mariadbd did not answer within a minute".into())
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"))
    }

    /// Loads a dump file into `db`.
    fn load(&self, db: &str, dump: &Path) {
        let st = Command::new(&self.client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", db])
            .stdin(std::fs::File::open(dump).unwrap())
            .status()
            .unwrap();
        assert!(st.success(), "loading {} into {db} failed", dump.display());
    }

    /// `CHECKSUM TABLE` of each table: (table name without the database, checksum).
    fn checksums(&self, db: &str, tables: &[&str]) -> Vec<(String, String)> {
        let list: Vec<String> = tables.iter().map(|t| format!("{db}.{t}")).collect();
        self.sql(&format!("CHECKSUM TABLE {}", list.join(", ")))
            .lines()
            .map(|l| {
                let (name, sum) = l.split_once('\t').expect("name<TAB>checksum");
                (
                    name.split_once('.')
                        .map(|x| x.1)
                        .unwrap_or(name)
                        .to_string(),
                    sum.to_string(),
                )
            })
            .collect()
    }

    fn dump_command(&self, db: &str) -> String {
        format!(
            "{} --no-defaults --socket={} -u root --single-transaction --routines --events {db}",
            self.dump.display(),
            self.socket.display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.try_sql("SHUTDOWN");
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TABLES: [&str; 3] = ["users", "files", "shares"];

#[test]
fn cells_profile_restores_the_database_as_it_was() {
    let db = match Server::start() {
        Ok(s) => s,
        Err(why) => return unavailable(&why),
    };
    db.sql(
        "CREATE DATABASE cells; USE cells;
         CREATE TABLE cells.users (id INT PRIMARY KEY, login VARCHAR(64), quota BIGINT);
         CREATE TABLE cells.files (id INT PRIMARY KEY AUTO_INCREMENT, owner INT, path TEXT, size BIGINT, KEY (owner));
         CREATE TABLE cells.shares (id INT PRIMARY KEY, file INT, token CHAR(32));
         INSERT INTO cells.users VALUES (1,'alice',10737418240),(2,'bob',5368709120),(3,'carol',0);
         INSERT INTO cells.files (owner, path, size) SELECT 1 + seq % 3, CONCAT('/personal/f', seq, '.docx'), seq * 1000 FROM seq_1_to_500;
         INSERT INTO cells.shares VALUES (1, 10, MD5('a')), (2, 20, MD5('b'));",
    );

    let t = TestRepo::new("mariadb");
    let home = t.dir.mkdir("cells");
    t.dir.write(
        "cells/pydio.json",
        b"{\"frontend\": {\"url\": \"https://cells.example\"}}",
    );
    t.dir
        .write("cells/data/personal/alice/report.docx", &[7u8; 20000]);
    let marker = t.dir.join("finally.log");
    let cfg = write_config(
        &t,
        &(profile_head(&t, "cells")
            + &format!(
                "[profiles.cells.backup]\npaths = [{home:?}]\nexclude = [\"{}/logs\"]\n\
                 [profiles.cells.backup.streams]\n\"cells.sql\" = {:?}\n\
                 [profiles.cells.hooks]\nfinally = \"echo $CELLAR_STATUS >> {}\"\n\
                 [profiles.cells.forget]\nkeep-last = 10\n\
                 [profiles.cells.check]\nread-data-subset = \"auto/7\"\n",
                home.display(),
                db.dump_command("cells"),
                marker.display()
            )),
    );
    let first_home = t.dir.join("home-at-first-run");
    let r = Command::new("cp")
        .arg("-a")
        .arg(&home)
        .arg(&first_home)
        .status()
        .unwrap();
    assert!(r.success());

    let r1 = run_profile(&cfg, "cells");
    assert_eq!(r1.code, exit::OK, "{}", r1.report());
    let first = r1.json()["snapshot_id"].as_str().unwrap().to_string();
    let sums_at_first = db.checksums("cells", &TABLES);

    // A day of use: rows change and go, a table is dropped, a file is added.
    db.sql(
        "UPDATE cells.users SET quota = quota + 1 WHERE id = 2;
         DELETE FROM cells.files WHERE id % 7 = 0;
         INSERT INTO cells.files (owner, path, size) VALUES (3, '/personal/new.odt', 1);
         DROP TABLE cells.shares;",
    );
    t.dir.write("cells/data/personal/bob/new.odt", b"new");
    let r2 = run_profile(&cfg, "cells");
    assert_eq!(r2.code, exit::OK, "{}", r2.report());
    let second = r2.json()["snapshot_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ok\nok\n");

    // The restore recipe: the folder back in its place, the dump into MySQL.
    let dump = t.dir.join("cells-first.sql");
    let out = t
        .cellar()
        .args(["dump", &format!("{first}:/cells.sql")])
        .ok();
    std::fs::write(&dump, out.stdout.as_bytes()).unwrap();
    db.sql("CREATE DATABASE cells_restored");
    db.load("cells_restored", &dump);
    let restored = db.checksums("cells_restored", &TABLES);
    assert_eq!(
        restored, sums_at_first,
        "restored database differs from the first night's"
    );
    // And the change of the second night is really in the second dump.
    assert_ne!(
        db.checksums("cells", &TABLES[..2]),
        sums_at_first[..2].to_vec()
    );

    let target = t.dir.join("restore");
    let r = t.restore(&format!("{first}:{}", home.display()), &target);
    assert_eq!(r.code, exit::OK, "{}", r.report());
    assert_same_tree(&first_home, &target);
}
