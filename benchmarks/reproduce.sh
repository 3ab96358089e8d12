#!/usr/bin/env bash
# How long `make reproduce` takes, measured (not a test): a fresh clone of this repository and an empty cache, then
#   1. cold:     `make reproduce` (setup timed on its own, first);
#   2. warm:     touch a savs module (every notebook is out of date), `make reproduce` again;
#   3. ablation: one parameter changed on one notebook, `make main-results N_HEADS=10`;
# warm and ablation ROUNDS times (default 3), interleaved (each round's warm run follows an ablation, so both always
# rerun), reported as the median with the min-max: a noisy machine moves single runs by 25%. The cold run happens
# once (its cache is then warm). Checks the first warm run's tables against the cold run's (`make compare`) and each
# later one's against the previous run's, and counts the output files a rerun changed (0: byte-identical, `git status`
# clean). Prints a Markdown table; each notebook's time is in the log.
# Usage: [ROUNDS=3] bash benchmarks/reproduce.sh [REPO (default: .)] [WORKDIR (default: a new temporary directory)]
set -euo pipefail

repo=$(cd "${1:-.}" && pwd)
work=${2:-$(mktemp -d /tmp/savs-reproduce.XXXXXX)}
mkdir -p "$work"
git clone -q "$repo" "$work/savs"
cd "$work/savs"
rev=$(git rev-parse --short HEAD)
export SAVS_CACHE="$work/cache"
log="$work/log.txt"
: >"$log"

seconds() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.0f}')" "$1"; }

# run NAME COMMAND...: runs it with its output in the log, appends its wall time (s) to took[NAME]
declare -A took
run() {
    local name=$1 start
    shift
    echo "== $name: $*" >>"$log"
    start=$(date +%s.%N)
    "$@" >>"$log" 2>&1
    took[$name]="${took[$name]:-} $(seconds "$start")"
}
# summary NAME: "median (min - max)" of took[NAME], in minutes
summary() {
    python3 - ${took[$1]} <<'PY'
import statistics, sys
s = sorted(int(x) for x in sys.argv[1:])
m = lambda v: f"{int(v) // 60} min {int(v) % 60:02d} s"
print(m(statistics.median(s)) + (f" ({m(s[0])} - {m(s[-1])}, {len(s)} runs)" if len(s) > 1 else ""))
PY
}

run setup make setup
run cold make reproduce
cp -r results "$work/results-cold"
commit() { git add -A results figures notebooks/executed && git -c user.name=b -c user.email=b@b commit -qm "$1" --allow-empty; }
commit cold
rounds=()
for r in $(seq "${ROUNDS:-3}"); do
    touch savs/report.py
    run warm make reproduce
    # the tables against the previous run's (the cold run's first: compare's verdict), and how many output files
    # changed from it (0: a byte-identical rerun; the first warm run's notebook logs differ from the cold run's)
    verdict=$(.venv/bin/python -m savs.compare | tail -1)
    rounds+=("warm run $r vs the $([ "$r" = 1 ] && echo cold || echo previous) run: ${verdict#compared with HEAD: }, \
$(git status --porcelain results figures notebooks/executed | wc -l) files changed")
    commit "warm $r"
    run ablation make main-results N_HEADS=10
    git checkout -q -- results figures notebooks/executed
done

threads=$(python3 -c "import os; print(os.cpu_count())")
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || uname -m)
echo
echo "Measured $(date -u +%F) on $threads cores ($cpu), \`$rev\`, profile mini:"
echo
echo "| run | wall time |"
echo "|---|---|"
echo "| \`make setup\` (pip, first time) | $(summary setup) |"
echo "| cold \`make reproduce\` (fresh clone, empty cache) | $(summary cold) |"
echo "| warm \`make reproduce\` after touching \`savs/report.py\`, median (min - max) | $(summary warm) |"
echo "| \`make main-results N_HEADS=10\` on the warm cache, median (min - max) | $(summary ablation) |"
echo
printf '%s\n' "${rounds[@]}"
echo "Log: $log"
echo
echo "Each notebook's own time (its last line), per run:"
awk '/^== /{run=$2} /^\[[0-9][0-9]_[a-z_]+\] notebook ran in/{
     match($0, /ran in [0-9]+ s/); printf "  %-9s %-20s %s\n", run, substr($1, 2, length($1) - 2), substr($0, RSTART + 7, RLENGTH - 7)}' "$log"
