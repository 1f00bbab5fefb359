#!/usr/bin/env bash
# The checks that need a CUDA device, in one go and under 10 minutes: the `gpu` tests, then the
# GPU figures of the spectrum engine (torch backend), training-snapshot and PAGS benchmarks. The
# step limits add up to 580 s. Everything goes to one file
# ($OUT/gpu-check.txt when $OUT is set, as on a lent device machine, else ./gpu-check.txt), so the
# figures can be copied into the README afterwards. Without a CUDA device it says so and exits 3.
#
#   bash scripts/gpu-check.sh            # in an environment with a CUDA build of torch (README)
#   PY=.venv/bin/python bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PY:-python3}"
[ -x .venv/bin/python ] && [ -z "${PY:-}" ] && py=.venv/bin/python
report="${OUT:-.}/gpu-check.txt"
mkdir -p "$(dirname "$report")"
: >"$report"

say() { echo "$*" | tee -a "$report"; }

# step NAME SECONDS COMMAND...: run one step under a time limit, its output to the report
step() {
    local name="$1" limit="$2"
    shift 2
    say ""
    say "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$report"
    local code=${PIPESTATUS[0]}
    say "== $name: exit $code after $((SECONDS - start)) s"
    [ "$code" -eq 0 ] || failed=$((failed + 1))
}

failed=0
say "fullspectrum gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname)"
if ! "$py" - <<'EOF' 2>&1 | tee -a "$report"; then
import sys
import torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, available: {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit(1)
print("device:", torch.cuda.get_device_name(0))
EOF
    say "no CUDA device here: nothing to check (the gpu tests skip on a CPU)"
    exit 3
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$report"

step "gpu tests" 170 "$py" -m pytest -q -p no:cacheprovider -m gpu tests
step "spectrum engine on CUDA" 200 "$py" benchmarks/bench_spectrum.py --device cuda --llm --repeats 3 --route-repeats 1
step "training snapshot overhead on CUDA" 120 "$py" benchmarks/bench_training.py --device cuda --skip-pags
step "PAGS throughput on CUDA" 90 "$py" benchmarks/bench_sampling.py --device cuda --population 8

say ""
say "gpu-check: $failed step(s) failed; report in $report"
[ "$failed" -eq 0 ]
