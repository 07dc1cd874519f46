#!/usr/bin/env bash
# Fuzzes Botora's parsers with cargo-fuzz (libFuzzer), on the stable
# toolchain.
#
#   scripts/fuzz.sh                    every target, 30 seconds each
#   scripts/fuzz.sh host config        only these targets
#   FUZZ_SECONDS=600 scripts/fuzz.sh   a long run
#
# The seeds in fuzz/corpus/<target>/ are committed and only read. What a
# run discovers goes to fuzz/target/corpus/<target>/ (ignored by git) and
# is reused by the next run on this machine. A crash leaves its input in
# fuzz/artifacts/<target>/; the other targets still run, then the script
# exits 1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
seconds=${FUZZ_SECONDS:-30}
all=(host bearer_token body config)
targets=("${@:-${all[@]}}")

# cargo-fuzz passes nightly-only flags (-Zsanitizer and friends); stable
# rustc takes them with RUSTC_BOOTSTRAP. The build stays in fuzz/target.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$fuzz/target"

# The config target must see only the TOML it is fed.
unset BOTORA_DATABASE_URL BOTORA_SIGNING_KEY BOTORA_LISTEN BOTORA_ADMIN_LISTEN

# Step 1: cargo-fuzz itself.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cd "$fuzz"
known=$(cargo fuzz list)
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$known"; then
        echo "fuzz: no target $target (have: $(xargs <<<"$known"))" >&2
        exit 2
    fi
done

# Step 2: build the targets once; the runs below use these binaries, so a
# source edit during a run cannot trigger a rebuild.
started=$SECONDS
if [ ${#targets[@]} -eq 1 ]; then
    cargo fuzz build "${targets[0]}"
else
    cargo fuzz build
fi
echo "fuzz: built in $((SECONDS - started))s"
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

# Step 3: fuzz each target for $seconds, growing a scratch corpus (libFuzzer
# writes what it finds to the first directory only).
export ASAN_OPTIONS=detect_odr_violation=0
mkdir -p target/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "target/corpus/$target" "artifacts/$target"
    log="target/logs/$target.log"
    started=$SECONDS
    outcome=ok
    if ! "$bin/$target" -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" \
        -timeout=10 -print_final_stats=1 "target/corpus/$target" "corpus/$target" \
        >"$log" 2>&1; then
        outcome=CRASH
        failed+=("$target")
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    printf 'fuzz: %-13s %-5s %12s execs (%s/s) in %ss\n' \
        "$target" "$outcome" "${execs:-?}" "${rate:-?}" "$((SECONDS - started))"
    if [ "$outcome" = CRASH ]; then
        grep -m 1 -A 12 -E '^thread .* panicked|ERROR: (libFuzzer|AddressSanitizer)' "$log" |
            sed "s/^/fuzz: $target: /" || true
        grep -E 'Test unit written to' "$log" | sed "s/^/fuzz: $target: /" || true
        echo "fuzz: $target: reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target <file>"
        echo "fuzz: $target: minimise:  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin $target <file>"
    fi
done

# Step 4: the verdict.
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}; inputs in fuzz/artifacts/, logs in fuzz/target/logs/" >&2
    exit 1
fi
echo "fuzz: no crash in ${targets[*]}"
