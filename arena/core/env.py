"""Hardware and software facts: what this machine is and which libraries it has.

Every result records `collect_env()`, and the configuration registry decides availability
from `platform()`; both are computed once per process.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import platform as _platform
import sys
from dataclasses import dataclass, field
from typing import Any

from arena.core.units import MiB

# Distribution names whose versions go into every result.
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "optimum",
    "optimum-onnx",
    "onnxruntime-gpu",
    "onnxruntime",
    "bitsandbytes",
    "flash-attn",
    "gradio",
)


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
    gpu_count: int = 0

    def has(self, dist: str) -> bool:
        return self.packages.get(dist) is not None

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
    return env
