#!/usr/bin/env bash
# Every GPU test and measurement of gan_trainer in one go, logs kept:
#
#     PREPARE=1 bash benchmarks/gpu_check.sh    # where pip works: wheels into .whl/
#     bash benchmarks/gpu_check.sh              # on a machine with an NVIDIA GPU
#     DRY_RUN=1 bash benchmarks/gpu_check.sh    # here, on the CPU: every step, tiny
#
# PREPARE=1 builds what a GPU machine without internet lacks (its image has
# CuPy 14, NumPy 2, PyTorch, no Chainer): the Chainer 7.8.1 and gan_trainer
# wheels into $WHEELS (about 4 MB with the shipped digits: keep the folder out of git
# with .git/info/exclude and carry it). With CUDA12=1 it also downloads the
# `gpu` extra's CuPy 13.6 and CUDA 12 / cuDNN 8 wheels for $PY_VERSION
# (default 3.12) into $CUDA12_WHEELS, for step 4 (about 2 GB).
#
# 0. install: the wheels in $WHEELS (default .whl/: chainer-7.8.1 and
#    gan_trainer, built where pip works, for a machine without internet) with
#    `pip install --no-index --no-deps` into the interpreter's environment;
#    nothing when that folder has none (then `pip install -e '.[gpu,test]'`
#    or '.[gpu-cuda13,test]' first);
# 1. the runtime: GPU, CuPy, Chainer's runtime info and the line `--gpu 0`
#    prints (cuDNN or why not, TF32, dtype);
# 2. the tests marked `gpu` (tests/test_gpu.py, tests/test_nan_guard.py);
# 3. benchmarks/gpu_paths.py for digits28, dcgan64 and the default run's
#    network at batch 64, 256 and 512 on each path (tf32 = float32 with TF32,
#    the default; fp32 = TF32 off; mixed16), alternated with
#    benchmarks/torch_dcgan.py on the same GPU when PyTorch has CUDA:
#    ours (all paths), PyTorch (each batch), ours again (tf32);
# 4. the cuDNN path: when $CUDA12_WHEELS (default .whl/cuda12) holds CuPy 13.6
#    (cupy-cuda12x) and the nvidia-*-cu12 wheels of the `gpu` extra, they are
#    installed into a folder put first on PYTHONPATH and step 3's ours runs
#    again there, with the nocudnn path beside the cuDNN ones (and fp32 in a
#    process started with GAN_TRAINER_TF32=0, as cuDNN reads its TF32 switch
#    when it starts); otherwise one line says it was skipped;
# 5. the README's default training run with --gpu 0 (FID=1: with
#    --fid_interval 500), timed;
# 6. a summary: every figure, ours/PyTorch ratios, the run's wall time.
#
# Logs go to $OUT (default gpu_logs/), one per step, plus summary.log. Each
# step runs under `timeout`; a step is not started once $BUDGET_S seconds
# (default 480) have passed since the start, so the whole stays inside one
# device call. PYTHON chooses the interpreter (default python3). The exit
# status is 0 only when every step that ran succeeded.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${OUT:-gpu_logs}
py=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
cuda12_wheels=${CUDA12_WHEELS:-.whl/cuda12}
budget=${BUDGET_S:-480}
dry=${DRY_RUN:-0}
if [ "${PREPARE:-0}" = 1 ]; then
    mkdir -p "$wheels"
    PIP_CONSTRAINT=$PWD/constraints.txt "$py" -m pip wheel -q --no-deps -w "$wheels" \
        chainer==7.8.1 . || exit 1
    if [ "${CUDA12:-0}" = 1 ]; then
        reqs=$("$py" -c "import ast
tree = ast.parse(open('setup.py').read())
print(' '.join(e.value for n in tree.body if isinstance(n, ast.Assign)
               and getattr(n.targets[0], 'id', '') == 'GPU_CUDA12' for e in n.value.elts))")
        # shellcheck disable=SC2086  # the requirements are words
        "$py" -m pip download -q --no-deps --only-binary=:all: -d "$cuda12_wheels" \
            --python-version "${PY_VERSION:-3.12}" --implementation cp \
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux1_x86_64 $reqs fastrlock || exit 1
    fi
    ls -l "$wheels" "$cuda12_wheels" 2>/dev/null
    exit 0
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
start=$SECONDS

if [ "$dry" = 1 ]; then
    device=cpu gpu=-1 batches=4 nets='default' bench=(--iters 1 --windows 1 --warmup 0)
    torch_bench=(--iters 1 --windows 1 --warmup 0)
else
    device=gpu gpu=0 batches=64,256,512 nets='digits28 dcgan64 default' bench=()
    torch_bench=(--windows 3)
fi

# step NAME TIMEOUT COMMAND...: runs COMMAND with its output in $out/NAME.log
# (appended), unless the budget is spent; a failure sets the exit status.
step() {
    local name=$1 limit=$2
    shift 2
    if (( SECONDS - start > budget )); then
        echo "skipped (budget of ${budget} s spent): $*" | tee -a "$out/$name.log"
        status=1
        return 1
    fi
    echo "+ $*" >>"$out/$name.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ]; then
        echo "step $name: exit $rc: $*" | tee -a "$out/$name.log"
        status=1
    fi
    return "$rc"
}

echo "== 0. install"
shopt -s nullglob
top_wheels=("$wheels"/*.whl)
if [ "$dry" != 1 ] && [ ${#top_wheels[@]} -gt 0 ]; then
    step install 120 "$py" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir "${top_wheels[@]}"
else
    echo "nothing to install (dry run, or no wheels in $wheels)" | tee "$out/install.log"
fi
if ! "$py" -c 'import chainer, gan_trainer' >>"$out/install.log" 2>&1; then
    echo "chainer or gan_trainer cannot be imported: see $out/install.log"
    exit 2
fi

echo "== 1. runtime"
if [ "$dry" != 1 ]; then
    step runtime 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
step runtime 60 "$py" -c "
import chainer
from chainer.backends import cuda
import gan_trainer_compat
chainer.print_runtime_info()
print('cuda available', cuda.available, '| cudnn enabled', cuda.cudnn_enabled,
      '| fix 7:', gan_trainer_compat.CUDNN_STATUS)
if $gpu >= 0:
    from gan_trainer.device import get_device
    get_device($gpu)
"

echo "== 2. tests marked gpu"
step gpu_tests 300 "$py" -m pytest -q -p no:cacheprovider -m gpu -rs \
    tests/test_gpu.py tests/test_nan_guard.py

has_torch=0
if [ "$dry" != 1 ]; then
    "$py" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && has_torch=1
else
    "$py" -c 'import torch' 2>/dev/null && has_torch=1
fi
torch_nets=$("$py" benchmarks/torch_dcgan.py --help 2>/dev/null | tr -c 'a-z0-9_' ' ')

# ours LOG PATHS: gpu_paths.py for every net of $nets
paths_run() {
    local log=$1 paths=$2 net
    shift 2
    for net in $nets; do
        step "$log" 150 "$@" "$py" benchmarks/gpu_paths.py --device "$device" --net "$net" \
            --batches "$batches" --paths "$paths" "${bench[@]}"
    done
}

echo "== 3. paths, alternated with PyTorch"
for net in $nets; do
    step paths 150 "$py" benchmarks/gpu_paths.py --device "$device" --net "$net" \
        --batches "$batches" --paths tf32,fp32,mixed16 "${bench[@]}"
    if [ "$has_torch" = 1 ] && [[ " $torch_nets " == *" $net "* ]]; then
        for b in ${batches//,/ }; do
            step torch 90 "$py" benchmarks/torch_dcgan.py --net "$net" --device "$device" \
                --batchsize "$b" "${torch_bench[@]}"
        done
    else
        echo "torch $net: not run (no PyTorch with CUDA, or torch_dcgan.py has no $net)" \
            | tee -a "$out/torch.log"
    fi
    step paths 120 "$py" benchmarks/gpu_paths.py --device "$device" --net "$net" \
        --batches "$batches" --paths tf32 "${bench[@]}"
done

echo "== 4. cuDNN (CuPy 13.6 from $cuda12_wheels)"
cuda12=("$cuda12_wheels"/cupy_cuda12x-13.6*.whl)
if [ ${#cuda12[@]} -gt 0 ]; then
    site=$(mktemp -d)
    if step cudnn 240 "$py" -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --target "$site" "$cuda12_wheels"/*.whl; then
        step cudnn 60 env PYTHONPATH="$site" "$py" -c \
            'from gan_trainer.device import get_device; get_device(0)'
        paths_run cudnn tf32,nocudnn,mixed16 env PYTHONPATH="$site"
        paths_run cudnn fp32 env PYTHONPATH="$site" GAN_TRAINER_TF32=0
    fi
    rm -rf "$site"
else
    echo "skipped: no cupy_cuda12x-13.6 wheel in $cuda12_wheels (with cuDNN 8.9.7 and the" \
        "CUDA 12 wheels of the gpu extra, about 2 GB: more than one device call carries)" \
        | tee "$out/cudnn.log"
fi

echo "== 5. default training run, --gpu $gpu"
run=$(mktemp -d)
train=(examples/train_dcgan.py --gpu "$gpu" --out "$run/result" --no_progress)
[ "${FID:-0}" = 1 ] && train+=(--fid_interval 500)
[ "$dry" = 1 ] && train+=(--iteration 4 --display_interval 2 --snapshot_interval 2
                          --preview_interval 2 --eval_interval 2 --batchsize 8)
t0=$SECONDS
step train 300 "$py" "${train[@]}" && \
    echo "training run: $((SECONDS - t0)) s wall" | tee -a "$out/train.log"
cp "$run/result/log" "$out/train_log.json" 2>/dev/null
cp "$run/result/preview/latest.png" "$out/gpu_latest.png" 2>/dev/null
rm -rf "$run"

echo "== 6. summary"
{
    echo "# $(date -u +%FT%TZ), dry run: $dry, $((SECONDS - start)) s"
    grep -h -E '^--gpu |^cuda available' "$out/runtime.log" "$out/cudnn.log" 2>/dev/null
    tail -n 1 "$out/gpu_tests.log"
    grep -h -E '^gpu_paths ' "$out/paths.log" 2>/dev/null
    grep -h -E '^torch ' "$out/torch.log" 2>/dev/null
    grep -h -E '^gpu_paths ' "$out/cudnn.log" 2>/dev/null | sed 's/^gpu_paths/cudnn_paths/'
    # ours (tf32, mean of the two rounds) / PyTorch, per net and batch; each
    # torch line follows the --batchsize of the command logged above it.
    awk '
        FNR == 1 { file++ }
        file == 1 && $1 == "gpu_paths" && $4 == "tf32" { s[$2 " " $3] += $5; n[$2 " " $3]++ }
        file == 2 && /^\+ / { for (i = 1; i < NF; i++) if ($i == "--batchsize") b = $(i + 1) }
        file == 2 && $1 == "torch" { t[$2 " " b] = $4 }
        END { for (k in t) if (n[k]) printf "ratio %s ours/torch %.2f (%.1f / %.1f img/s)\n",
                                            k, s[k] / n[k] / t[k], s[k] / n[k], t[k] }
    ' "$out/paths.log" "$out/torch.log" 2>/dev/null | sort
    grep -h '^training run: ' "$out/train.log"
    echo "exit status: $status"
} | tee "$out/summary.log"
exit "$status"
