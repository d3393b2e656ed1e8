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
#   bash benchmarks/gpu_session.sh fa2 [default|llama|mistral]  # flash-attn installed (PYTHONPATH): the FA2
#        configurations (and flash-attention-3) beside eager, sdpa and sdpa-flash, one table per model;
#        ~1.5 min (default), ~4.5 min (llama), ~5 min (mistral: 4608-token prompt, past its 4096 window)
#   bash benchmarks/gpu_session.sh fa2-sweep [llama|falcon|memory]  # the sweep stage again, flash-attn
#        installed, so each chart of docs/sweep-h100 gets the FA2 line; ~2.5 min each with --repeats 2
#   bash benchmarks/gpu_session.sh padded  # generation on a padded batch (Llama-2-7B shape, prompts of
#        64..1024 tokens, 128 new, batch 1,4,8,16): eager, sdpa, sdpa-flash, flash-attention-2; ~4.5 min
#   bash benchmarks/gpu_session.sh quant [7b-a|7b-b|7b-c|default|profile|mslk]  # torchao beside bf16
#        compiled-decode (benchmarks/quant_report.py); each part under ~7 min on an H100, no part: all
#   bash benchmarks/gpu_session.sh warm  # warm workers: sdpa, static-cache, compiled-decode on the embedded
#        default through the server (gradio_client), the same request cold then warm (about 3 min)
#   bash benchmarks/gpu_session.sh trust [default|default-a|7b|fidelity]  # issue 13's reruns, each part about
#        5-8 min on an H100: every configuration on the embedded default (default-a: all but compiled-decode and
#        the torchao ones, which `quant default` runs beside bf16 compiled-decode); Llama-2-7B shape on sdpa, bnb-8bit,
#        bnb-4bit, ort-cuda; fidelity of every family against its own bare loop (+ energy sanity)
#   bash benchmarks/gpu_session.sh multi-gpu  # 2 GPUs: synthetic:llama-2-7b in bf16 (sdpa) and bnb-4bit on
#        GPU 0 alone, then split over GPUs 0 and 1 by max_memory budgets that force the split
#   bash benchmarks/gpu_session.sh multi-gpu-70b  # 2 GPUs: synthetic:llama-2-70b in bf16 (129 GiB of weights,
#        made on the GPUs, no checkpoint) split over GPUs 0 and 1 by device_map: load, TTFT, decode, peaks
#   bash benchmarks/gpu_session.sh tp [7b|70b|profile]  # 2 GPUs: tensor-parallel (+static cache) against the
#        device_map split and one GPU on the 7B shape, against the split on the 70B shape; profile: what
#        bounds a tensor-parallel decode step (NCCL all-reduce vs other kernels vs idle), 7B and 70B
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
  fa2)
    # Agreement and NLL are against eager (the baseline) in each table; only the embedded default has
    # real weights, the synthetic shapes' text is noise.
    FA2=eager,sdpa,sdpa-flash,flash-attention-2,flash-attention-3,bnb-4bit+flash-attention-2,bnb-8bit+flash-attention-2
    python3 -m arena configs | tee "$OUT/fa2-configs.txt"
    case "${2:-all}" in default|all)
      run --model default --configs "$FA2" --max-new-tokens 64 --repeats 3 --timeout 300 \
          --json "$OUT/fa2-default.json" | tee "$OUT/fa2-default.txt" ;;
    esac
    case "${2:-all}" in llama|all)  # the settings of the 7b-torch stage
      run --model synthetic:llama-2-7b --configs "$FA2" --prompt-tokens 128 --max-new-tokens 128 --repeats 2 \
          --timeout 300 --json "$OUT/fa2-llama-2-7b.json" | tee "$OUT/fa2-llama-2-7b.txt" ;;
    esac
    case "${2:-all}" in mistral|all)  # a prompt past Mistral's 4096-token sliding window, so the window applies
      run --model synthetic:mistral-7b --configs "$FA2" --prompt-tokens 4608 --max-new-tokens 128 --repeats 2 \
          --timeout 300 --json "$OUT/fa2-mistral-7b.json" | tee "$OUT/fa2-mistral-7b.txt" ;;
    esac
    ;;
  fa2-sweep)
    # The sweep stage's settings with --repeats 2, flash-attention-2 among the implementations; then
    # python benchmarks/sweep_report.py $OUT/sweep-fa2-*.json --docs docs/sweep-h100
    ATTN=eager,sdpa,sdpa-flash,sdpa-efficient,flash-attention-2
    sweep() { python3 -m arena sweep --quiet --db "$ARENA_HOME/gpu.sqlite" --attn "$ATTN" --mode forward --dtype bf16 \
              --warmup 1 --repeats 2 --timeout 150 --json "$OUT/sweep-fa2-$1.json" "${@:2}" | tee "$OUT/sweep-fa2-$1.txt"; }
    case "${2:-all}" in llama|all)
      sweep llama-2-7b-4096 --model synthetic:llama-2-7b --seq-lens 4096 --batch-sizes 1,2,4,8 --padding 0,0.3 ;;
    esac
    case "${2:-all}" in falcon|all)
      sweep falcon-7b-4096 --model synthetic:falcon-7b --seq-lens 4096 --batch-sizes 1,2,4,8 --padding 0,0.3 ;;
    esac
    case "${2:-all}" in memory|all)
      sweep llama-2-7b-memory --model synthetic:llama-2-7b --seq-lens 512,1024,2048,4096,8192,16384 --batch-sizes 1 \
            --padding 0 ;;
    esac
    ;;
  padded)
    # Generation on a padded batch: each row's prompt length drawn from 64..1024 (seed 0, the first row
    # 1024), left padded, 128 new tokens each, greedy. sdpa-flash has no kernel for a padding mask: its
    # padded points fail with that reason. Then: python benchmarks/sweep_report.py $OUT/padded-llama-2-7b.json
    # --docs docs/padded-h100
    python3 -m arena sweep --quiet --db "$ARENA_HOME/gpu.sqlite" --model synthetic:llama-2-7b --mode generate-padded \
        --attn eager,sdpa,sdpa-flash,flash-attention-2 --batch-sizes 1,4,8,16 --prompt-lens 64..1024 --new-tokens 128 \
        --dtype bf16 --repeats 2 --warmup 1 --timeout 200 --json "$OUT/padded-llama-2-7b.json" \
        --csv "$OUT/padded-llama-2-7b.csv" | tee "$OUT/padded-llama-2-7b.txt"
    python3 benchmarks/sweep_report.py "$OUT/padded-llama-2-7b.json" --docs "$OUT/padded-h100" | tail -1 \
      || python3 benchmarks/sweep_report.py "$OUT/padded-llama-2-7b.json" --docs "$OUT/padded-h100" --no-png | tail -1
    ;;
  trust)
    case "${2:-all}" in default|all)
      python3 -m arena env > "$OUT/env.json"; python3 -c "import torch; print('torch', torch.__version__)" | tee "$OUT/torch.txt"
      run --model default --configs "$ALL" --max-new-tokens 64 --repeats 3 --json "$OUT/trust-default.json" --timeout 240 \
          --show-text | tee "$OUT/trust-default.txt" ;;
    esac
    case "${2:-}" in default-a)
      A=$(python3 -c "from arena.core.registry import REGISTRY as R; print(','.join(n for n in R if n != 'compiled-decode' and not R[n].torchao and n != 'ort-cpu'))")
      run --model default --configs "$A" --max-new-tokens 64 --repeats 3 --json "$OUT/trust-default-a.json" --timeout 240 \
          --show-text | tee "$OUT/trust-default-a.txt" ;;
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
  quant)
    # bf16, batch 1, 128-token prompt, 128 new tokens, 3 repeats; bf16 compiled-decode runs first in every
    # part (the baseline of its ratios, agreement and NLL), so each ratio is measured within one call.
    Q=(--dtype bf16 --prompt-tokens 128 --max-new-tokens 128 --repeats 3 --timeout 420 --db "$ARENA_HOME/gpu.sqlite")
    qr() { python3 benchmarks/quant_report.py "${Q[@]}" --json "$OUT/quant-$1.json" "${@:2}" | tee "$OUT/quant-$1.txt"; }
    CD=compiled-decode; M7=(--model synthetic:llama-2-7b)
    case "${2:-all}" in 7b-a|all) qr 7b-a "${M7[@]}" --configs $CD,torchao-int8wo+$CD,torchao-int4wo+$CD ;; esac
    case "${2:-all}" in 7b-b|all) qr 7b-b "${M7[@]}" --configs $CD,torchao-int4wo-g64+$CD,torchao-float8wo+$CD ;; esac
    case "${2:-all}" in 7b-c|all) qr 7b-c "${M7[@]}" --configs $CD,torchao-float8dq+$CD,bnb-4bit ;; esac
    case "${2:-all}" in default|all)  # real weights: NLL and agreement against bf16 mean something here
      qr default --model default --configs $CD,torchao-int8wo+$CD,torchao-int4wo+$CD,torchao-int4wo-g64+$CD,torchao-float8wo+$CD,torchao-float8dq+$CD,bnb-4bit,torchao-int8wo ;;
    esac
    case "${2:-all}" in profile|all)  # kernel time vs gaps per decode step; Chrome traces in $OUT/traces
      python3 benchmarks/quant_report.py --profile $CD,torchao-int4wo+$CD,torchao-int8wo+$CD "${M7[@]}" \
          --dtype bf16 --prompt-tokens 128 --trace-dir "$OUT/traces" | tee "$OUT/quant-profile-7b.txt"
      python3 benchmarks/quant_report.py --profile $CD --model default --dtype bf16 --trace-dir "$OUT/traces-default" \
          | tee "$OUT/quant-profile-default.txt" ;;
    esac
    case "${2:-}" in mslk)  # only with mslk-cuda on PYTHONPATH: MSLK's preshuffled int4 against tinygemm
      qr mslk "${M7[@]}" --configs $CD,torchao-int4wo+$CD,torchao-int4wo-preshuffled+$CD ;;
    esac
    ls "$OUT"/quant-7b-*.json >/dev/null 2>&1 && python3 benchmarks/quant_report.py --from-json "$OUT"/quant-7b-*.json \
        | tee "$OUT/quant-7b.md"
    ;;
  warm)
    # The same request twice through `python app.py`: cold (spare worker ready), then on the warm workers.
    # Wall time, first text, decode tok/s and peak memory side by side; compiled-decode's warm run must show
    # no warmup stage (its compile skipped). Then the CLI's cold overhead per configuration.
    python3 benchmarks/warm_workers.py --configs sdpa,static-cache,compiled-decode --tokens 32 | tee "$OUT/warm-workers.txt"
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
  multi-gpu-70b)
    # 129 GiB of bf16 weights do not fit one 80 GB GPU: built on meta, planned by accelerate over both GPUs'
    # free memory, each weight made on its GPU. The bandwidth limit is one GPU's over the whole model: the
    # split's GPUs take their turns, each reading its share, so a pipelined split cannot beat it.
    python3 -m arena plan --model synthetic:llama-2-70b --dtype bf16 --max-memory 0=78GiB,1=78GiB --json "$OUT/multi-gpu-70b-plan.json" \
        | tee "$OUT/multi-gpu-70b-plan.txt"
    run --model synthetic:llama-2-70b --dtype bf16 --prompt-tokens 128 --max-new-tokens 64 --repeats 2 --timeout 280 \
        --configs sdpa --gpus 0,1 --json "$OUT/multi-gpu-70b.json" | tee "$OUT/multi-gpu-70b.txt"
    python3 benchmarks/multi_gpu_report.py "$OUT/multi-gpu-70b.json" | tee "$OUT/multi-gpu-70b.md"
    ;;
  tp)
    # NCCL_NVLS_ENABLE=0 and TORCH_SYMM_MEM_DISABLE_MULTICAST=1 stay as the machine sets them (the launcher
    # only sets them where unset). One process per GPU; rank 0 measures.
    T=(--dtype bf16 --prompt-tokens 128 --max-new-tokens 64 --repeats 2 --timeout 240)
    case "${2:-all}" in 7b|all)
      run --model synthetic:llama-2-7b "${T[@]}" --configs sdpa,static-cache --gpus 0 --json "$OUT/tp-7b-one.json" \
          | tee "$OUT/tp-7b-one.txt"
      run --model synthetic:llama-2-7b "${T[@]}" --configs sdpa --gpus 0,1 --json "$OUT/tp-7b-split.json" \
          | tee "$OUT/tp-7b-split.txt"
      run --model synthetic:llama-2-7b "${T[@]}" --configs tensor-parallel,tensor-parallel+static-cache --gpus 0,1 \
          --json "$OUT/tp-7b-tp.json" | tee "$OUT/tp-7b-tp.txt"
      python3 benchmarks/multi_gpu_report.py "$OUT"/tp-7b-*.json | tee "$OUT/tp-7b.md" ;;
    esac
    case "${2:-all}" in 70b|all)
      run --model synthetic:llama-2-70b "${T[@]}" --timeout 280 --configs tensor-parallel,tensor-parallel+static-cache \
          --gpus 0,1 --json "$OUT/tp-70b-tp.json" | tee "$OUT/tp-70b-tp.txt"
      python3 benchmarks/multi_gpu_report.py "$OUT"/multi-gpu-70b.json "$OUT/tp-70b-tp.json" | tee "$OUT/tp-70b.md" ;;
    esac
    case "${2:-all}" in profile|all)
      for m in llama-2-7b llama-2-70b; do
        python3 -m benchmarks.tp_profile --model "synthetic:$m" --dtype bf16 --gpus 0,1 --steps 16 \
            --json "$OUT/tp-profile-$m.json" | tee "$OUT/tp-profile-$m.txt"
      done ;;
    esac
    ;;
esac
