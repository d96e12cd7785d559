#!/usr/bin/env bash
# Every GPU check of gan_trainer in one go, for a machine with an NVIDIA GPU:
#
#     pip install -e '.[gpu,test]'        # CUDA 12: cupy-cuda12x
#     pip install -e '.[gpu-cuda13,test]' # CUDA 13: cupy-cuda13x (CuPy 14)
#     bash benchmarks/gpu_check.sh
#
# 1. the runtime: GPU, CuPy, and whether Chainer found cuDNN;
# 2. the tests marked `gpu` (tests/test_gpu.py; they are skipped elsewhere);
# 3. benchmarks/throughput.py --device gpu for both networks, and, when
#    PyTorch is importable, benchmarks/torch_dcgan.py on the same GPU
#    beside it, alternating (ours, PyTorch, ours, PyTorch);
# 4. the README's default training run with --gpu 0 and FID every 500
#    iterations, timed, so it can be compared with the CPU run.
#
# Logs, the run's log and its last grid go to $OUT (default: gpu_logs/).
# Set PYTHON to choose the interpreter (default: python3).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_logs}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0

echo "== runtime"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/runtime.log"
$py - <<'EOF' 2>&1 | tee -a "$out/runtime.log"
import chainer
from chainer.backends import cuda
chainer.print_runtime_info()
print('cuda available', cuda.available, '| cudnn enabled', cuda.cudnn_enabled)
EOF

echo "== tests marked gpu"
$py -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
status=$(( status | ${PIPESTATUS[0]} ))

echo "== throughput"
has_torch=0
$py -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && has_torch=1
for net in digits28 dcgan64; do
    for round in 1 2; do
        $py benchmarks/throughput.py --net "$net" --device gpu --iters 50 || status=1
        if [ "$has_torch" = 1 ]; then
            $py benchmarks/torch_dcgan.py --net "$net" --device gpu --iters 50 || status=1
        fi
    done
done 2>&1 | tee "$out/throughput.log"

echo "== default training run on GPU 0"
run=$(mktemp -d)
start=$SECONDS
$py examples/train_dcgan.py --gpu 0 --out "$run/result" --no_progress \
    --fid_interval 500 2>&1 | tee "$out/train.log"
status=$(( status | ${PIPESTATUS[0]} ))
echo "training run: $((SECONDS - start)) s wall" | tee -a "$out/train.log"
cp "$run/result/log" "$out/train_log.json" 2>/dev/null
cp "$run/result/preview/latest.png" "$out/gpu_latest.png" 2>/dev/null
rm -rf "$run"

echo "== summary"
grep -h -E '^(throughput|torch) ' "$out/throughput.log"
tail -n 1 "$out/gpu_tests.log"
exit "$status"
