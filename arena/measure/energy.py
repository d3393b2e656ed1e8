"""Energy of the decode phase: NVML's total-energy counter (mJ) of every GPU the model used,
matched to the CUDA devices by UUID (arena/measure/nvml.py), read when each timed repeat's first
token arrives and when its last one does, summed over repeats and GPUs.

The counter is updated by the driver in steps (tens of ms on recent boards), so a decode window
shorter than MIN_WINDOW_S gives no figure: n/a with that reason, never a rounding artefact."""

from __future__ import annotations

from arena.measure.nvml import Nvml

MIN_WINDOW_S = 1.0


class EnergyMeter:
    """begin()/end() around each decode window (NVML reads only: no thread, no sync)."""

    def __init__(self, device: str, gpus: tuple[int, ...] = ()) -> None:
        self.nvmls: list[Nvml] = []
        if device.startswith("cuda"):
            import torch

            gpus = gpus or (torch.device(device).index or 0,)
            self.nvmls = [Nvml.for_cuda_device(g) for g in gpus]
        self.joules = 0.0
        self.window_s = 0.0
        self._start: list[int | None] | None = None
        self._t0 = 0.0
        self.ok = bool(self.nvmls) and all(n.ok for n in self.nvmls) and all(
            n.energy_mj() is not None for n in self.nvmls)

    def begin(self, t: float) -> None:
        if self.ok:
            self._start, self._t0 = [n.energy_mj() for n in self.nvmls], t

    def end(self, t: float) -> None:
        if not self.ok or self._start is None:
            return
        end = [n.energy_mj() for n in self.nvmls]
        if any(v is None for v in end + self._start):
            self.ok = False
            return
        self.joules += sum(b - a for a, b in zip(self._start, end)) / 1e3  # type: ignore[operator]
        self.window_s += t - self._t0
        self._start = None

    def per_token(self, decode_tokens: int) -> tuple[float | None, str]:
        """Joules per decoded token and how it was read (or why there is none)."""
        if not self.nvmls:
            return None, "n/a: no NVIDIA GPU"
        if not self.ok:
            return None, "n/a: NVML's energy counter could not be read"
        if self.window_s < MIN_WINDOW_S:
            return None, (f"n/a: the decode phase lasted {self.window_s * 1e3:.0f} ms in all, shorter than the "
                          f"{MIN_WINDOW_S:g} s the energy counter needs; raise max new tokens or repeats")
        how = sorted({n.how for n in self.nvmls})
        return self.joules / decode_tokens, (
            f"NVML total energy over the decode phase ({self.window_s:.2f} s), summed over "
            f"{len(self.nvmls)} GPU(s), {', '.join(how)}")
