#!/usr/bin/env bash
# gan_trainer against PyTorch on this machine's CPU, alternating, for the
# three networks and both iterations:
#
#     TORCH_PYTHON=/path/to/venv-with-torch/bin/python bash benchmarks/cpu_vs_torch.sh
#
# For each network (NETS, default "default digits28 dcgan64"; `default` is
# the network of `python examples/train_dcgan.py`) and each loop (fresh fakes for the G
# step, GANUpdater's default; and --reuse_fakes, the G step on the D step's
# fakes as in PyTorch's DCGAN example), ROUNDS rounds (default 2) of
# benchmarks/throughput.py then benchmarks/torch_dcgan.py, so that both see
# the same load. A shared 2-core machine drifts by 10% within minutes:
# compare figures of one round, and the ratios over rounds.
#
# PYTHON runs gan_trainer (default: python3), TORCH_PYTHON PyTorch (default:
# PYTHON; PyTorch is not a dependency of gan_trainer). Every benchmark's
# whole output (windows, per-phase split) is kept in
# $OUT/NET.log (default OUT: cpu_logs/). The last lines are one per pair,
# `NET LOOP ROUND ours X torch Y ratio Z`.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
torch_py=${TORCH_PYTHON:-$py}
rounds=${ROUNDS:-2}
out=${OUT:-cpu_logs}
mkdir -p "$out"
if ! $torch_py -c 'import torch' 2>/dev/null; then
    echo "cpu_vs_torch.sh: error: $torch_py cannot import torch (set TORCH_PYTHON)" >&2
    exit 2
fi
# The figure of the contract line (`throughput ...` / `torch ...`), or nothing.
rate() { awk '/^(throughput|torch) .* img\/s$/ {v = $(NF-1)} END {print v}'; }
results=()
for net in ${NETS:-default digits28 dcgan64}; do
    log="$out/$net.log"
    : > "$log"  # this run's outputs only
    for loop in fresh reuse; do
        flag=()
        [ "$loop" = reuse ] && flag=(--reuse_fakes)
        for round in $(seq "$rounds"); do
            ours=$($py benchmarks/throughput.py --net "$net" "${flag[@]}" | tee -a "$log" | rate)
            theirs=$($torch_py benchmarks/torch_dcgan.py --net "$net" "${flag[@]}" | tee -a "$log" | rate)
            if [ -z "$ours" ] || [ -z "$theirs" ]; then
                echo "cpu_vs_torch.sh: error: a benchmark of $net ($loop) failed; see $log" >&2
                exit 1
            fi
            echo "$net $loop round $round: ours $ours, torch $theirs"
            ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / b}')
            results+=("$net $loop $round ours $ours torch $theirs ratio $ratio")
        done
    done
done
printf '%s\n' "${results[@]}"
