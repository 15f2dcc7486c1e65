#!/usr/bin/env bash
# Instructions per operation by callgrind (deterministic, unlike wall-clock time on a shared
# machine): maple's measured loops (benches/src/bin/callgrind.rs) and, when the kernel
# baseline driver is available, the kernel's own C maple tree on the same layout
# (/work/shared/kernel-baseline/README.md).
#
#   benches/callgrind.sh                 store and lookup at 10^5
#   benches/callgrind.sh store erase     chosen modes (store, append-mut, writes, store-random,
#                                        erase, punch, lookup)
#   N=1000000 benches/callgrind.sh store
#   KERNEL_DRIVER=/path/to/driver benches/callgrind.sh store   (default below; skipped if absent)
#
# Each line: the mode, instructions per op of everything inside the measured loop, and the
# same without the memory allocator (for the kernel driver also without its harness: the
# kmem_cache emulation, its mutexes and liburcu's call_rcu), as "total / without allocator".
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100000}
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(store lookup)
KERNEL_DRIVER=${KERNEL_DRIVER:-/work/kernel-baseline/drv/driver}
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }

cargo build --release -q -p benches --bin callgrind
BIN=target/release/callgrind
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Self cost of functions that belong to the allocator or the kernel harness.
ALLOC_RE='malloc\.c|arena\.c|pthread_mutex|kmem_cache|urcu|tls_get_addr|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_|__rg_|/slab\.h:|/slab\.c:|uatomic'

# report LABEL CALLGRIND_FILE OPS
report() {
  local total alloc
  total=$(awk '/^totals:/ {print $2}' "$2")
  alloc=$(callgrind_annotate --auto=no --threshold=100 "$2" 2>/dev/null |
    grep -E '^ *[0-9,]+ ' | grep -v 'PROGRAM TOTALS' | { grep -E "$ALLOC_RE" || true; } |
    awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
  awk -v l="$1" -v t="$total" -v a="$alloc" -v n="$3" \
    'BEGIN {printf "%-40s %8.0f / %8.0f instructions per op (%d ops)\n", l, t / n, (t - a) / n, n}'
}

for m in "${MODES[@]}"; do
  valgrind --tool=callgrind --toggle-collect="*cg_loop_${m//-/_}*" \
    --callgrind-out-file="$OUT/$m.cg" "$BIN" "$m" "$N" >"$OUT/$m.txt" 2>"$OUT/$m.err"
  ops=$(awk '/^ops/ {print $2}' "$OUT/$m.txt")
  report "maple $m" "$OUT/$m.cg" "$ops"
  if [ "$m" = store ] && [ -x "$KERNEL_DRIVER" ]; then
    for rcu in 1 0; do
      RCU=$rcu valgrind --tool=callgrind --toggle-collect='loop_build' \
        --callgrind-out-file="$OUT/k$rcu.cg" "$KERNEL_DRIVER" cg-store "$N" >/dev/null 2>&1
      report "kernel store (RCU=$rcu)" "$OUT/k$rcu.cg" "$N"
    done
  fi
  if [ "$m" = lookup ] && [ -x "$KERNEL_DRIVER" ]; then
    valgrind --tool=callgrind --toggle-collect='loop_lookup' \
      --callgrind-out-file="$OUT/kl.cg" "$KERNEL_DRIVER" cg-lookup "$N" >/dev/null 2>&1
    report "kernel lookup" "$OUT/kl.cg" 1000000
  fi
done
