#!/usr/bin/env bash
# cellar end to end on a throw-away local repository:
#   build (release) -> init -> back up this repository's src/ and format-spec/
#   together with a generated SQL dump read from standard input -> list
#   snapshots -> restore everything, and one folder, into temp dirs -> compare
#   with the originals.
# Needs only a Rust toolchain. Nothing outside a temp dir is written (except
# cargo's target/). Keep the temp dir with KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== cargo build --release"
cargo build --release
cellar="${CARGO_TARGET_DIR:-$root/target}/release/cellar"

work=$(mktemp -d "${TMPDIR:-/tmp}/cellar-demo.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    echo "(keeping $work)"
else
    trap 'rm -rf "$work"' EXIT
fi

# A random password in a file: how a cron job would do it.
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/password"
chmod 600 "$work/password"
export CELLAR_REPOSITORY="$work/repo"
export CELLAR_PASSWORD_FILE="$work/password"
export CELLAR_CACHE_DIR="$work/cache"

# A mysqldump-like stream, also kept as a file to compare with after restore.
{
    echo "-- MariaDB dump (cellar demo)"
    echo "CREATE TABLE idm_user (id INT PRIMARY KEY, login VARCHAR(64), updated DATETIME);"
    for i in $(seq 1 20000); do
        echo "INSERT INTO idm_user VALUES ($i,'user$i','2026-11-25 03:00:00');"
    done
} >"$work/cells.sql"

echo "== cellar init"
"$cellar" init

echo "== cellar backup src/ format-spec/ + stdin as /cells.sql"
"$cellar" backup --tag demo --stdin --stdin-filename cells.sql \
    "$root/src" "$root/format-spec" <"$work/cells.sql"

echo "== cellar backup again (unchanged files are not read again, the dump deduplicates)"
"$cellar" backup --tag demo --stdin --stdin-filename cells.sql \
    "$root/src" "$root/format-spec" <"$work/cells.sql"

echo "== cellar snapshots"
"$cellar" snapshots

echo "== cellar restore latest"
"$cellar" restore latest --target "$work/restore"
diff -r "$root/src" "$work/restore$root/src"
diff -r "$root/format-spec" "$work/restore$root/format-spec"
cmp "$work/cells.sql" "$work/restore/cells.sql"

echo "== cellar restore latest:$root/format-spec"
"$cellar" restore "latest:$root/format-spec" --target "$work/restore-one"
diff -r "$root/format-spec" "$work/restore-one"

echo "== cellar key list"
"$cellar" key list

echo
echo "demo OK: restored trees and the dump are identical to the originals"
echo "repository size: $(du -sh "$work/repo" | cut -f1)"
