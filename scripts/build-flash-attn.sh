#!/usr/bin/env bash
# Build a flash-attn (FlashAttention-2) wheel for INFERENCE from the pinned PyPI sdist.
#
# By default only what inference through transformers needs is compiled: the forward and
# split-KV (decode) kernels, bf16 + fp16, head dims 64 and 128 (SmolLM2, Falcon-7B: 64;
# Llama-2-7B, Mistral-7B: 128), for sm_90 and sm_80 (sm_80 code also runs on sm_86/sm_89:
# A10G, L4, L40S). Backward (training) kernels, dropout, ALiBi, softcap and uneven head
# dims are compiled out; sliding-window (local) attention stays (Mistral needs it). Calls
# the build does not cover raise a clear RuntimeError instead of launching a kernel.
#
#   scripts/build-flash-attn.sh [options]
#     --arch LIST     CUDA archs, comma separated, from 80,90,100,120 (default 90,80; env FA_ARCHS)
#     --hdims LIST    head dims, from 32,64,96,128,192,256 (default 64,128; env FA_HDIMS)
#     --dtypes LIST   bf16,fp16 (default both; env FA_DTYPES)
#     --sdist PATH    a local flash_attn sdist (default .fa/flash_attn-VERSION.tar.gz, else pip download)
#     --full          the full upstream build (all 73 kernels and features; archs still from --arch)
#     --jobs N        MAX_JOBS (default: env MAX_JOBS, else the core count, capped by free memory)
#     --out DIR       where the wheel goes (default .fa/ in the repo root, git-ignored)
#     --dry-run       unpack + patch, print the source list, flags and command; build nothing
#     --keep          keep the unpacked build tree (printed at the end)
#   env: PYTHON (default python3), CUDA_HOME (default /usr/local/cuda, else nvcc's folder),
#        NVCC_THREADS (default: the number of archs), FLASH_ATTN_VERSION (default 2.8.3.post2)
#
# Needs, already installed (no download happens, build isolation is off): torch with the same
# CUDA major as nvcc, setuptools, packaging, ninja (the binary or the pip package).
# Both modes also take bdist_wheel from setuptools (no 'wheel' package) and torch's C++ standard.
# Install the result with: pip install --no-deps .fa/flash_attn-*.whl (and einops, which
# flash_attn.bert_padding imports for transformers).
set -euo pipefail

FA_VERSION="${FLASH_ATTN_VERSION:-2.8.3.post2}"
# sha256 of the PyPI sdists this script was written against (checked when the file matches).
declare -A FA_SHA256=(
  [2.8.3.post2]=d0f9f0b08a986cdeadbffcf5ec8b3a8f514366c68ad1853d3ab061bc83cc340b
  [2.8.3]=1e71dd64a9e0280e0447b8a0c2541bad4bf6ac65bdeaa2f90e51a9e57de0370d
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
ARCHS="${FA_ARCHS:-90,80}"
HDIMS="${FA_HDIMS:-64,128}"
DTYPES="${FA_DTYPES:-bf16,fp16}"
SDIST="${FA_SDIST:-}"
OUT="$ROOT/.fa"
FULL=0 DRY=0 KEEP=0 JOBS="${MAX_JOBS:-}"

die() { echo "build-flash-attn: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch|--archs) ARCHS="${2:?}"; shift 2 ;;
    --hdims|--hdim) HDIMS="${2:?}"; shift 2 ;;
    --dtypes|--dtype) DTYPES="${2:?}"; shift 2 ;;
    --sdist) SDIST="${2:?}"; shift 2 ;;
    --jobs|-j) JOBS="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    --full) FULL=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Normalise the lists ("sm_90, 80" -> "90 80") and check them against what the sources offer.
norm() { echo "$1" | tr ',;' '  ' | sed 's/sm_//g; s/sm//g'; }
ARCH_LIST=$(norm "$ARCHS"); HDIM_LIST=$(norm "$HDIMS"); DTYPE_LIST=$(norm "$DTYPES")
for a in $ARCH_LIST; do case "$a" in 80|90|100|120) ;; *) die "arch '$a' not offered by flash-attn 2.8 setup.py (80, 90, 100, 120; sm_80 code runs on sm_86/sm_89)";; esac; done
for h in $HDIM_LIST; do case "$h" in 32|64|96|128|192|256) ;; *) die "head dim '$h' not one of 32 64 96 128 192 256 (a model's head dim d uses the smallest of these >= d)";; esac; done
for d in $DTYPE_LIST; do case "$d" in bf16|fp16) ;; *) die "dtype '$d' not bf16 or fp16";; esac; done
[ -n "$ARCH_LIST" ] && [ -n "$HDIM_LIST" ] && [ -n "$DTYPE_LIST" ] || die "empty --arch/--hdims/--dtypes"
N_ARCHS=$(echo $ARCH_LIST | wc -w)

# An absolute interpreter path (the build runs from the unpacked tree); a venv's link kept as is.
case "$PYTHON" in
  */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;;
  *) PYTHON="$(command -v "$PYTHON")" || die "no '$PYTHON' on PATH (set PYTHON=...)" ;;
esac

# --- CUDA check: torch's CUDA major must match nvcc's (one line, non-zero exit when not) ---
if [ -z "${CUDA_HOME:-}" ]; then
  # /usr/local/cuda first: a 'nvcc' on PATH may be a wrapper script outside the toolkit.
  if [ -x /usr/local/cuda/bin/nvcc ]; then CUDA_HOME=/usr/local/cuda
  elif command -v nvcc >/dev/null 2>&1; then CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
  else CUDA_HOME=/usr/local/cuda; fi
fi
export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
NVCC="$CUDA_HOME/bin/nvcc"
[ -x "$NVCC" ] && [ -f "$CUDA_HOME/include/cuda_runtime.h" ] \
  || die "CUDA check failed: no CUDA toolkit (bin/nvcc, include/) at CUDA_HOME=$CUDA_HOME (a -devel CUDA image has one)"
NVCC_VER=$("$NVCC" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')
TORCH_INFO=$("$PYTHON" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null) \
  || die "CUDA check failed: '$PYTHON' cannot import torch (set PYTHON=...)"
TORCH_VER=${TORCH_INFO% *}; TORCH_CUDA=${TORCH_INFO#* }
if [ "$TORCH_CUDA" = "None" ] || [ "${TORCH_CUDA%%.*}" != "${NVCC_VER%%.*}" ]; then
  echo "CUDA check: MISMATCH: torch $TORCH_VER is built for CUDA $TORCH_CUDA but nvcc ($NVCC) is CUDA $NVCC_VER: majors must match" >&2
  exit 2
fi
echo "CUDA check: ok: torch $TORCH_VER (CUDA $TORCH_CUDA) and nvcc $NVCC_VER ($NVCC) share CUDA major ${NVCC_VER%%.*}"

# --- build prerequisites, all local (no build isolation, nothing downloaded) ---
"$PYTHON" - <<'EOF' || die "missing build prerequisites (see above); install them first (no network: carry wheels)"
import importlib.util, shutil, sys
missing = [m for m in ("setuptools", "packaging") if importlib.util.find_spec(m) is None]
if importlib.util.find_spec("ninja") is None and shutil.which("ninja") is None:
    missing.append("ninja (binary or pip package)")
if missing:
    print("missing:", ", ".join(missing), file=sys.stderr); sys.exit(1)
EOF

# --- the sdist: --sdist PATH, else .fa/flash_attn-VERSION.tar.gz, else download it once ---
mkdir -p "$OUT"
if [ -z "$SDIST" ]; then
  SDIST="$OUT/flash_attn-$FA_VERSION.tar.gz"
  if [ ! -f "$SDIST" ]; then
    echo "downloading the flash-attn==$FA_VERSION sdist into $OUT"
    # --no-build-isolation: pip's metadata step runs setup.py, which imports torch.
    "$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation \
      "flash-attn==$FA_VERSION" -d "$OUT" >/dev/null || die "download failed; pass --sdist PATH"
  fi
fi
[ -f "$SDIST" ] || die "no sdist at $SDIST"
SDIST="$(readlink -f "$SDIST")"
SDIST_VER=$(basename "$SDIST" | sed -n 's/^flash_attn-\(.*\)\.tar\.gz$/\1/p')
if [ -n "$SDIST_VER" ] && [ -n "${FA_SHA256[$SDIST_VER]:-}" ]; then
  [ "$(sha256sum "$SDIST" | cut -d' ' -f1)" = "${FA_SHA256[$SDIST_VER]}" ] || die "sha256 of $SDIST differs from PyPI's $SDIST_VER sdist"
  echo "sdist: $SDIST (sha256 ok)"
else
  echo "sdist: $SDIST (version '${SDIST_VER:-?}' not pinned here: sha256 not checked; patching may fail)"
fi

# --- unpack + patch ---
BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flash-attn-build.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ] || [ "$DRY" = 1 ]; then echo "build tree kept: $BUILD_DIR"; else rm -rf "$BUILD_DIR"; fi; }
trap cleanup EXIT
tar -xzf "$SDIST" -C "$BUILD_DIR"
SRC="$(find "$BUILD_DIR" -mindepth 1 -maxdepth 1 -type d | head -n1)"
[ -f "$SRC/setup.py" ] || die "no setup.py in $SDIST"

ARCH_TAG=$(for a in $ARCH_LIST; do echo -n "sm$a"; done)
if [ "$FULL" = 1 ]; then LOCAL_VERSION="full.$ARCH_TAG"
else LOCAL_VERSION="infer.$ARCH_TAG.$(for h in $HDIM_LIST; do echo -n "hd$h"; done).$(echo $DTYPE_LIST | tr -d ' ')"; fi

FULL="$FULL" HDIMS="$HDIM_LIST" DTYPES="$DTYPE_LIST" "$PYTHON" - "$SRC" <<'EOF' || die "patching the sources failed (is this flash-attn 2.8.x?)"
import os, re, sys
src = sys.argv[1]
full = os.environ["FULL"] == "1"
hdims = sorted({int(h) for h in os.environ["HDIMS"].split()})
dtypes = [d for d in ("bf16", "fp16") if d in os.environ["DTYPES"].split()]

def edit(rel, old, new, count=1):
    path = os.path.join(src, rel)
    text = open(path).read()
    n = text.count(old)
    if n != count:
        sys.exit(f"patch: expected {count} x {old[:60]!r} in {rel}, found {n}")
    open(path, "w").write(text.replace(old, new))

# Any setuptools >= 70.1 has bdist_wheel itself; the 'wheel' package need not be installed.
edit("setup.py", "from wheel.bdist_wheel import bdist_wheel as _bdist_wheel",
     "try:\n    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel\n"
     "except ImportError:\n    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel")

# torch >= 2.10's headers need C++20 (ATen.h: "C++20 or later compatible compiler is required");
# flash-attn 2.8 asks for C++17. Follow torch.
import torch
aten = open(os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "ATen.h")).read()
cxx_std = "c++20" if "C++20" in aten else "c++17"
def set_std(text):
    return text.replace('"-std=c++17"', f'"-std={cxx_std}"')
if full:
    path = os.path.join(src, "setup.py")
    open(path, "w").write(set_std(open(path).read()))
    print(f"patched: setup.py (bdist_wheel import, -std={cxx_std}); full upstream sources and features")
    sys.exit(0)

# 1. setup.py: forward + split-KV sources of the chosen dtypes/head dims; no backward.
kern = "csrc/flash_attn/src/flash_fwd_{split}hdim{h}_{d}{causal}_sm80.cu"
sources = ["csrc/flash_attn/flash_api.cpp"] + [
    kern.format(split=s, h=h, d=d, causal=c)
    for s in ("", "split_") for h in hdims for d in dtypes for c in ("", "_causal")]
for s in sources:
    assert os.path.exists(os.path.join(src, s)), s
setup = open(os.path.join(src, "setup.py")).read()
pat = re.compile(r'sources=\[\s*"csrc/flash_attn/flash_api\.cpp",.*?\],', re.S)
if len(pat.findall(setup)) != 1:
    sys.exit("patch: the CUDA sources list was not found exactly once in setup.py")
listing = "sources=[\n" + "".join(f'                "{s}",\n' for s in sources) + "            ],"
setup = pat.sub(lambda m: listing, setup)
defines = ["-DFLASHATTENTION_DISABLE_" + f for f in ("BACKWARD", "DROPOUT", "ALIBI", "SOFTCAP", "UNEVEN_K")]
setup = setup.replace('compiler_c17_flag=["-O3", "-std=c++17"]',
                      f'compiler_c17_flag=["-O3", "-std=c++17"] + {defines!r}', 1)
setup = setup.replace('"nvcc": append_nvcc_threads(nvcc_flags + cc_flag),',
                      f'"nvcc": append_nvcc_threads(nvcc_flags + cc_flag + {defines!r}),', 1)
if setup.count("FLASHATTENTION_DISABLE_UNEVEN_K'") != 2:
    sys.exit("patch: could not add the -D flags to setup.py's cxx and nvcc flags")
open(os.path.join(src, "setup.py"), "w").write(set_std(setup))

# 2. static_switch.h: dispatch only to the compiled dtypes/head dims (flash_api.cpp is the only
#    user of these two macros); anything else raises instead of needing a missing kernel.
built = ", ".join(map(str, hdims))
lines = ["#define HEADDIM_SWITCH(HEADDIM, ...)   \\", "  [&] {                                  \\"]
lower = 0
for i, h in enumerate((32, 64, 96, 128, 192, 256)):
    if h in hdims:
        lines += [f"    if (HEADDIM > {lower} && HEADDIM <= {h}) {{ \\",
                  f"      constexpr static int kHeadDim = {h}; \\",
                  "      return __VA_ARGS__();               \\",
                  "    }                                    \\"]
    lower = h
lines += [f'    throw std::runtime_error("This flash-attn build (inference) has head dims {built} only; head dim " + std::to_string(HEADDIM) + " needs a rebuild: scripts/build-flash-attn.sh --hdims ..."); \\',
          "  }()"]
headdim = "\n".join(lines)
types = {"fp16": "cutlass::half_t", "bf16": "cutlass::bfloat16_t"}
if len(dtypes) == 2:
    fp16 = None
else:
    only = dtypes[0]
    fp16 = "\n".join([
        "#define FP16_SWITCH(COND, ...)               \\",
        "  [&] {                                      \\",
        f"    if ({'!' if only == 'fp16' else ''}(COND)) {{ \\",
        f'      throw std::runtime_error("This flash-attn build (inference) has {only} kernels only; rebuild with --dtypes bf16,fp16"); \\',
        "    }                                        \\",
        f"    using elem_type = {types[only]};  \\",
        "    return __VA_ARGS__();                    \\",
        "  }()"])
sw = os.path.join(src, "csrc/flash_attn/src/static_switch.h")
text = open(sw).read()
m = re.search(r"#define HEADDIM_SWITCH\(HEADDIM, \.\.\.\).*?\}\(\)\n", text, re.S)
if not m:
    sys.exit("patch: HEADDIM_SWITCH not found in static_switch.h")
text = text[:m.start()] + headdim + "\n" + text[m.end():]
if fp16:
    m = re.search(r"#define FP16_SWITCH\(COND, \.\.\.\).*?\}\(\)\n", text, re.S)
    if not m:
        sys.exit("patch: FP16_SWITCH not found in static_switch.h")
    text = text[:m.start()] + fp16 + "\n" + text[m.end():]
text = text.replace("#pragma once\n", "#pragma once\n#include <stdexcept>\n#include <string>\n", 1)
open(sw, "w").write(text)

# 3. flash_api.cpp: mha_bwd/mha_varlen_bwd already raise under FLASHATTENTION_DISABLE_BACKWARD,
#    but run_mha_bwd still names the backward kernels; compile its body out so it links.
edit("csrc/flash_attn/flash_api.cpp",
     "void run_mha_bwd(Flash_bwd_params &params, cudaStream_t stream) {\n",
     "void run_mha_bwd(Flash_bwd_params &params, cudaStream_t stream) {\n"
     "#ifdef FLASHATTENTION_DISABLE_BACKWARD\n"
     '    TORCH_CHECK(false, "This flash attention build does not support backward.");\n'
     "#else\n")
edit("csrc/flash_attn/flash_api.cpp",
     "                run_mha_bwd_<elem_type, kHeadDim, Is_causal>(params, stream);\n"
     "            });\n        });\n    });\n}\n",
     "                run_mha_bwd_<elem_type, kHeadDim, Is_causal>(params, stream);\n"
     "            });\n        });\n    });\n#endif\n}\n")
print("patched: %d kernel sources + flash_api.cpp; -std=%s; -D %s" % (len(sources) - 1, cxx_std, " ".join(d[2:] for d in defines)))
EOF

CORES=$(nproc)
N_UNITS=$(grep -c '"csrc/flash_attn/.*\.\(cu\|cpp\)",' "$SRC/setup.py" || true)
export NVCC_THREADS="${NVCC_THREADS:-$N_ARCHS}"        # nvcc --threads: one per -gencode target
if [ -z "$JOBS" ]; then
  # One job per core, but at most one per 5 GB of available memory per nvcc thread
  # (cicc peaked at 3.5 GB on one of these kernels here).
  MEM_GB=$(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo 2>/dev/null || echo 0)
  JOBS=$CORES
  if [ "${MEM_GB:-0}" -gt 0 ]; then
    BY_MEM=$(( MEM_GB / (5 * NVCC_THREADS) )); [ "$BY_MEM" -ge 1 ] || BY_MEM=1
    [ "$BY_MEM" -lt "$JOBS" ] && JOBS=$BY_MEM
  fi
fi
[ "$JOBS" -gt "$N_UNITS" ] 2>/dev/null && JOBS=$N_UNITS
export MAX_JOBS="$JOBS"
export FLASH_ATTN_CUDA_ARCHS="$(echo $ARCH_LIST | tr ' ' ';')"
export FLASH_ATTENTION_FORCE_BUILD=TRUE                # never fetch a prebuilt wheel from GitHub
export FLASH_ATTN_LOCAL_VERSION="$LOCAL_VERSION"
export PIP_NO_INDEX=1                                  # nothing is downloaded while building

echo "build: flash-attn $FA_VERSION+$LOCAL_VERSION, archs $FLASH_ATTN_CUDA_ARCHS, $N_UNITS compile units," \
     "MAX_JOBS=$MAX_JOBS NVCC_THREADS=$NVCC_THREADS ($CORES cores), $([ "$FULL" = 1 ] && echo 'full upstream build' || echo "inference subset: head dims $HDIM_LIST, $DTYPE_LIST")"
CMD=("$PYTHON" -m pip wheel --no-deps --no-build-isolation -v -w "$OUT" "$SRC")
if [ "$DRY" = 1 ]; then
  echo "sources:"; grep -o '"csrc/flash_attn/[^"]*\.\(cu\|cpp\)"' "$SRC/setup.py" | tr -d '"' | sed 's/^/  /'
  echo "flags:"; grep -n 'FLASHATTENTION_DISABLE_' "$SRC/setup.py" | grep -v '^[0-9]*: *#' | sed 's/^/  setup.py:/'
  echo "dry run: would run: ${CMD[*]}"
  exit 0
fi

T0=$(date +%s)
LOG="$BUILD_DIR/build.log"
echo "compiling (log: $LOG) ..."
if ! (cd "$SRC" && "${CMD[@]}") >"$LOG" 2>&1; then
  tail -n 40 "$LOG" >&2; KEEP=1; die "build failed after $(( $(date +%s) - T0 )) s (full log above: $LOG)"
fi
T1=$(date +%s)
WHEEL=$(find "$OUT" -maxdepth 1 -name "flash_attn-*+$LOCAL_VERSION-*.whl" -newer "$LOG" | head -n1)
[ -n "$WHEEL" ] || die "no wheel in $OUT after the build (log: $LOG)"
NINJA_LOG=$(find "$SRC/build" -name .ninja_log 2>/dev/null | head -n1)
if [ -n "$NINJA_LOG" ]; then
  echo "per unit (s):"; awk -F'\t' 'NR>1 {t=($2-$1)/1000; n=split($4,p,"/"); printf "  %6.1f  %s\n", t, p[n]}' "$NINJA_LOG" | sort -rn
fi
# Every kernel flash_api.cpp dispatches to must be in the library (an undefined one fails at import).
SO_DIR="$BUILD_DIR/so"; mkdir -p "$SO_DIR"
"$PYTHON" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.endswith(".so")]' "$WHEEL" "$SO_DIR"
if command -v nm >/dev/null 2>&1; then
  UNDEF=$(nm -DC --undefined-only "$SO_DIR"/*.so | grep -E 'run_mha_|flash::' || true)
  [ -z "$UNDEF" ] || { echo "$UNDEF" >&2; die "the library has undefined flash kernels (above)"; }
fi
echo "wheel: $WHEEL ($(du -h "$WHEEL" | cut -f1))"
echo "elapsed build time: $(( (T1 - T0) / 60 ))m$(( (T1 - T0) % 60 ))s ($(( T1 - T0 )) s) on $CORES cores, MAX_JOBS=$MAX_JOBS"
echo "install: $PYTHON -m pip install --no-deps $WHEEL"
