#!/usr/bin/env bash
# Command-line tests of lossc: exit statuses (0 ok, 1 input errors, 2 usage), help, version,
# stages, JSON diagnostics, the check report. Usage: run.sh LOSSC SOURCE_DIR
set -uo pipefail
lossc="$1"
src="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# check's fingerprints of the catalogue and of past proposals: a fresh cache for this run.
export LOSSC_CACHE_DIR="$tmp/cache"
passed=0
failed=0

# expect STATUS PATTERN -- ARGS...: runs lossc ARGS, checks the exit status and that the
# combined output matches the extended regex PATTERN (empty: no check).
expect() {
  local status="$1" pattern="$2"
  shift 3
  local out rc
  out="$("$lossc" "$@" 2>&1)"
  rc=$?
  if [ "$rc" -ne "$status" ]; then
    echo "FAIL: lossc $* exited $rc, expected $status"; echo "$out" | head -20
    failed=$((failed + 1)); return
  fi
  if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: lossc $* output does not match /$pattern/"; echo "$out" | head -20
    failed=$((failed + 1)); return
  fi
  passed=$((passed + 1))
}

expect 0 '^usage: lossc' -- --help
expect 0 'check a loss' -- -h
expect 0 '^lossc [0-9]+\.[0-9]+\.[0-9]+$' -- --version
expect 2 'no input file' --
expect 2 "unrecognised option '--frobnicate'" -- --frobnicate
expect 2 "unknown stage 'bogus'" -- --emit=bogus "$src/stdlib/dpo.loss"
expect 0 'define .*lossc_forward_backward_f32' -- --emit=llvm "$src/stdlib/dpo.loss"
expect 0 'grad policy_chosen_logps = %' -- --emit=grad "$src/stdlib/dpo.loss"
expect 2 'must be text or json' -- --diagnostics-format=xml "$src/stdlib/dpo.loss"
expect 2 'one input file at a time' -- "$src/stdlib/dpo.loss" "$src/stdlib/lrml.loss"
expect 1 "cannot read '$tmp/missing.loss': No such file or directory" -- "$tmp/missing.loss"
expect 1 'is a directory' -- "$src/stdlib"
expect 0 '' -- "$src/stdlib/dpo.loss"
expect 0 '^3:1 IMPORT' -- --emit=tokens "$src/stdlib/dpo.loss"
expect 0 '\(loss dpo' -- --emit=ast "$src/stdlib/dpo.loss"
expect 0 'softplus %[0-9]+ : real\[B\]' -- --emit=ir "$src/stdlib/dpo.loss"
expect 0 'batch_coupled true, min_batch 2' -- --emit=ir "$src/stdlib/dbaql.loss"
expect 0 '^# The \.loss language' -- reference
expect 1 'error\[E0301\]' -- "$src/tests/golden/scalar_return.loss"
expect 1 '"code":"E0301","name":"scalar-return"' -- --diagnostics-format=json "$src/tests/golden/scalar_return.loss"
expect 1 'error\[E0102\]' -- --emit=ir "$src/tests/golden/syntax.loss"
expect 0 'non-smooth operations' -- check "$src/stdlib/aot.loss"
expect 0 '"schema":"lossc.check/2","passed":true' -- check --json "$src/stdlib/lrml.loss"
expect 0 'a local minimum at rho = -2.3714 ' -- check "$src/stdlib/lrml.loss"
expect 0 'warning\[equivalent\]: this loss trains like dpo of the stdlib: its gradient is 3 times' -- check "$src/examples/dpo_times_three.loss"
expect 1 'error\[E0301\]' -- check "$src/tests/golden/scalar_return.loss"
expect 1 'error\[nan-value\]: the value is NaN in f64 for rho >= 7097' -- check "$src/examples/unstable_hand_sigmoid.loss"
if "$lossc" check --static-only "$src/stdlib/dpo.loss" | grep -q 'numeric screening'; then
  echo "FAIL: check --static-only ran the numeric screening"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
expect 1 '"passed":false' -- check --json "$src/tests/golden/zero_gradient.loss"
expect 0 'passed \(0 errors, 1 warnings\)' -- check "$src/tests/golden/unused_diff_input.loss"
expect 1 'failed \(0 errors, 1 warnings\)' -- check --strict "$src/tests/golden/unused_diff_input.loss"
expect 0 '' -- "$src/stdlib/dpo.loss" -o "$tmp/dpo.so"
if [ -s "$tmp/dpo.so" ] && [ -z "$(ls -A "$tmp" | grep '^\.dpo')" ]; then passed=$((passed + 1)); else
  echo "FAIL: -o left no dpo.so, or left temporary files"; failed=$((failed + 1)); fi
expect 1 "error\[E0504\]: cannot write" -- "$src/stdlib/dpo.loss" -o "$tmp/no/such/dir/dpo.so"

# eval: per-example values and gradients from a CSV (dpo at rho = 0: ln 2, gradient -beta/2).
printf 'policy_chosen_logps,policy_rejected_logps,reference_chosen_logps,reference_rejected_logps\n-1,-2,-1,-2\n' > "$tmp/in.csv"
expect 0 '^0,0\.693147180559945[0-9]*,-0\.0500000000' -- eval "$src/stdlib/dpo.loss" --inputs "$tmp/in.csv"
expect 2 'NAME=VALUE' -- eval "$src/stdlib/dpo.loss" --inputs "$tmp/in.csv" --param beta
expect 1 'outside its declared range' -- eval "$src/stdlib/dpo.loss" --inputs "$tmp/in.csv" --param beta=-1
expect 2 'needs --inputs' -- eval "$src/stdlib/dpo.loss"

# plot: an SVG with one curve per loss in each panel, written atomically.
expect 0 '' -- plot "$src/stdlib/dpo.loss" "$src/stdlib/lrml.loss" --param beta=0.05 --range -8:8 -o "$tmp/p.svg"
if [ "$(grep -c '<path d=' "$tmp/p.svg")" = 4 ] && grep -q 'lrml (beta 0.05, tau 0.05)' "$tmp/p.svg" &&
   [ ! -e "$tmp/p.svg.tmp" ]; then passed=$((passed + 1)); else
  echo "FAIL: plot did not draw 2 losses x 2 panels"; failed=$((failed + 1)); fi
expect 2 'plot needs -o OUT.svg' -- plot "$src/stdlib/dpo.loss"
expect 2 '--range takes LO:HI' -- plot "$src/stdlib/dpo.loss" --range 5:1 -o "$tmp/q.svg"
expect 1 'error\[E0301\]' -- plot "$src/tests/golden/scalar_return.loss" -o "$tmp/q.svg"

# A megabyte of '(' ends in a located error, quickly.
head -c 1048576 /dev/zero | tr '\0' '(' > "$tmp/deep.loss"
start=$(date +%s%N)
expect 1 'deep.loss:1:129: error\[E0006\]' -- "$tmp/deep.loss"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "a megabyte of '(' rejected in ${elapsed_ms} ms"
# Binary junk and /dev/zero (bounded read) are clean errors too.
head -c 4096 /dev/urandom > "$tmp/junk.loss"
expect 1 'error\[E000[34]\]|error\[E0101\]' -- "$tmp/junk.loss"
expect 1 'error\[E0002\]' -- /dev/zero

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
