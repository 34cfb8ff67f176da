#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), starting from
# the committed seeds and regressions. Works on stable Rust (RUSTC_BOOTSTRAP=1).
#
#     fuzz/run.sh [SECONDS] [TARGET...]
#
# New interesting inputs go to fuzz/corpus/TARGET/ (not committed), crashes to
# fuzz/artifacts/TARGET/, a log per target to fuzz/logs/TARGET.log. Needs
# `cargo install cargo-fuzz --locked` once.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build
mkdir -p logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dirs=("corpus/$t" "seeds/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    echo "== $t: ${secs}s"
    if ! cargo fuzz run "$t" "${dirs[@]}" -- -max_total_time="$secs" -print_final_stats=1 \
        >"logs/$t.log" 2>&1; then
        echo "   FAILED: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)|^#[0-9]+ +DONE' "logs/$t.log" | sed 's/^/   /' || true
    echo "   corpus: $(find "corpus/$t" -type f | wc -l) files"
done
exit $status
