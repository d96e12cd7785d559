#!/usr/bin/env bash
# The DCGAN training run against PyTorch, whole runs, alternating:
#
#     TORCH_PYTHON=/path/to/venv-with-torch/bin/python bash benchmarks/whole_run.sh
#
# Per round (ROUNDS, default 2): `python examples/train_dcgan.py --preset
# dcgan --iteration 2500` (the default run until 2026-12-01: 2,500
# iterations of the 28x28 digits DCGAN with the paper's loss, base width 32,
# batch 64; extensions, snapshots and previews included), then
# benchmarks/torch_train.py (the same network, data, batch and iterations in
# the loop of PyTorch's DCGAN example). Both wall times are taken around the
# whole command (interpreter start-up, imports and data included). Each
# run's generator is then scored by benchmarks/fid_of.py on 1,000 samples
# (the package's FID against the 4,500 training digits; not timed). Logs and
# run folders go to $OUT (default cpu_logs/whole/). The last lines are one per
# round: `whole ROUND ours S s fid F torch S s fid F ratio R` (R: PyTorch's
# wall time over ours; above 1 means ours is faster).
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
torch_py=${TORCH_PYTHON:-$py}
rounds=${ROUNDS:-2}
out=${OUT:-cpu_logs/whole}
mkdir -p "$out"
if ! $torch_py -c 'import torch' 2>/dev/null; then
    echo "whole_run.sh: error: $torch_py cannot import torch (set TORCH_PYTHON)" >&2
    exit 2
fi
fail() { echo "whole_run.sh: error: $1 failed; see $2" >&2; exit 1; }
now() { date +%s.%N; }
$py benchmarks/fid_of.py --export "$out/digits.npy" > /dev/null || fail 'exporting the digits' "$out"
results=()
for round in $(seq "$rounds"); do
    rm -rf "$out/ours-$round"
    t0=$(now)
    $py examples/train_dcgan.py --preset dcgan --iteration 2500 --no_progress --out "$out/ours-$round" > "$out/ours-$round.log" 2>&1 \
        || fail "train_dcgan.py (round $round)" "$out/ours-$round.log"
    t1=$(now)
    $torch_py benchmarks/torch_train.py --data "$out/digits.npy" --samples "$out/torch-$round.npy" \
        --seed "$round" > "$out/torch-$round.log" 2>&1 || fail "torch_train.py (round $round)" "$out/torch-$round.log"
    t2=$(now)
    ours=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    theirs=$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f", b - a}')
    fid_ours=$($py benchmarks/fid_of.py --run "$out/ours-$round" | awk '/^fid / {print $2}')
    fid_theirs=$($py benchmarks/fid_of.py --samples "$out/torch-$round.npy" | awk '/^fid / {print $2}')
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", b / a}')
    echo "round $round: ours $ours s (FID $fid_ours), torch $theirs s (FID $fid_theirs)"
    results+=("whole $round ours $ours s fid $fid_ours torch $theirs s fid $fid_theirs ratio $ratio")
done
printf '%s\n' "${results[@]}"
