#!/usr/bin/env bash
# Builds the front-end fuzzer (clang-14, libFuzzer, ASan, UBSan) and runs it for SECONDS with a
# seed corpus of every .loss file in the project. Usage: run.sh SOURCE_DIR BUILD_DIR SECONDS
set -euo pipefail
src="$1"; build="$2"; seconds="$3"
cmake -S "$src/tests/fuzz" -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)"
corpus="$build/corpus"
mkdir -p "$corpus"
find "$src/stdlib" "$src/examples" "$src/tests/golden" -name '*.loss' -exec cp {} "$corpus/" \;
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$build/frontend_fuzz" "$corpus" -dict="$src/tests/fuzz/loss.dict" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=4096 \
  -max_len=4096 -print_final_stats=1 2>&1 | tail -25
exit "${PIPESTATUS[0]}"
