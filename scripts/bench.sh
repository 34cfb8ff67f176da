#!/usr/bin/env bash
# bench.sh — end-to-end benchmark of cellar against restic (and rustic) on a
# deterministic, Pydio-Cells-like corpus.  Not part of the test suite.
#
#   scripts/bench.sh [--small] [--runs N] [--tools cellar,restic,rustic]
#                    [--workdir DIR] [--no-drop-caches]
#
# See scripts/README.md for what every step measures and the caveats.

set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPT_DIR")
GEN="$SCRIPT_DIR/gen_corpus.py"

SMALL=0
RUNS=3
TOOLS="cellar,restic,rustic"
WORKDIR=""
DROP=1

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --small) SMALL=1 ;;
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --runs=*) RUNS=${1#*=} ;;
        --tools) TOOLS=${2:?--tools needs a value}; shift ;;
        --tools=*) TOOLS=${1#*=} ;;
        --workdir) WORKDIR=${2:?--workdir needs a value}; shift ;;
        --workdir=*) WORKDIR=${1#*=} ;;
        --no-drop-caches) DROP=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$RUNS" in ''|*[!0-9]*|0) echo "bench.sh: --runs must be a positive integer" >&2; exit 2 ;; esac

MODE=full; SMALLFLAG=()
if [ "$SMALL" = 1 ]; then MODE=small; SMALLFLAG=(--small); fi
WORKDIR=${WORKDIR:-$ROOT/target/bench-$MODE}
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)

CORPUS="$WORKDIR/corpus"            # cached between invocations
BASE="$CORPUS/cells"                # pristine folder corpus
SQL1="$CORPUS/night1.sql"
SQL2="$CORPUS/night2.sql"
SRC="$WORKDIR/src/cells"            # working copy that gets backed up + mutated
LOGDIR="$WORKDIR/logs"
MEAS="$WORKDIR/measurements.tsv"
NOTES="$WORKDIR/notes.txt"
META="$WORKDIR/meta.txt"
PASSFILE="$WORKDIR/password"
TIME_BIN=/usr/bin/time

STEPS=(init backup sql1 sql2 incr restore restore2 check find)
SIZE_STEPS=" init backup sql1 sql2 incr "

log() { printf '%s\n' "$*" >&2; }
note() { printf '%s\n' "$*" >>"$NOTES"; }
is_root() { [ "$(id -u)" = 0 ]; }

rm -rf "$LOGDIR" "$WORKDIR/repo" "$WORKDIR/cache" "$WORKDIR/restore" "$WORKDIR/src"
mkdir -p "$LOGDIR"
: >"$NOTES"
: >"$META"
printf 'run\ttool\tstep\tstatus\twall_s\tcpu_s\trss_kib\trepo_bytes\n' >"$MEAS"
printf 'cellar-bench password (not a secret)\n' >"$PASSFILE"
chmod 600 "$PASSFILE"

apt_install() {  # apt_install PKG — best effort, root only
    is_root || return 1
    command -v apt-get >/dev/null || return 1
    log "bench: installing Debian package $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >>"$LOGDIR/apt.log" 2>&1 && return 0
    apt-get update -qq >>"$LOGDIR/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >>"$LOGDIR/apt.log" 2>&1
}

# ---------------------------------------------------------------- prerequisites
if [ ! -x "$TIME_BIN" ]; then
    apt_install time || true
fi
if [ ! -x "$TIME_BIN" ]; then
    echo "bench.sh: $TIME_BIN (Debian package 'time') is required" >&2
    exit 1
fi

declare -A AVAIL=() BIN=()
IFS=',' read -r -a REQ_TOOLS <<<"$TOOLS"
for t in "${REQ_TOOLS[@]}"; do
    case "$t" in
        cellar)
            BIN[cellar]=${CELLAR_BIN:-$ROOT/target/release/cellar}
            if [ ! -x "${BIN[cellar]}" ] && [ -z "${CELLAR_BIN:-}" ]; then
                log "bench: building cellar (cargo build --release)"
                (cd "$ROOT" && cargo build --release) >"$LOGDIR/cargo-build.log" 2>&1 ||
                    log "bench: cargo build --release failed, see $LOGDIR/cargo-build.log"
            fi
            if [ -x "${BIN[cellar]}" ]; then AVAIL[cellar]=1; else
                AVAIL[cellar]=0; note "cellar: binary ${BIN[cellar]} not available (build failed?): column is n/a"
            fi ;;
        restic)
            if ! command -v restic >/dev/null; then apt_install restic || true; fi
            if command -v restic >/dev/null; then AVAIL[restic]=1; BIN[restic]=$(command -v restic); else
                AVAIL[restic]=0; note "restic: not installed (needs root for apt-get install restic): column is n/a"
            fi ;;
        rustic)
            if command -v rustic >/dev/null; then AVAIL[rustic]=1; BIN[rustic]=$(command -v rustic); else
                AVAIL[rustic]=0; note "rustic: not on PATH: column is n/a"
            fi ;;
        *) echo "bench.sh: unknown tool '$t' (expected cellar, restic, rustic)" >&2; exit 2 ;;
    esac
done

tool_version() {
    case "$1" in
        cellar) "${BIN[cellar]}" --version 2>/dev/null | head -n1 || true ;;
        restic) restic version 2>/dev/null | head -n1 ;;
        rustic) rustic --version 2>/dev/null | head -n1 ;;
    esac
}

RESTIC_INIT_ARGS=()
RESTIC_OVERWRITE=0
if [ "${AVAIL[restic]:-0}" = 1 ]; then
    restic init --help 2>&1 | grep -q -- '--repository-version' && RESTIC_INIT_ARGS=(--repository-version 2)
    restic restore --help 2>&1 | grep -q -- '--overwrite' && RESTIC_OVERWRITE=1
    [ "$RESTIC_OVERWRITE" = 1 ] ||
        note "restic: this version has no 'restore --overwrite if-changed' (added in 0.17): 'restore into up-to-date target' is n/a"
fi

# ---------------------------------------------------------------- corpus (cached)
STAMP="$(sha256sum "$GEN" | cut -c1-16) $MODE"
if [ "$(cat "$CORPUS/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    log "bench: generating $MODE corpus in $CORPUS (cached for later runs)"
    rm -rf "$CORPUS"
    mkdir -p "$CORPUS"
    python3 "$GEN" folder "$BASE" "${SMALLFLAG[@]}" || { echo "bench.sh: corpus generation failed" >&2; exit 1; }
    python3 "$GEN" sqldump "$SQL1" "${SMALLFLAG[@]}" --night 1 || { echo "bench.sh: sqldump failed" >&2; exit 1; }
    python3 "$GEN" sqldump "$SQL2" "${SMALLFLAG[@]}" --night 2 || { echo "bench.sh: sqldump failed" >&2; exit 1; }
    echo "$STAMP" >"$CORPUS/.stamp"
else
    log "bench: using cached $MODE corpus in $CORPUS"
fi
read -r CORPUS_FILES CORPUS_BYTES < <(python3 "$GEN" stats "$BASE")

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "mode=$MODE"
    echo "runs=$RUNS"
    echo "tools=$TOOLS"
    echo "corpus_files=$CORPUS_FILES"
    echo "corpus_bytes=$CORPUS_BYTES"
    echo "sql1_bytes=$(stat -c %s "$SQL1")"
    echo "sql2_bytes=$(stat -c %s "$SQL2")"
    echo "host=$(nproc) CPUs, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    for t in "${REQ_TOOLS[@]}"; do
        [ "${AVAIL[$t]}" = 1 ] && echo "version_$t=$(tool_version "$t")"
    done
} >>"$META"

# ---------------------------------------------------------------- helpers
drop_caches() {
    [ "$DROP" = 1 ] || return 0
    sync
    if ! (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
        DROP=0
        log "bench: note: cannot write /proc/sys/vm/drop_caches; page cache is NOT dropped between steps"
        note "page cache could not be dropped (no permission): timings are warm-cache"
    fi
}

wall_seconds() {  # "1:02:03.45" / "2:03.45" -> seconds
    awk -v t="$1" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }'
}

# Fills CMD (array) and STDIN_FILE for TOOL STEP; returns 1 when the tool has
# no equivalent of the step (reported as n/a).
build_cmd() {
    local tool=$1 step=$2 repo="$WORKDIR/repo/$1" cache="$WORKDIR/cache/$1"
    local target="$WORKDIR/restore/$1"
    STDIN_FILE=""
    CMD=()
    case "$tool" in
    cellar)
        local c=(env "CELLAR_CACHE_DIR=$cache" "${BIN[cellar]}")
        local ra=(-r "$repo" --password-file "$PASSFILE")
        case "$step" in
            init)     CMD=("${c[@]}" init "${ra[@]}") ;;
            backup|incr) CMD=("${c[@]}" backup "${ra[@]}" "$SRC" --json) ;;
            sql1)     CMD=("${c[@]}" backup "${ra[@]}" --stdin --stdin-filename cells.sql); STDIN_FILE=$SQL1 ;;
            sql2)     CMD=("${c[@]}" backup "${ra[@]}" --stdin --stdin-filename cells.sql); STDIN_FILE=$SQL2 ;;
            restore|restore2) CMD=("${c[@]}" restore "${ra[@]}" "$SNAP" --target "$target") ;;
            check)    CMD=("${c[@]}" check "${ra[@]}" --read-data) ;;
            find)     CMD=("${c[@]}" find "${ra[@]}" '*.docx') ;;
        esac ;;
    restic)
        local c=(env "RESTIC_REPOSITORY=$repo" "RESTIC_PASSWORD_FILE=$PASSFILE" "RESTIC_CACHE_DIR=$cache" restic)
        case "$step" in
            init)     CMD=("${c[@]}" init "${RESTIC_INIT_ARGS[@]}") ;;
            backup|incr) CMD=("${c[@]}" backup --json --tag folder "$SRC") ;;
            sql1)     CMD=("${c[@]}" backup --tag sql --stdin --stdin-filename cells.sql); STDIN_FILE=$SQL1 ;;
            sql2)     CMD=("${c[@]}" backup --tag sql --stdin --stdin-filename cells.sql); STDIN_FILE=$SQL2 ;;
            restore)  CMD=("${c[@]}" restore "$SNAP" --target "$target") ;;
            restore2) [ "$RESTIC_OVERWRITE" = 1 ] || return 1
                      CMD=("${c[@]}" restore "$SNAP" --target "$target" --overwrite if-changed) ;;
            check)    CMD=("${c[@]}" check --read-data) ;;
            find)     CMD=("${c[@]}" find '*.docx') ;;
        esac ;;
    rustic)
        local c=(env "RUSTIC_REPOSITORY=$repo" "RUSTIC_PASSWORD_FILE=$PASSFILE" "RUSTIC_CACHE_DIR=$cache"
                 "RUSTIC_NO_PROGRESS=true" rustic)
        case "$step" in
            init)     CMD=("${c[@]}" init) ;;
            backup|incr) CMD=("${c[@]}" backup --json --tag folder "$SRC") ;;
            sql1)     CMD=("${c[@]}" backup --tag sql --stdin-filename cells.sql -); STDIN_FILE=$SQL1 ;;
            sql2)     CMD=("${c[@]}" backup --tag sql --stdin-filename cells.sql -); STDIN_FILE=$SQL2 ;;
            restore|restore2) CMD=("${c[@]}" restore "$SNAP" "$target") ;;
            check)    CMD=("${c[@]}" check --read-data) ;;
            find)     CMD=("${c[@]}" find --glob '*.docx') ;;
        esac ;;
    esac
    return 0
}

# Snapshot id from a backup's JSON output ({"snapshot_id":..} / {"id":..} / ...).
snapshot_id_from() {
    python3 - "$1" <<'EOF'
import json, re, sys
txt = open(sys.argv[1], errors="replace").read()
hexre = re.compile(r"[0-9a-fA-F]{6,64}")
found = []
def walk(o):
    if isinstance(o, list):
        for x in o:
            walk(x)
    elif isinstance(o, dict):
        for k in ("snapshot_id", "snapshot", "id", "short_id"):
            v = o.get(k)
            if isinstance(v, str) and hexre.fullmatch(v):
                found.append(v)
                return
            if isinstance(v, dict):
                walk(v)
                return
docs = []
try:
    docs.append(json.loads(txt))
except ValueError:
    for line in txt.splitlines():
        line = line.strip()
        if line[:1] in "{[":
            try:
                docs.append(json.loads(line))
            except ValueError:
                pass
for d in docs:
    walk(d)
print(found[-1] if found else "")
EOF
}

# Newest snapshot (JSON listing) whose paths contain the folder.
snapshot_id_from_listing() {
    python3 - "$1" "$SRC" <<'EOF'
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except ValueError:
    print(""); sys.exit()
if isinstance(data, dict):
    data = data.get("snapshots") or data.get("items") or []
src = sys.argv[2]
best = None
for s in data if isinstance(data, list) else []:
    if not isinstance(s, dict):
        continue
    paths = [str(p) for p in (s.get("paths") or [])]
    if any(p.rstrip("/") == src or p.endswith("/cells") for p in paths):
        if best is None or str(s.get("time", "")) >= str(best.get("time", "")):
            best = s
print((best or {}).get("id") or (best or {}).get("short_id") or "")
EOF
}

remember_snapshot() {  # TOOL STEP: sets SNAP after a successful folder backup
    local tool=$1 step=$2 out="$LOGDIR/run$RUN/$1/$2.out" id
    id=$(snapshot_id_from "$out")
    if [ -z "$id" ]; then
        local lst="$LOGDIR/run$RUN/$tool/$step.snapshots.json"
        case "$tool" in
            cellar) "${BIN[cellar]}" snapshots -r "$WORKDIR/repo/cellar" --password-file "$PASSFILE" --json ;;
            restic) RESTIC_REPOSITORY="$WORKDIR/repo/restic" RESTIC_PASSWORD_FILE=$PASSFILE \
                    RESTIC_CACHE_DIR="$WORKDIR/cache/restic" restic snapshots --json ;;
            rustic) RUSTIC_REPOSITORY="$WORKDIR/repo/rustic" RUSTIC_PASSWORD_FILE=$PASSFILE \
                    RUSTIC_CACHE_DIR="$WORKDIR/cache/rustic" rustic snapshots --json ;;
        esac >"$lst" 2>/dev/null
        id=$(snapshot_id_from_listing "$lst")
    fi
    if [ -n "$id" ]; then
        SNAP=$id
    else
        SNAP=latest
        note "$tool run $RUN: no snapshot id found after '$step' (JSON output / snapshots --json); restore uses 'latest'"
    fi
}

declare -A ST=()
RUN=0

record() {  # TOOL STEP STATUS WALL CPU RSS REPO
    ST["$1:$2"]=$3
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$RUN" "$1" "$2" "$3" "$4" "$5" "$6" "$7" >>"$MEAS"
}

prereq() {
    case "$1" in
        init) echo "" ;;
        backup|sql1|check) echo "init" ;;
        sql2) echo "sql1" ;;
        incr|find|restore) echo "backup" ;;
        restore2) echo "restore" ;;
    esac
}

repo_bytes() {  # apparent size of the repository's files (directories not counted)
    [ -d "$WORKDIR/repo/$1" ] || { echo 0; return; }
    find "$WORKDIR/repo/$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'
}

LAST_REPO=0
validate() {  # TOOL STEP REPO_BYTES -> prints a reason when a "successful" step did nothing
    local tool=$1 step=$2 repo=$3
    case "$step" in
        init)
            [ "${repo:-0}" -gt 0 ] || echo "no repository was created in $WORKDIR/repo/$tool" ;;
        backup|sql1|sql2|incr)
            [ "${repo:-0}" -gt "$LAST_REPO" ] || echo "the repository did not grow ($LAST_REPO -> ${repo:-0} bytes)" ;;
        restore|restore2)
            local v
            v=$(verify_restore "$tool")
            log "  $tool $step verification: $v"
            case "$v" in ok*) ;; *) echo "restore verification failed: $v" ;; esac ;;
        find)
            grep -q '\.docx' "$LOGDIR/run$RUN/$tool/find.out" || echo "find printed no *.docx match" ;;
    esac
}

run_step() {  # TOOL STEP
    local tool=$1 step=$2 d="$LOGDIR/run$RUN/$1" p
    mkdir -p "$d"
    local out="$d/$step.out" err="$d/$step.err" tf="$d/$step.time"
    for p in $(prereq "$step"); do
        if [ "${ST[$tool:$p]:-}" != ok ]; then
            record "$tool" "$step" skip "" "" "" ""
            log "  $tool $step: skipped ($p did not succeed)"
            return
        fi
    done
    if ! build_cmd "$tool" "$step"; then
        record "$tool" "$step" n/a "" "" "" ""
        log "  $tool $step: n/a"
        return
    fi
    printf '%q ' "${CMD[@]}" >"$d/$step.cmd"
    [ -n "$STDIN_FILE" ] && printf '< %q' "$STDIN_FILE" >>"$d/$step.cmd"
    drop_caches
    local rc
    if [ -n "$STDIN_FILE" ]; then
        cat "$STDIN_FILE" | "$TIME_BIN" -v -o "$tf" "${CMD[@]}" >"$out" 2>"$err"
        rc=${PIPESTATUS[1]}
    else
        "$TIME_BIN" -v -o "$tf" "${CMD[@]}" </dev/null >"$out" 2>"$err"
        rc=$?
    fi
    local wall user sys rss cpu status repo=""
    wall=$(wall_seconds "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tf")")
    user=$(sed -n 's/.*User time (seconds): //p' "$tf")
    sys=$(sed -n 's/.*System time (seconds): //p' "$tf")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf")
    cpu=$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.2f", u + s }')
    if [ "$rc" = 0 ]; then
        status=ok
    elif grep -Eqi 'not (yet )?implemented|unimplemented|unrecognized subcommand|unknown (sub)?command|unrecognized (option|argument)|unexpected argument|unknown (flag|shorthand flag)' "$err" "$out" 2>/dev/null; then
        status=n/a
        note "$tool $step (run $RUN): not supported yet (exit $rc): $(grep -hEim1 'implemented|unrecognized|unknown|unexpected' "$err" "$out" | cut -c1-200)"
    else
        status=fail
        note "$tool $step (run $RUN): exit $rc: $(tail -n 3 "$err" | tr '\n' ' ' | cut -c1-300) [log: $err]"
    fi
    case "$SIZE_STEPS" in *" $step "*) repo=$(repo_bytes "$tool") ;; esac
    if [ "$status" = ok ]; then   # exit 0 is not enough: catch stubs and no-ops
        local bad
        bad=$(validate "$tool" "$step" "$repo")
        if [ -n "$bad" ]; then
            status=fail
            note "$tool $step (run $RUN): exit 0 but $bad [log: $out]"
        fi
    fi
    case "$SIZE_STEPS" in *" $step "*) LAST_REPO=${repo:-0} ;; esac
    record "$tool" "$step" "$status" "$wall" "$cpu" "$rss" "$repo"
    log "$(printf '  %-7s %-9s %-5s wall %8ss  cpu %8ss  rss %8s KiB %s' "$tool" "$step" "$status" "$wall" "$cpu" "$rss" "${repo:+ repo $repo B}")"
}

verify_restore() {  # TOOL: compare the restored tree with the backed-up folder
    python3 - "$WORKDIR/restore/$1" "$SRC" <<'EOF'
import filecmp, os, sys
target, src = sys.argv[1], sys.argv[2]
root = None
for dp, dn, fn in os.walk(target):
    dn.sort()
    if "pydio.json" in fn and os.path.isdir(os.path.join(dp, "data")):
        root = dp
        break
if root is None:
    print("no restored tree found (pydio.json missing)"); sys.exit()
def listing(r):
    out = {}
    for dp, dn, fn in os.walk(r):
        for n in fn:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, r)] = os.lstat(p).st_size
    return out
a, b = listing(src), listing(root)
missing = [k for k in a if k not in b]
extra = [k for k in b if k not in a]
size = [k for k in a if k in b and a[k] != b[k]]
sample = sorted(a)[:: max(1, len(a) // 300)]
content = [k for k in sample if k in b and a[k] == b[k]
           and not filecmp.cmp(os.path.join(src, k), os.path.join(root, k), shallow=False)]
if missing or extra or size or content:
    print(f"MISMATCH: {len(missing)} missing, {len(extra)} extra, {len(size)} size differences, "
          f"{len(content)}/{len(sample)} sampled files differ (e.g. {(missing + extra + size + content)[:3]})")
else:
    print(f"ok ({len(a)} files, sizes match, {len(sample)} sampled files identical)")
EOF
}

pipeline() {  # TOOL: one full repetition with a fresh repository
    local tool=$1
    SNAP=latest
    LAST_REPO=0
    rm -rf "$WORKDIR/repo/$tool" "$WORKDIR/cache/$tool" "$WORKDIR/restore/$tool" "$WORKDIR/src"
    mkdir -p "$WORKDIR/repo" "$WORKDIR/cache/$tool" "$WORKDIR/src"
    cp -a "$BASE" "$SRC"                                   # untimed: pristine copy
    run_step "$tool" init
    run_step "$tool" backup
    [ "${ST[$tool:backup]}" = ok ] && remember_snapshot "$tool" backup
    run_step "$tool" sql1
    run_step "$tool" sql2
    python3 "$GEN" mutate "$SRC" "${SMALLFLAG[@]}" 2>>"$LOGDIR/mutate.log"   # untimed
    run_step "$tool" incr
    [ "${ST[$tool:incr]}" = ok ] && remember_snapshot "$tool" incr
    [ "${ST[$tool:incr]}" != ok ] && [ "${ST[$tool:backup]}" = ok ] &&
        note "$tool run $RUN: incremental backup failed; restore uses the first folder snapshot (verification will flag the difference)"
    mkdir -p "$WORKDIR/restore/$tool"                      # empty target
    run_step "$tool" restore
    run_step "$tool" restore2
    run_step "$tool" check
    run_step "$tool" find
    rm -rf "$WORKDIR/repo/$tool" "$WORKDIR/cache/$tool" "$WORKDIR/restore/$tool"
}

# ---------------------------------------------------------------- main loop
[ "$DROP" = 1 ] || note "page cache dropping disabled (--no-drop-caches): timings are warm-cache"
ACTIVE=()
for t in "${REQ_TOOLS[@]}"; do [ "${AVAIL[$t]}" = 1 ] && ACTIVE+=("$t"); done
[ ${#ACTIVE[@]} -gt 0 ] || log "bench: no requested tool is available"

for ((RUN = 1; RUN <= RUNS; RUN++)); do
    n=${#ACTIVE[@]}
    for ((k = 0; k < n; k++)); do   # rotate the tool order every run
        tool=${ACTIVE[$(((k + RUN - 1) % n))]}
        log "bench: run $RUN/$RUNS: $tool"
        pipeline "$tool"
    done
done
rm -rf "$WORKDIR/src"

# ---------------------------------------------------------------- report
python3 - "$MEAS" "$META" "$NOTES" "$TOOLS" >"$WORKDIR/results.md" <<'EOF'
import statistics, sys
meas_path, meta_path, notes_path, tools_arg = sys.argv[1:5]
tools = [t for t in tools_arg.split(",") if t]
meta = dict(l.rstrip("\n").split("=", 1) for l in open(meta_path) if "=" in l)
notes = [l.rstrip("\n") for l in open(notes_path) if l.strip()]
rows = [l.rstrip("\n").split("\t") for l in open(meas_path)][1:]
runs = int(meta.get("runs", "1"))
MiB = 1024 * 1024

STEPS = [("init", "init"),
         ("backup", "first folder backup"),
         ("sql1", "SQL dump night 1 (stdin)"),
         ("sql2", "SQL dump night 2 (stdin)"),
         ("incr", "next-night incremental"),
         ("restore", "restore to empty target"),
         ("restore2", "restore into up-to-date target"),
         ("check", "check --read-data"),
         ("find", "find '*.docx'")]

by = {}
for r in rows:
    run, tool, step, status, wall, cpu, rss, repo = (r + [""] * 8)[:8]
    by.setdefault((tool, step), []).append(dict(status=status, wall=wall, cpu=cpu, rss=rss, repo=repo))

def med(tool, step, field, conv):
    recs = by.get((tool, step))
    if not recs:
        return None, "n/a"
    ok = [conv(r[field]) for r in recs if r["status"] == "ok" and r[field] not in ("", None)]
    if ok:
        v = statistics.median(ok)
        return v, None if len(ok) == len(recs) else f"{len(ok)}/{len(recs)} ok"
    st = {r["status"] for r in recs}
    for s in ("fail", "n/a", "skip"):
        if s in st:
            return None, s
    return None, "n/a"

def fmt(v, tag, nd):
    if v is None:
        return tag
    s = f"{v:.{nd}f}"
    return f"{s} ({tag})" if tag else s

def table(title, field, conv, nd):
    out = [f"### {title}", ""]
    hdr = ["step"] + tools
    ratio = "cellar" in tools and "restic" in tools
    if ratio:
        hdr.append("cellar/restic")
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" + "---:|" * (len(hdr) - 1))
    for step, label in STEPS:
        vals = {t: med(t, step, field, conv) for t in tools}
        cells = [label] + [fmt(*vals[t], nd) for t in tools]
        if ratio:
            c, r = vals["cellar"][0], vals["restic"][0]
            cells.append(f"{c / r:.2f}" if c is not None and r not in (None, 0) else "—")
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]

def repo_table():
    out = ["### Repository size (MiB, median; growth vs. previous step in parentheses)", ""]
    hdr = ["after step"] + tools
    ratio = "cellar" in tools and "restic" in tools
    if ratio:
        hdr.append("cellar/restic")
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "---|" + "---:|" * (len(hdr) - 1))
    chain = ["init", "backup", "sql1", "sql2", "incr"]
    labels = dict(STEPS)
    for i, step in enumerate(chain):
        cells, sizes = [labels[step]], {}
        for t in tools:
            recs = by.get((t, step), [])
            prev = by.get((t, chain[i - 1]), []) if i else []
            tot = [int(r["repo"]) for r in recs if r["status"] == "ok" and r["repo"]]
            growth = [int(a["repo"]) - int(b["repo"]) for a, b in zip(recs, prev)
                      if a["status"] == "ok" and a["repo"] and b["repo"]]
            if tot:
                v = statistics.median(tot) / MiB
                sizes[t] = v
                s = f"{v:.{1 if v >= 10 else 3}f}"
                if i and growth:
                    g = statistics.median(growth) / MiB
                    s += f" ({g:+.{1 if abs(g) >= 10 else 2}f})"
                cells.append(s)
            else:
                _, tag = med(t, step, "repo", int)
                cells.append(tag or "n/a")
        if ratio:
            c, r = sizes.get("cellar"), sizes.get("restic")
            cells.append(f"{c / r:.2f}" if c is not None and r else "—")
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]

cf, cb = int(meta.get("corpus_files", 0)), int(meta.get("corpus_bytes", 0))
s1, s2 = int(meta.get("sql1_bytes", 0)), int(meta.get("sql2_bytes", 0))
lines = [f"## cellar benchmark — {meta.get('mode')} corpus, median of {runs} run(s)", "",
         f"- date: {meta.get('date')}; host: {meta.get('host')}",
         f"- folder corpus: {cf} files, {cb / MiB:.1f} MiB; SQL dumps: night 1 {s1 / MiB:.1f} MiB, "
         f"night 2 {s2 / MiB:.1f} MiB (fed through a pipe)"]
for t in tools:
    if f"version_{t}" in meta:
        lines.append(f"- {t}: {meta[f'version_{t}']}")
lines += ["- cells: median over successful runs; `fail` = command failed, `n/a` = not supported / "
          "tool missing, `skip` = a prerequisite step failed; `(k/N ok)` = only k of N runs succeeded", ""]
lines += table("Wall time (s)", "wall", float, 2)
lines += table("CPU time, user+sys (s)", "cpu", float, 2)
lines += table("Peak RSS (MiB)", "rss", lambda x: int(x) / 1024, 1)
lines += repo_table()
if notes:
    lines += ["### Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
print("\n".join(lines))
EOF
cat "$WORKDIR/results.md"
log "bench: results in $WORKDIR/results.md (raw: $MEAS, logs: $LOGDIR)"
