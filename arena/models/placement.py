"""Where a PyTorch model runs: one device, or split over several by accelerate.

A request may name the GPUs to use (`gpus`: "0,1") and a memory budget per device
(`max_memory`: "0=20GiB,1=20GiB,cpu=30GiB"), as the guide's bitsandbytes examples do with
`device_map="auto"` and `max_memory`. This module parses and checks those settings
(`parse`), plans the split accelerate would make without loading any weights (`plan`), and
summarizes the split a loaded model really got (`summarize`: device -> layers and weights).

- No setting (or GPU 0 alone): the model runs on the default device, as always.
- One GPU, no budget: the model runs whole on that GPU.
- Several GPUs, or any budget: `from_pretrained(device_map="auto", max_memory=...)`; GPUs named
  without a budget get their free memory. Configurations that need the whole model on one
  device (ONNX Runtime, CUDA-graph ones) are refused with their reason (`registry.availability`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arena.core.units import GiB, MiB

MIN_BUDGET = MiB  # below this no layer of any model fits: a typo, not a budget
MAX_FIELD_CHARS = 1000
UNITS = {"b": 1, "kb": 10**3, "kib": 2**10, "mb": 10**6, "mib": MiB, "gb": 10**9, "gib": GiB,
         "tb": 10**12, "tib": 2**40}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]+)$", re.IGNORECASE)


class PlacementError(ValueError):
    """A placement setting that cannot be used, with a one-line reason."""


@dataclass
class Placement:
    """A validated placement: GPU indices in use and budgets in bytes ("0", "1", "cpu" keys)."""

    gpus: tuple[int, ...] = ()
    max_memory: dict[str, int] = field(default_factory=dict)

    @property
    def asked(self) -> bool:
        """Anything other than the default device."""
        return bool(self.max_memory) or self.gpus not in ((), (0,))

    @property
    def mapped(self) -> bool:
        """The model goes through device_map="auto": several GPUs, or a budget."""
        return bool(self.max_memory) or len(self.gpus) > 1

    def device(self, default: str) -> str:
        """The device a worker computes on (the first GPU of a split; cpu for a cpu-only budget)."""
        if self.gpus:
            return f"cuda:{self.gpus[0]}"
        if self.max_memory:  # budgets without GPUs: cpu only
            return "cpu"
        return default

    def accelerate_max_memory(self, free_gpu_bytes: Mapping[int, int] | None = None) -> dict[int | str, int]:
        """max_memory as from_pretrained takes it: int keys for GPUs; a GPU named in `gpus`
        without a budget gets its free memory (as accelerate itself would)."""
        out: dict[int | str, int] = {}
        for gpu in self.gpus:
            if str(gpu) in self.max_memory:
                out[gpu] = self.max_memory[str(gpu)]
            else:
                out[gpu] = int((free_gpu_bytes or {}).get(gpu) or _free_gpu_bytes(gpu))
        if "cpu" in self.max_memory:
            out["cpu"] = self.max_memory["cpu"]
        return out

    def text(self) -> str:
        """The settings as one could type them back: 'gpus 0,1; max_memory 0=8GiB,1=40GiB'."""
        parts = []
        if self.gpus:
            parts.append("gpus " + ",".join(map(str, self.gpus)))
        if self.max_memory:
            parts.append("max_memory " + ",".join(f"{k}={format_size(v)}" for k, v in self.max_memory.items()))
        return "; ".join(parts) or "default device"


def _free_gpu_bytes(gpu: int) -> int:
    import torch

    return int(torch.cuda.mem_get_info(gpu)[0])


# ---------------------------------------------------------------- parsing


def format_size(n: int) -> str:
    if n >= 2**70:
        return "more than 1ZiB"
    for unit, size in (("GiB", GiB), ("MiB", MiB)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value.is_integer() else f"{value:.2f}{unit}"
    return f"{n}B"


def parse_size(text: str, where: str) -> int:
    """'20GiB', '1.5 GB', '512MiB' -> bytes; PlacementError without a unit or number."""
    match = _SIZE.match(text.strip())
    unit = match.group(2).lower() if match else ""
    if not match or unit not in UNITS:
        raise PlacementError(f"{where}: {_clip(text)!r} is not a size such as 20GiB, 512MiB, 20GB or 500MB")
    number = float(match.group(1)) * UNITS[unit]
    return int(number) if number < 2**80 else 2**80  # far beyond any device: refused by size


def _clip(value: Any, n: int = 40) -> str:
    if isinstance(value, int) and abs(value) > 10**30:  # str() of a huge int is refused by Python
        return "a huge number"
    text = str(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _device_key(raw: Any) -> str:
    """'0', 0, 'cuda:1', 'CPU' -> '0', '0', '1', 'cpu'."""
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise PlacementError(f"max_memory: {_clip(raw)!r} is not a device (use a GPU index such as 0, or cpu)")
    if isinstance(raw, int):
        if raw < 0:
            raise PlacementError(f"max_memory: {_clip(raw)} is not a GPU index")
        return str(raw) if raw < 10**6 else "999999"  # no such GPU: refused by its index below
    text = raw.strip().lower()
    if text.startswith("cuda:"):
        text = text[5:]
    if text == "cpu":
        return "cpu"
    if text.isdigit() and text.isascii() and len(text) <= 6:
        return str(int(text))
    if text == "disk":
        raise PlacementError("max_memory: disk offload is not supported; give budgets for GPUs and cpu only")
    raise PlacementError(f"max_memory: {_clip(raw)!r} is not a device (use a GPU index such as 0, or cpu)")


def _budget(value: Any, key: str) -> int:
    where = f"max_memory for {'cpu' if key == 'cpu' else 'GPU ' + key}"
    if isinstance(value, bool):
        raise PlacementError(f"{where} must be a size such as 20GiB (got {value!r})")
    if isinstance(value, int):
        return value  # bytes, as accelerate takes them
    if isinstance(value, str):
        return parse_size(value, where)
    raise PlacementError(f"{where} must be a size such as 20GiB (got {type(value).__name__})")


def parse_max_memory(value: Any) -> dict[str, int]:
    """'0=20GiB,1=20GiB,cpu=30GiB' or a mapping {0: '20GiB', 'cpu': 32212254720} -> budgets in
    bytes by device key; {} for None or empty text."""
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise PlacementError(f"max_memory is {len(value)} characters long; give one budget per device")
        pairs = []
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, size = item.partition("=")
            if not sep:
                raise PlacementError(f"max_memory: {_clip(item.strip())!r} is not DEVICE=SIZE (e.g. 0=20GiB,1=20GiB)")
            pairs.append((key, size))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise PlacementError(f"max_memory must be text such as 0=20GiB,1=20GiB (got {type(value).__name__})")
    budgets: dict[str, int] = {}
    for raw_key, raw_size in pairs:
        key = _device_key(raw_key)
        if key in budgets:
            raise PlacementError(f"max_memory gives {'cpu' if key == 'cpu' else 'GPU ' + key} twice")
        budgets[key] = _budget(raw_size, key)
    return budgets


def parse_gpus(value: Any, gpu_count: int) -> tuple[int, ...]:
    """'0,1', [0, 1], 1 or 'all' -> GPU indices in order, duplicates dropped; () for None or ''."""
    if value is None:
        return ()
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise PlacementError(f"gpus is {len(value)} characters long; give GPU indices such as 0,1")
        if value.strip().lower() == "all":
            if not gpu_count:
                raise PlacementError("gpus: this machine has no CUDA GPU")
            return tuple(range(gpu_count))
        items: list[Any] = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        raise PlacementError(f"gpus must be GPU indices such as 0,1 (got {type(value).__name__})")
    out: list[int] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            index = item
        elif text.isdigit() and text.isascii() and len(text) <= 6:
            index = int(text)
        else:
            raise PlacementError(f"gpus must be GPU indices such as 0,1 (got {_clip(item)!r})")
        _check_gpu(index, gpu_count, "gpus")
        if index not in out:
            out.append(index)
    return tuple(out)


def _check_gpu(index: int, gpu_count: int, what: str) -> None:
    if index < gpu_count:
        return
    if gpu_count == 0:
        raise PlacementError(f"{what}: GPU {_clip(index)} does not exist here: this machine has no CUDA GPU")
    listed = "0" if gpu_count == 1 else f"0-{gpu_count - 1}"
    plural = "GPU" if gpu_count == 1 else "GPUs"
    raise PlacementError(f"{what}: GPU {_clip(index)} does not exist here: this machine has {gpu_count} {plural} ({listed})")


@dataclass(frozen=True)
class Devices:
    """What the budgets are checked against: each GPU's total memory and the host's RAM, bytes."""

    gpu_memory: tuple[int, ...]
    cpu_memory: int


@functools.lru_cache(maxsize=1)
def local_devices() -> Devices:
    import psutil

    from arena.core.env import platform

    gpus: tuple[int, ...] = ()
    if platform().has_cuda:
        import torch

        gpus = tuple(int(torch.cuda.get_device_properties(i).total_memory) for i in range(torch.cuda.device_count()))
    return Devices(gpus, int(psutil.virtual_memory().total))


def parse(gpus: Any, max_memory: Any, devices: Devices | None = None,
          worker_memory_mb: int | None = None) -> Placement:
    """Check a request's placement settings against the devices here (and a server's memory
    limit per worker); PlacementError with one line for anything that cannot be used."""
    devices = devices or local_devices()
    count = len(devices.gpu_memory)
    chosen = parse_gpus(gpus, count)
    budgets = parse_max_memory(max_memory)
    for key, size in budgets.items():
        name = "cpu" if key == "cpu" else f"GPU {key}"
        if key != "cpu":
            _check_gpu(int(key), count, "max_memory")
            if chosen and int(key) not in chosen:
                raise PlacementError(f"max_memory gives a budget for GPU {key}, which is not in gpus "
                                     f"({','.join(map(str, chosen))})")
        total = devices.cpu_memory if key == "cpu" else devices.gpu_memory[int(key)]
        if size < MIN_BUDGET:
            raise PlacementError(f"max_memory for {name} is {size} bytes; a budget is at least 1MiB (e.g. 20GiB)")
        if size > total:
            has = "this machine's RAM" if key == "cpu" else f"GPU {key}'s memory"
            raise PlacementError(f"max_memory for {name} is {format_size(size)}, more than {has} "
                                 f"({format_size(total)})")
        if worker_memory_mb and size > worker_memory_mb * MiB:
            raise PlacementError(f"max_memory for {name} is {format_size(size)}, above this server's limit "
                                 f"of {worker_memory_mb} MB per configuration")
    if not chosen:
        chosen = tuple(sorted(int(k) for k in budgets if k != "cpu"))
    return Placement(chosen, budgets)


# ---------------------------------------------------------------- planning and summaries


def device_name(value: Any) -> str:
    """A device_map value (0, 'cpu', 'disk', torch.device) -> 'cuda:0', 'cpu', 'disk'."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"cuda:{value}"
    text = str(value)
    return "cuda:0" if text == "cuda" else text


def _lookup(device_map: Mapping[str, Any], name: str) -> str:
    """The device of module or parameter `name` under a device_map (longest matching prefix)."""
    best, where = -1, "cpu"
    for key, value in device_map.items():
        if key == "" or name == key or name.startswith(key + "."):
            if len(key) > best:
                best, where = len(key), device_name(value)
    return where


def _decoder_layers(model: Any) -> list[str]:
    """Names of the decoder layers: the children of the model's largest ModuleList."""
    import torch

    best, names = -1, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module):
            size = sum(p.numel() for p in module.parameters())
            if size > best:
                best, names = size, [f"{name}.{i}" for i in range(len(module))]
    return names


def summarize(model: Any, default_device: str) -> dict[str, dict[str, float]]:
    """The placement a model really got: device -> {"layers": decoder layers there,
    "weights_mb": parameter and buffer bytes there}, from `model.hf_device_map` when accelerate
    placed it, else every tensor's own device."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map:
        first = next(iter(model.parameters()), None)
        device_map = {"": first.device if first is not None else default_device}
    out: dict[str, dict[str, float]] = {}

    def slot(device: str) -> dict[str, float]:
        return out.setdefault(device, {"layers": 0, "weights_mb": 0.0})

    for name in _decoder_layers(model):
        slot(_lookup(device_map, name))["layers"] += 1
    seen: set[int] = set()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if id(tensor) in seen:  # tied weights count once
            continue
        seen.add(id(tensor))
        slot(_lookup(device_map, name))["weights_mb"] += tensor.numel() * tensor.element_size() / MiB
    return {k: {"layers": v["layers"], "weights_mb": round(v["weights_mb"], 2)} for k, v in sorted(out.items())}


def plan(model_config: Any, dtype: Any, max_memory: Mapping[int | str, int]) -> dict[str, Any]:
    """The device_map that from_pretrained(device_map="auto", max_memory=...) computes for a
    model of this config in `dtype` (unquantized), without allocating a single weight: the model
    is built on the meta device and placed by accelerate's get_balanced_memory and
    infer_auto_device_map, as transformers does. Runs on any machine, GPUs or not."""
    from arena.models.seeded import build_meta

    return plan_model(build_meta(model_config, dtype), dtype, max_memory)


def plan_model(model: Any, dtype: Any, max_memory: Mapping[int | str, int]) -> dict[str, Any]:
    """plan() for a model already built (on the meta device)."""
    import logging

    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    no_split = model._get_no_split_modules("auto")
    quiet = logging.getLogger("accelerate.utils.modeling")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "Device 0 is not available" where the plan is made elsewhere
    try:
        balanced = get_balanced_memory(model, dtype=dtype, max_memory=dict(max_memory),
                                       no_split_module_classes=no_split)
        budget = {k: min(v, max_memory[k]) if k in max_memory else v for k, v in balanced.items()}
        return infer_auto_device_map(model, max_memory=budget, no_split_module_classes=no_split, dtype=dtype)
    finally:
        quiet.setLevel(level)


def disk_refusal(max_memory: Mapping[Any, int]) -> str:
    """The one line for budgets that leave part of the model for the disk."""
    budgets = ",".join(f"{k}={format_size(v)}" for k, v in max_memory.items())
    return (f"the max_memory budgets ({budgets or 'free memory of the GPUs'}) do not hold the whole "
            f"model; the rest would go to disk, which is not supported: raise the budgets or add cpu=SIZE")


def plan_summary(device_map: Mapping[str, Any], num_layers: int, layer_prefix: str = "model.layers") -> dict[str, int]:
    """Decoder layers per device of a planned device_map."""
    out: dict[str, int] = {}
    for i in range(num_layers):
        device = _lookup(device_map, f"{layer_prefix}.{i}")
        out[device] = out.get(device, 0) + 1
    return dict(sorted(out.items()))


def describe(placement: Mapping[str, Any] | None, peaks: Mapping[str, float] | None) -> str:
    """One line for tables: 'cuda:0 17 layers 6.5 GB peak 7.1 GB | cuda:1 ...'."""
    def size(mb: float) -> str:
        return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.1f} MiB"

    parts = []
    for device in sorted(set(placement or {}) | set(peaks or {})):
        bits = [device]
        where = (placement or {}).get(device) or {}
        if where:
            bits.append(f"{where.get('layers', 0)} layers {size(where.get('weights_mb', 0))}")
        if peaks and peaks.get(device) is not None:
            bits.append(f"peak {size(peaks[device])}")
        parts.append(" ".join(bits))
    return " | ".join(parts)
