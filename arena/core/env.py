"""Hardware and software facts: what this machine is and which libraries it has.

Every result records `collect_env()`, and the configuration registry decides availability
from `platform()`; both are computed once per process (again after `track` adds a package).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.metadata
import os
import platform as _platform
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from arena.core.units import MiB

# Distribution names whose versions go into every result: the stack here, and every package a
# configuration needs (bitsandbytes, torchao, flash-attn, ...), added by the registry (`track`).
TRACKED_PACKAGES: list[str] = [
    "torch",
    "transformers",
    "accelerate",
    "optimum",
    "onnxruntime-gpu",
    "onnxruntime",
    "gradio",
]


def track(*dists: str) -> None:
    """Record these distributions' versions in every result too (and let `Platform.has` see them)."""
    new = [d for d in dict.fromkeys(dists) if d not in TRACKED_PACKAGES]
    if new:
        TRACKED_PACKAGES.extend(new)
        platform.cache_clear()
        collect_env.cache_clear()


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'4.57.6' -> (4, 57, 6); () for None or an unparsable version."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release if version else ()
    except InvalidVersion:
        return ()


def _tensorrt_libraries_load() -> bool:
    """True when TensorRT's runtime library can be loaded (ONNX Runtime needs it for its TRT provider)."""
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


# What transformers imports when a model runs with each FlashAttention generation
# (transformers/modeling_flash_attention_utils.py), and its own availability check.
FLASH_IMPORTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "flash-attn": (("flash_attn", ("flash_attn_func", "flash_attn_varlen_func")),
                   ("flash_attn.bert_padding", ("pad_input", "unpad_input"))),
    "flash-attn-3": (("flash_attn_interface", ("flash_attn_func", "flash_attn_varlen_func")),),
}
_FLASH_CHECKS = {"flash-attn": "is_flash_attn_2_available", "flash-attn-3": "is_flash_attn_3_available"}


def import_error(imports: tuple[tuple[str, tuple[str, ...]], ...]) -> str | None:
    """Import each (module, names); the first failure as one line ('ImportError: ...'), or None."""
    for module, names in imports:
        try:
            loaded = importlib.import_module(module)
            for name in names:
                if not hasattr(loaded, name):
                    raise ImportError(f"cannot import name {name!r} from {module!r}")
        except Exception as exc:  # ImportError, OSError from a shared library, a broken build
            text = " ".join(str(exc).split())
            return f"{type(exc).__name__}: {text}"[:300]
    return None


def flash_attn_problem(dist: str) -> str | None:
    """Why an installed FlashAttention package cannot be used here, in one line, or None: the
    imports transformers will run (a CUDA-mismatched build fails here, e.g. 'libcudart.so.12:
    cannot open shared object file'), then transformers' own check (is_flash_attn_2_available()
    / is_flash_attn_3_available(): needs a CUDA device)."""
    if package_version(dist) is None:
        return None
    error = import_error(FLASH_IMPORTS[dist])
    if error:
        return error
    import transformers.utils.import_utils as checks

    check = getattr(checks, _FLASH_CHECKS[dist], None)
    if check is not None and not check():
        return f"transformers' {_FLASH_CHECKS[dist]}() is False"
    return None


_CUDA_LIBRARY = re.compile(r"lib(?:cudart|cublas\w*|cusparse|cufft|curand|nvrtc|nvJitLink)\.so\.(\d+)")
_CUDA_LABEL = re.compile(r"\+cu(\d+)")


def built_cuda_major(error: str | None, version: str | None) -> str | None:
    """The CUDA major a compiled package was built for, where it shows: the CUDA library its
    import failed to find ('libcudart.so.12: cannot open shared object file') or the wheel's
    local version label ('2.8.3+cu12torch2.7', '2.8.3+cu130')."""
    found = _CUDA_LIBRARY.search(error or "")
    if found:
        return found.group(1)
    label = _CUDA_LABEL.search(version or "")
    if label:
        digits = label.group(1)
        return digits if len(digits) <= 2 else digits[:-1]  # cu128 -> 12, cu130 -> 13
    return None


@dataclass(frozen=True)
class Platform:
    """The facts the configuration registry needs to say what can run here."""

    has_cuda: bool
    gpu_name: str | None
    capability: tuple[int, int] | None
    bf16_supported: bool
    packages: dict[str, str | None] = field(default_factory=dict)
    ort_providers: tuple[str, ...] = ()
    tensorrt_loadable: bool = False
    torch_cuda: str | None = None  # the CUDA torch was built for (torch.version.cuda)
    # installed distributions whose own import check fails here: name -> one line (flash_attn_problem)
    import_errors: dict[str, str] = field(default_factory=dict)
    gpu_count: int = 0

    def has(self, dist: str) -> bool:
        if dist in self.packages:
            return self.packages[dist] is not None
        return package_version(dist) is not None  # a package no configuration declared (yet)

    @property
    def device(self) -> str:
        return "cuda" if self.has_cuda else "cpu"


@functools.lru_cache(maxsize=1)
def platform() -> Platform:
    import torch

    has_cuda = torch.cuda.is_available() and torch.cuda.device_count() > 0
    gpu_name = torch.cuda.get_device_name(0) if has_cuda else None
    capability = tuple(torch.cuda.get_device_capability(0)) if has_cuda else None
    bf16 = bool(has_cuda and torch.cuda.is_bf16_supported())
    packages = {name: package_version(name) for name in TRACKED_PACKAGES}
    try:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    except Exception:  # not installed, or a broken install: no ONNX Runtime configurations
        providers = ()
    return Platform(
        has_cuda=has_cuda,
        gpu_name=gpu_name,
        capability=capability,  # type: ignore[arg-type]
        bf16_supported=bf16,
        packages=packages,
        ort_providers=providers,
        tensorrt_loadable=has_cuda and _tensorrt_libraries_load(),
        torch_cuda=torch.version.cuda,
        import_errors={d: e for d in FLASH_IMPORTS if (e := flash_attn_problem(d))},
        gpu_count=torch.cuda.device_count() if has_cuda else 0,
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def _nvidia_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            return driver.decode() if isinstance(driver, bytes) else driver
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML (CPU machine) or no permission
        return None


def hardware_label(env: dict[str, Any]) -> str:
    """One short name for the hardware a result was measured on."""
    if env.get("gpu_name"):
        return str(env["gpu_name"])
    return f"CPU: {env.get('cpu_model', 'unknown')} ({env.get('cpu_count', '?')} cores)"


@functools.lru_cache(maxsize=1)
def collect_env() -> dict[str, Any]:
    """Everything a result should carry about where it was measured."""
    import torch

    plat = platform()
    env: dict[str, Any] = {
        "device": plat.device,
        "gpu_name": plat.gpu_name,
        "gpu_count": torch.cuda.device_count() if plat.has_cuda else 0,
        "gpu_memory_mb": (
            round(torch.cuda.get_device_properties(0).total_memory / MiB) if plat.has_cuda else None
        ),
        "compute_capability": ".".join(map(str, plat.capability)) if plat.capability else None,
        "driver": _nvidia_driver() if plat.has_cuda else None,
        "cuda": torch.version.cuda if plat.has_cuda else None,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "packages": dict(plat.packages),
        "ort_providers": list(plat.ort_providers),
        "tensorrt_loadable": plat.tensorrt_loadable,
    }
    env["hardware"] = hardware_label(env)
    if os.environ.get("ARENA_INDUCTOR_FLAGS"):  # an A/B run of the compile flags (arena/backends/inductor.py)
        env["inductor_flags"] = os.environ["ARENA_INDUCTOR_FLAGS"]
    return env
