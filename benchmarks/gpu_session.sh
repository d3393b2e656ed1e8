#!/usr/bin/env bash
# The GPU verification used for the closing notes, in stages that each fit a 10-minute call.
# Expects the pinned stack importable (PYTHONPATH) and writes tables and JSON to $OUT.
#   bash benchmarks/gpu_session.sh default   # every configuration on the embedded default + fidelity
#   bash benchmarks/gpu_session.sh 7b-torch  # PyTorch configurations on synthetic:llama-2-7b
#   bash benchmarks/gpu_session.sh 7b-rest   # ONNX Runtime on synthetic:llama-2-7b + fidelity
#   bash benchmarks/gpu_session.sh sweep [guide|memory]  # attention sweeps (about 7 min on an H100):
#        the guide's setting on Llama-2-7B and Falcon-7B shapes, and memory against length
#   bash benchmarks/gpu_session.sh bandwidth [7b|1b|default]  # each configuration against the
#        memory-bandwidth limit (bf16, batch 1, 128 new tokens); no second argument: all three
#   bash benchmarks/gpu_session.sh trust [default|7b|fidelity]  # issue 13's reruns, each part about 5-8 min
#        on an H100: every configuration on the embedded default; Llama-2-7B shape on sdpa, bnb-8bit,
#        bnb-4bit, ort-cuda; fidelity of every family against its own bare loop (+ energy sanity)
#   bash benchmarks/gpu_session.sh multi-gpu  # 2 GPUs: synthetic:llama-2-7b in bf16 (sdpa) and bnb-4bit on
#        GPU 0 alone, then split over GPUs 0 and 1 by max_memory budgets that force the split
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}; mkdir -p "$OUT"
export ARENA_HOME=${ARENA_HOME:-/tmp/arena-home} PYTHONUNBUFFERED=1
ALL=$(python3 -c "from arena.core.registry import REGISTRY; print(','.join(REGISTRY))")
TORCH7B=eager,sdpa,sdpa-flash,sdpa-efficient,sdpa-math,flash-attention-2,bettertransformer,static-cache,bnb-8bit,bnb-4bit,bnb-nf4,bnb-nf4-double-quant,bnb-4bit+flash-attention-2,bnb-8bit+flash-attention-2,bnb-4bit+sdpa-flash
run() { python3 -m arena run --quiet --db "$ARENA_HOME/gpu.sqlite" "$@"; }
case "${1:-default}" in
  sweep)
    # One worker per implementation loads the model once; a point that runs out of memory or has
    # no kernel is recorded with its reason. Report: python benchmarks/sweep_report.py $OUT/sweep-*.json --docs DIR
    ATTN=eager,sdpa,sdpa-flash,sdpa-efficient,flash-attention-2
    sweep() { python3 -m arena sweep --quiet --db "$ARENA_HOME/gpu.sqlite" --attn "$ATTN" --mode forward --dtype bf16 \
              --warmup 1 --timeout 150 --json "$OUT/sweep-$1.json" "${@:2}" | tee "$OUT/sweep-$1.txt"; }
    case "${2:-all}" in guide|all)  # the guide's charts: one forward pass at 4096, batch 1..8, padding 0 and 30%
      sweep llama-2-7b-4096 --model synthetic:llama-2-7b --seq-lens 4096 --batch-sizes 1,2,4,8 --padding 0,0.3 --repeats 3
      sweep falcon-7b-4096 --model synthetic:falcon-7b --seq-lens 4096 --batch-sizes 1,2,4,8 --padding 0,0.3 --repeats 3 ;;
    esac
    case "${2:-all}" in memory|all)  # peak memory against length, batch 1, no padding
      sweep llama-2-7b-memory --model synthetic:llama-2-7b --seq-lens 512,1024,2048,4096,8192,16384 --batch-sizes 1 \
            --padding 0 --repeats 2 ;;
    esac
    ;;
  trust)
    case "${2:-all}" in default|all)
      python3 -m arena env > "$OUT/env.json"; python3 -c "import torch; print('torch', torch.__version__)" | tee "$OUT/torch.txt"
      run --model default --configs "$ALL" --max-new-tokens 64 --repeats 3 --json "$OUT/trust-default.json" --timeout 240 \
          --show-text | tee "$OUT/trust-default.txt" ;;
    esac
    case "${2:-all}" in 7b|all)  # the ONNX export of the 7B shape is cached for the next call
      run --model synthetic:llama-2-7b --configs sdpa,bnb-8bit,bnb-4bit,ort-cuda --dtype bf16 --prompt-tokens 128 \
          --max-new-tokens 128 --repeats 2 --json "$OUT/trust-7b.json" --timeout 420 | tee "$OUT/trust-7b.txt" ;;
    esac
    case "${2:-all}" in fidelity|all)
      python3 benchmarks/fidelity.py --model default --configs eager,sdpa,static-cache,compiled-decode,bnb-8bit,bnb-4bit,ort-cuda \
          --max-new-tokens 64 --repeats 3 --rounds 2 --timeout 240 | tee "$OUT/trust-fidelity-default.txt" ;;
    esac
    ;;
  default)
    python3 -m arena env | tee "$OUT/env.json"
    python3 -m arena configs | tee "$OUT/configs.txt"
    run --model default --configs "$ALL" --max-new-tokens 64 --repeats 3 --json "$OUT/default.json" --timeout 400 | tee "$OUT/default.txt"
    python3 benchmarks/fidelity.py --model default --config sdpa --max-new-tokens 64 | tee "$OUT/fidelity-default.txt"
    ;;
  7b-torch)
    run --model synthetic:llama-2-7b --configs "$TORCH7B" --prompt-tokens 128 --max-new-tokens 128 --repeats 2 \
        --json "$OUT/llama7b-torch.json" --timeout 300 | tee "$OUT/llama7b-torch.txt"
    ;;
  7b-rest)
    run --model synthetic:llama-2-7b --configs eager,ort-cuda,ort-tensorrt --prompt-tokens 128 --max-new-tokens 128 \
        --repeats 2 --json "$OUT/llama7b-ort.json" --timeout 420 | tee "$OUT/llama7b-ort.txt"
    python3 benchmarks/fidelity.py --model synthetic:llama-2-7b --config sdpa --max-new-tokens 128 --repeats 3 | tee "$OUT/fidelity-7b.txt"
    ;;
  bandwidth)
    limit() { python3 benchmarks/bandwidth_limit.py --dtype bf16 --batch-size 1 --max-new-tokens 128 --repeats 3 \
              --db "$ARENA_HOME/gpu.sqlite" --json "$OUT/bandwidth-$1.json" --model "$2" "${@:3}" | tee "$OUT/bandwidth-$1.txt"; }
    case "${2:-all}" in 7b|all) limit llama-2-7b synthetic:llama-2-7b --prompt-tokens 128 ;; esac
    case "${2:-all}" in 1b|all) limit llama-3.2-1b synthetic:llama-3.2-1b --prompt-tokens 128 ;; esac
    case "${2:-all}" in default|all) limit default default ;; esac
    ;;
  multi-gpu)
    # One GPU against a split over two: the same model, prompt and settings; decode tok/s and the
    # peak memory of each GPU (device_peak_memory_mb). bf16 7B weights are 12.6 GiB: 8 GiB on GPU 0
    # forces a split; bnb-4bit weights are about 3.6 GiB: 2 GiB on GPU 0 does.
    M7=(--model synthetic:llama-2-7b --dtype bf16 --prompt-tokens 128 --max-new-tokens 128 --repeats 3 --timeout 400)
    python3 -m arena plan --max-memory 0=8GiB,1=40GiB --json "$OUT/multi-gpu-plan-bf16.json" | tee "$OUT/multi-gpu-plan.txt"
    run "${M7[@]}" --configs sdpa,bnb-4bit --gpus 0 --json "$OUT/multi-gpu-one.json" | tee "$OUT/multi-gpu-one.txt"
    run "${M7[@]}" --configs sdpa --max-memory 0=8GiB,1=40GiB --json "$OUT/multi-gpu-split-bf16.json" \
        | tee "$OUT/multi-gpu-split-bf16.txt"
    run "${M7[@]}" --configs bnb-4bit --max-memory 0=2GiB,1=40GiB --json "$OUT/multi-gpu-split-4bit.json" \
        | tee "$OUT/multi-gpu-split-4bit.txt"
    python3 benchmarks/multi_gpu_report.py "$OUT/multi-gpu-one.json" "$OUT/multi-gpu-split-bf16.json" \
        "$OUT/multi-gpu-split-4bit.json" | tee "$OUT/multi-gpu.md"
    ;;
esac
