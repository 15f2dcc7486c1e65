#!/usr/bin/env bash
# Instructions per gap search by callgrind: maple (the `gap_kernel` binary) and, when it is
# built, the kernel's C maple tree on the same layout (/work/shared/kernel-baseline/README.md).
#
#   [REPS=20000] benches/scripts/cg-gap.sh [N] [KIND...]   default: N = 100000, kinds k0 k1 k2 t0 s0
#
# Kinds are gap_kernel's (`k0` = the kernel driver's `cg-gap` request: empty_area_rev of 3
# pages over [0, end of the map]). Each count is callgrind's total for the `loop_gap`
# function (search, read section, loop) divided by the number of searches. The kernel's
# driver only has `cg-gap` (its k0); set KERNEL_DRIVER to its path if it is not at the
# default place.
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-100000}"
shift || true
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(k0 k1 k2 t0 s0)
reps="${REPS:-20000}"
cargo build --release -q -p benches --bin gap_kernel
bin=target/release/gap_kernel
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for k in "${kinds[@]}"; do
  total=$(valgrind --tool=callgrind --toggle-collect='*loop_gap*' \
      --callgrind-out-file="$out/cg.$k" "$bin" cg "$k" "$n" "$reps" 2>&1 >"$out/res.$k" |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo "maple  n=$n $k: $((total / reps)) instructions per search  ($(cat "$out/res.$k"))"
done
drv="${KERNEL_DRIVER:-${TMPDIR:-/tmp}/kernel-baseline/drv/driver}"
[ -x "$drv" ] || drv=/work/kernel-baseline/drv/driver
if [ -x "$drv" ]; then
  total=$(valgrind --tool=callgrind --toggle-collect='loop_*' \
      --callgrind-out-file="$out/cg.kernel" "$drv" cg-gap "$n" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo "kernel n=$n k0: $((total / 100000)) instructions per search (mas_empty_area_rev, rcu_read_lock per search)"
else
  echo "kernel driver not found (set KERNEL_DRIVER): kernel figures skipped"
fi
