#!/usr/bin/env bash
# How long `make reproduce` takes, measured (not a test): a fresh clone of this repository and an empty cache, then
#   1. cold:     `make reproduce` (setup timed on its own, first);
#   2. warm:     touch a savs module (every notebook is out of date), `make reproduce` again;
#   3. ablation: one parameter changed on one notebook, `make main-results N_HEADS=10`;
# and checks that the warm run's tables equal the cold run's. Prints a Markdown table; each notebook's time is in
# the log. Usage: bash benchmarks/reproduce.sh [REPO (default: .)] [WORKDIR (default: a new temporary directory)]
set -euo pipefail

repo=$(cd "${1:-.}" && pwd)
work=${2:-$(mktemp -d /tmp/savs-reproduce.XXXXXX)}
mkdir -p "$work"
git clone -q "$repo" "$work/savs"
cd "$work/savs"
export SAVS_CACHE="$work/cache"
log="$work/log.txt"
: >"$log"

seconds() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.0f}')" "$1"; }
minutes() { python3 -c "import sys; s = int(sys.argv[1]); print(f'{s // 60} min {s % 60:02d} s')" "$1"; }

# run NAME COMMAND...: runs it with its output in the log, records its wall time
declare -A took
run() {
    local name=$1 start
    shift
    echo "== $name: $*" >>"$log"
    start=$(date +%s.%N)
    "$@" >>"$log" 2>&1
    took[$name]=$(seconds "$start")
}

run setup make setup
run cold make reproduce
cp -r results "$work/results-cold"
touch savs/report.py
run warm make reproduce
cp -r results "$work/results-warm"
# every CSV equal, but for the head-method table's `seconds` column (each fit's wall time)
same=$(.venv/bin/python - "$work/results-cold" "$work/results-warm" <<'PY'
import sys
from pathlib import Path

import pandas as pd

cold, warm = map(Path, sys.argv[1:])
names = sorted(p.name for p in cold.glob("*.csv"))
assert names == sorted(p.name for p in warm.glob("*.csv")), "different files"
differ = [n for n in names
          if not pd.read_csv(cold / n).drop(columns="seconds", errors="ignore").equals(
              pd.read_csv(warm / n).drop(columns="seconds", errors="ignore"))]
print(f"equal ({len(names)} tables)" if not differ else "DIFFERENT: " + ", ".join(differ))
PY
)
run ablation make main-results N_HEADS=10

threads=$(python3 -c "import os; print(os.cpu_count())")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || uname -m)
echo
echo "Measured $(date -u +%F) on $threads cores ($cpu), \`$(git rev-parse --short HEAD)\`, profile mini:"
echo
echo "| run | wall time |"
echo "|---|---|"
echo "| \`make setup\` (pip, first time) | $(minutes "${took[setup]}") |"
echo "| cold \`make reproduce\` (fresh clone, empty cache) | $(minutes "${took[cold]}") |"
echo "| warm \`make reproduce\` after touching \`savs/report.py\` | $(minutes "${took[warm]}") |"
echo "| \`make main-results N_HEADS=10\` on the warm cache | $(minutes "${took[ablation]}") |"
echo
echo "Warm tables (CSV, but head_methods.csv's seconds column) vs cold: $same. Log: $log"
echo
echo "Each notebook's own time (its last line), per run:"
awk '/^== /{run=$2} /^\[[0-9][0-9]_[a-z_]+\] notebook ran in/{
     match($0, /ran in [0-9]+ s/); printf "  %-9s %-20s %s\n", run, substr($1, 2, length($1) - 2), substr($0, RSTART + 7, RLENGTH - 7)}' "$log"
