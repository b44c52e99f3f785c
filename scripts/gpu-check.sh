#!/usr/bin/env bash
# The GPU check: parity of the GPU backends with the CPU, and ours against PyTorch on the same
# GPU, in one short run on a machine with an NVIDIA GPU, CUDA's driver and PyTorch, but no Rust
# toolchain (docs/performance.md, "On a real GPU").
#
#   scripts/gpu-check.sh prepare      # here, with cargo: build and gather what the run needs
#   scripts/gpu-check.sh run [OUT]    # there, from the repository root: OUT/gpu-report.jsonl
#   cargo xtask gpu-report OUT/gpu-report.jsonl   # here again: the report as markdown
#
# `prepare` builds the release binary and the parity suite with GPU_FEATURES (default
# `wgpu,cuda`; `cuda` needs burn's LLVM bundle, downloaded from GitHub at build time, see
# docs/usage.md) into target/gpu/, stripped, copies auto_LiRPA's package from AUTO_LIRPA (a
# checkout) when given, for the PyTorch side's CROWN rows, and packs them into target/gpu.tar.xz
# (the stripped wgpu binary alone is 78 MiB; packed, the lot is a fraction of that). It fetches
# MNIST and the reference networks into datasets/cache. Carry `target/gpu.tar.xz`,
# `datasets/cache/mnist` and `datasets/cache/mixtrain-reference` to the GPU machine; `run`
# unpacks the archive with Python's tarfile.
#
# `run` writes one JSON object per line: the GPU, what it found (NVRTC, the Vulkan driver and
# loader), the parity suite's verdict per backend, and every timing or error. Each step has
# STEP_TIMEOUT seconds (default 90) and the run stops starting steps after BUDGET seconds
# (default 420), so that it fits 8 minutes. BACKENDS (default "cuda wgpu") and TRAIN_IMAGES
# (default 59900: a whole epoch less the 100 validation images) make a shorter run, e.g. a dry
# run on a CPU machine: BACKENDS=flex TRAIN_IMAGES=500 scripts/gpu-check.sh run.
set -uo pipefail
cd "$(dirname "$0")/.."
gpu=target/gpu

prepare() {
  set -e
  local features="${GPU_FEATURES:-wgpu,cuda}"
  mkdir -p "$gpu"
  cargo build --release -p mixtrain-cli --features "$features"
  cp target/release/mixtrain "$gpu/mixtrain"
  # the parity suite's test executable: the last artifact cargo names for it
  local parity
  parity=$(cargo test --release --features "$features" --test parity --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "parity" and m.get("executable"):
        path = m["executable"]
print(path)')
  cp "$parity" "$gpu/parity"
  strip "$gpu/mixtrain" "$gpu/parity"
  if [ -n "${AUTO_LIRPA:-}" ]; then
    rm -rf "$gpu/auto_LiRPA" && cp -r "$AUTO_LIRPA/auto_LiRPA" "$gpu/auto_LiRPA"
  fi
  tar -cJf "$gpu.tar.xz" -C "$gpu" .
  cargo xtask fetch mnist
  cargo xtask fetch mixtrain-reference
  du -sh "$gpu"/* "$gpu.tar.xz" datasets/cache/mnist datasets/cache/mixtrain-reference
}

# record key=value ...: one JSON object on the report (values that parse as numbers are numbers)
record() {
  python3 - "$@" >>"$report" <<'EOF'
import json, sys
out = {}
for pair in sys.argv[1:]:
    key, value = pair.split("=", 1)
    try:
        out[key] = float(value)
    except ValueError:
        out[key] = value
print(json.dumps(out))
EOF
}

# within_budget STEP SIDE: whether there is time left to start STEP on SIDE (else it is recorded
# as not started)
within_budget() {
  if [ $(( $(date +%s) - start )) -ge "$budget" ]; then
    record kind=error step="$1" side="$2" message="not started: the run's ${budget} s were spent"
    return 1
  fi
}

# ours BACKEND STEP ARGS...: one `mixtrain` command, its time read by python from OUTPUT
ours() {
  local backend=$1 step=$2
  shift 2
  within_budget "$step" "$backend" || return
  local log="$out/$backend-$step.log"
  timeout "$step_timeout" "$gpu/mixtrain" "$@" --backend "$backend" >"$log" 2>&1
  local status=$?
  if [ $status = 0 ]; then
    local seconds
    seconds=$(python3 - "$out/$backend-$step" "$log" <<'EOF'
import json, os, sys
run, log = sys.argv[1], sys.argv[2]
metrics = os.path.join(run, "metrics.jsonl")
if os.path.exists(metrics):
    print(json.loads(open(metrics).readline())["seconds"])
else:
    print(json.loads(open(log).read().strip().splitlines()[-1])["verify_seconds"])
EOF
)
    record kind=time side="$backend" step="$step" seconds="$seconds"
  elif [ $status = 124 ]; then
    record kind=error side="$backend" step="$step" message="timed out after ${step_timeout} s"
  else
    record kind=error side="$backend" step="$step" message="$(tail -c 600 "$log")"
  fi
}

# pytorch STEP ARGS...: bench/peers.py on the GPU
pytorch() {
  local step=$1
  shift
  within_budget "$step" pytorch || return
  local log="$out/pytorch-$step.log"
  if PYTHONPATH="$gpu:${PYTHONPATH:-}" timeout "$step_timeout" python3 bench/peers.py time \
    --device cuda --model mnist_small --dataset mnist --data datasets/cache "$@" >"$log" 2>&1; then
    python3 - "$step" "$(tail -n 1 "$log")" >>"$report" <<'EOF'
import json, sys
step, out = sys.argv[1], json.loads(sys.argv[2])
if "skipped" in out:
    print(json.dumps({"kind": "error", "side": "pytorch", "step": step,
                      "message": "skipped: " + out["skipped"]}))
else:
    print(json.dumps({"kind": "time", "side": "pytorch", "step": step,
                      "seconds": out["seconds"], "device": out["device"]}))
EOF
  else
    record kind=error side=pytorch step="$step" message="$(tail -c 600 "$log")"
  fi
}

run() {
  out=${1:-${OUT:-target/gpu-check}}
  mkdir -p "$out"
  report="$out/gpu-report.jsonl"
  : >"$report"
  step_timeout=${STEP_TIMEOUT:-90}
  budget=${BUDGET:-420}
  start=$(date +%s)
  if [ ! -x "$gpu/mixtrain" ] && [ -e "$gpu.tar.xz" ]; then
    mkdir -p "$gpu"
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$gpu.tar.xz" "$gpu"
  fi
  record kind=gpu name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"

  # NVRTC from PyTorch's wheels (nvidia-cuda-nvrtc), for CubeCL's CUDA runtime
  local nvrtc
  nvrtc=$(python3 -c '
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
hits = [h for r in roots for h in glob.glob(os.path.join(r, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
        + glob.glob(os.path.join(r, "torch", "lib", "libnvrtc*.so*"))]
print(os.path.dirname(sorted(hits)[0]) if hits else "")')
  [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$nvrtc:${LD_LIBRARY_PATH:-}"
  record kind=env what=nvrtc value="${nvrtc:-not found}"
  # the Vulkan driver (NVIDIA's ICD) and loader, for wgpu; a carried loader in target/gpu wins
  [ -e "$gpu/libvulkan.so.1" ] && export LD_LIBRARY_PATH="$gpu:${LD_LIBRARY_PATH:-}"
  record kind=env what=vulkan-icd value="$(ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* 2>/dev/null | head -n 1)"
  record kind=env what=vulkan-loader value="$(ldconfig -p 2>/dev/null | grep -m 1 'libvulkan.so.1' | awk '{print $NF}')"

  # parity with the CPU: each GPU backend's line of the suite, and its verdict
  if [ ! -x "$gpu/parity" ]; then
    record kind=parity backend=all status=missing detail="no $gpu/parity: run prepare first"
  elif within_budget parity all; then
    timeout 240 "$gpu/parity" --nocapture >"$out/parity.log" 2>&1
    local status=$?
    for backend in wgpu cuda; do
      local line verdict
      line=$(grep -m 1 "backend parity: .*$backend" "$out/parity.log")
      case "$line" in
        *SKIPPED*) verdict=skipped ;;
        *) verdict=$([ $status = 0 ] && echo passed || echo "failed ($status)") ;;
      esac
      record kind=parity backend="$backend" detail="$line" status="$verdict"
    done
  fi

  local weights=datasets/cache/mixtrain-reference/mnist_small_mixtrain_eps0.3.safetensors
  local images=${TRAIN_IMAGES:-59900}
  local epoch=(train --preset mnist --epochs 1 --quiet --val-size 100 --test-limit 100
    --train-limit $(( images + 100 ))
    --set eps_schedule.warmup_epochs=0 --set eps_schedule.ramp_epochs=0.0
    --set final_eval.pgd_steps=0 --set 'final_eval.domain="interval"' --data datasets/cache)
  local eval=(eval --model mnist_small --weights "$weights" --dataset mnist --data datasets/cache
    --eps 0.1 --no-float-sound --json)
  local train=(--images "$images" --eps 0.1)
  # step by step, each GPU backend of ours and then PyTorch, so that whatever the budget leaves
  # out, the steps that ran were timed on both sides in the same run
  local backends=(${BACKENDS:-cuda wgpu})
  for b in "${backends[@]}"; do ours "$b" natural "${epoch[@]}" --method natural --out "$out/$b-natural"; done
  pytorch natural --row natural --peer PyTorch "${train[@]}"
  for b in "${backends[@]}"; do ours "$b" ibp "${epoch[@]}" --method ibp --out "$out/$b-ibp"; done
  pytorch ibp --row ibp --peer PyTorch "${train[@]}"
  for b in "${backends[@]}"; do
    ours "$b" crown-ibp "${epoch[@]}" --method crown-ibp --set eps_schedule.ramp_epochs=1000.0 \
      --out "$out/$b-crown-ibp"
  done
  pytorch crown-ibp --row crown-ibp --peer auto_LiRPA "${train[@]}"
  for b in "${backends[@]}"; do
    ours "$b" mixtrain "${epoch[@]}" --method mixtrain --k 5 --out "$out/$b-mixtrain"
  done
  pytorch mixtrain --row mixtrain --peer auto_LiRPA "${train[@]}"
  for b in "${backends[@]}"; do ours "$b" verify-crown "${eval[@]}" --domain crown; done
  pytorch verify-crown --row verify-crown --images 10000 --eps 0.1 --weights "$weights"
  for b in "${backends[@]}"; do ours "$b" verify-alpha-crown "${eval[@]}" --domain alpha-crown; done
  record kind=done seconds=$(( $(date +%s) - start ))
  echo "report: $report"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/gpu-check.sh prepare | run [OUT]" >&2; exit 2 ;;
esac
