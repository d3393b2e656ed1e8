"""Energy: NVML's total-energy counter around the timed region."""

from __future__ import annotations

from arena.measure.nvml import Nvml


class EnergyMeter:
    """Joules spent by the GPU between start() and stop() (NVML total energy counter)."""

    def __init__(self, device: str) -> None:
        self.nvml = Nvml() if device.startswith("cuda") else None
        self._start: int | None = None
        self.joules: float | None = None

    def start(self) -> None:
        self._start = self.nvml.energy_mj() if self.nvml else None

    def stop(self) -> float | None:
        end = self.nvml.energy_mj() if self.nvml else None
        self.joules = (end - self._start) / 1e3 if end is not None and self._start is not None else None
        return self.joules
