"""The GPU stages: every table the closing notes publish, as data. `python -m benchmarks.gpu`
runs them (arena/bench/driver.py).

A stage is a name, a kind (how its rows run and which table they make), one or more parts (a
model, the configurations, the settings) and the minutes it is expected to take on one H200.
Configurations are picked from the registry by what they are (family, backend, technique), when
the stage runs: a new registry row of a family joins its stages with no edit here. The registry
facts read are those of `Config` (family, backend, attn, sdpa_kernel, quant and its library,
static_cache, compiled_decode, tensor_parallel, speculation, needs_cuda, retired), in the predicates below.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from arena.core.limits import DEFAULT_TIMEOUT_S
from arena.core.prompts import EDIT_PROMPT
from arena.techniques import registry
from arena.techniques.registry import Config

Kind = Literal["run", "bandwidth", "quant", "speculative", "sweep", "fidelity", "profile", "script"]
RUN_KINDS = ("run", "bandwidth", "quant", "speculative")  # one RunRequest per part; they differ in their table only


@dataclass(frozen=True)
class Select:
    """Which registry rows a part runs: `text` for --list, `pick` over the registry's rows."""

    text: str
    pick: Callable[[list[Config]], list[str]]

    def names(self) -> list[str]:
        return self.pick(list(registry.REGISTRY.values()))

    def __add__(self, other: Select) -> Select:
        return Select(f"{self.text} + {other.text}",
                      lambda rows: list(dict.fromkeys(self.pick(rows) + other.pick(rows))))


def where(text: str, test: Callable[[Config], bool]) -> Select:
    return Select(text, lambda rows: [c.name for c in rows if test(c)])


def named(*names: str) -> Select:
    """Anchors (a baseline, the row a ratio is against), in this order; a name the registry
    no longer has stays, so the run refuses it by name instead of dropping it unseen."""
    return Select(", ".join(names), lambda rows: list(names))


def one_per(text: str, key: Callable[[Config], Hashable | None]) -> Select:
    """The first registry row of each distinct key (rows keyed None are left out)."""
    def pick(rows: list[Config]) -> list[str]:
        seen: dict[Hashable, str] = {}
        for c in rows:
            k = key(c)
            if k is not None and k not in seen:
                seen[k] = c.name
        return list(seen.values())
    return Select(text, pick)


NOTHING = Select("-", lambda rows: [])

# ----------------------------------------------------------------------------- registry facts


def plain_attention(c: Config) -> bool:
    """An attention implementation on its own: no kernel forced, no weights or cache changed."""
    return c.family == "attention" and c.sdpa_kernel is None and c.attn in ("eager", "sdpa") and not c.retired


def uses_flash_attn(c: Config) -> bool:
    return c.attn in ("flash_attention_2", "flash_attention_3")


def sweepable(c: Config) -> bool:
    """The attention rows a sweep compares: all but a retired one and the unfused math kernel
    (eager's equivalent, slow at long lengths)."""
    return c.family == "attention" and not c.retired and c.sdpa_kernel != "math"


def torchao_row(c: Config) -> bool:
    return c.quant is not None and c.quant.library == "torchao"


def torch_single_device(c: Config) -> bool:
    """The PyTorch rows of the 7B table: attention, bitsandbytes, static cache and their
    combinations; torchao and compiled-decode have their own table, tensor parallelism needs two GPUs,
    speculative decoding real weights."""
    return (c.backend == "torch" and not c.tensor_parallel and not torchao_row(c) and not c.compiled_decode
            and c.speculation is None)  # speculative rows: refused on synthetic weights


def technique(c: Config) -> str | None:
    """What a fidelity check compares a bare loop with: one key per measuring path (the first
    registry row of each is checked); combinations and multi-GPU rows are left out."""
    if c.family in ("combination", "parallel") or c.retired:
        return None
    if c.backend == "onnxruntime":
        return c.provider if c.needs_cuda else None  # ORT on CUDA: the CPU export of a 7B is no GPU table
    if c.quant:
        return c.quant.technique()  # bitsandbytes splits 8-bit from 4-bit; another library is its own key
    if c.compiled_decode or c.static_cache:
        return c.name
    return c.attn if plain_attention(c) else None


EVERY = where("every configuration", lambda c: True)
ATTENTION = where("attention rows but sdpa-math and retired ones", sweepable)
FLASH_LINE = named(registry.BASELINE, "sdpa", "sdpa-flash") + where("every flash-attn row", uses_flash_attn)
PADDED_LINE = named(registry.BASELINE, "sdpa", "sdpa-flash") + where(
    "FlashAttention rows of the attention family", lambda c: uses_flash_attn(c) and c.family == "attention")
PER_TECHNIQUE = one_per("one row per technique (eager, sdpa, static-cache, compiled-decode, bitsandbytes 8/4-bit, "
                        "torchao, ONNX Runtime on CUDA)", technique)
QUANT_BF16 = named("compiled-decode")  # bf16 compiled-decode first: the baseline of every quantization ratio
TORCHAO_COMPILED = where("every torchao row under compiled decode", lambda c: torchao_row(c) and c.compiled_decode)
INT4_COMPILED = where("every 4-bit torchao row under compiled decode",
                      lambda c: torchao_row(c) and c.compiled_decode and "4" in c.quant.scheme)
DECODE_LINE = named(registry.BASELINE, "sdpa", "compiled-decode") + where(
    "every FlashAttention-2 row and every compiled decode step with its own attention kernel, without quantization",
    lambda c: not c.quant and (c.attn == "flash_attention_2" or (c.compiled_decode and c.sdpa_kernel is not None)))

# ----------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Part:
    configs: Select
    settings: Mapping[str, Any]  # RunRequest / SweepRequest fields (model included); script: argv
    label: str = ""

    def key(self, kind: Kind) -> str:
        """What makes two calls measure the same rows: the kind and the settings but the time limit."""
        same = {k: v for k, v in self.settings.items() if k not in ("timeout_s", "isolation")}
        text = json.dumps({"kind": kind, "label": self.label, **same}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    name: str
    kind: Kind
    parts: tuple[Part, ...]
    minutes: float  # expected on one H200, all rows, cold caches
    about: str
    gpus: int = 1  # GPUs it needs
    options: Mapping[str, Any] = field(default_factory=dict)  # fidelity: rounds; profile: tokens

    def names(self) -> list[str]:
        return [n for part in self.parts for n in part.configs.names()]


SEVEN_B = {"model": "synthetic:llama-2-7b", "prompt_tokens": 128, "max_new_tokens": 128}
STORY = "Write a short story about a lighthouse keeper."
GUIDE_SWEEP = {"mode": "forward", "dtype": "bf16", "seq_lens": [4096], "batch_sizes": [1, 2, 4, 8],
               "padding": [0.0, 0.3], "repeats": 2, "warmup": 1, "timeout_s": 150}
TP = {**SEVEN_B, "dtype": "bf16", "max_new_tokens": 64, "repeats": 2, "timeout_s": 240}


def _stages() -> tuple[Stage, ...]:
    run7b = {**SEVEN_B, "repeats": 2}
    return (
        Stage("cpu", "run", (Part(where("the attention family", lambda c: c.family == "attention"),
                                  {"model": "synthetic:tiny-llama", "prompt_tokens": 16, "max_new_tokens": 8,
                                   "repeats": 2, "timeout_s": 300}),), 1,
              "smoke test of the driver on any machine: the tiny synthetic Llama, attention rows"),
        Stage("default", "run", (Part(EVERY, {"model": "default", "max_new_tokens": 64, "repeats": 3,
                                              "timeout_s": 400}),), 12,
              "every configuration on the embedded default (real weights): agreement and NLL over the compared span"),
        Stage("7b-torch", "run", (Part(where("PyTorch rows on one device (attention, bitsandbytes, static cache, "
                                             "their combinations)", torch_single_device),
                                       {**run7b, "timeout_s": 300}),), 12,
              "Llama-2-7B shape: PyTorch and bitsandbytes rows (bnb-8bit + flash-attention-2 included)"),
        Stage("7b-ort", "run", (Part(named(registry.BASELINE) + where(
            "ONNX Runtime on CUDA", lambda c: c.backend == "onnxruntime" and c.needs_cuda),
            {**run7b, "timeout_s": 420}),), 8,
              "Llama-2-7B shape: ONNX Runtime on CUDA / TensorRT beside eager, export_s apart from load"),
        Stage("fidelity-default", "fidelity", (Part(PER_TECHNIQUE, {"model": "default", "prompt": STORY,
                                                                    "max_new_tokens": 64, "repeats": 3,
                                                                    "timeout_s": 240}),), 10,
              "every family against its own bare reference loop on the embedded default (+ energy sanity)",
              options={"rounds": 2}),
        Stage("fidelity-7b", "fidelity", (Part(PER_TECHNIQUE, {**SEVEN_B, "prompt": STORY, "repeats": 3,
                                                               "timeout_s": 420}),), 25,
              "every family against its own bare reference loop on the Llama-2-7B shape (+ energy sanity)",
              options={"rounds": 2}),
        Stage("fa2-default", "run", (Part(FLASH_LINE, {"model": "default", "max_new_tokens": 64, "repeats": 3,
                                                       "timeout_s": 300}),), 1.5,
              "FlashAttention rows beside eager, sdpa and sdpa-flash on the embedded default"),
        Stage("fa2-llama", "run", (Part(FLASH_LINE, {**run7b, "timeout_s": 300}),), 4.5,
              "FlashAttention rows beside eager, sdpa and sdpa-flash on the Llama-2-7B shape"),
        Stage("fa2-mistral", "run", (Part(FLASH_LINE, {**run7b, "model": "synthetic:mistral-7b",
                                                       "prompt_tokens": 4608, "timeout_s": 300}),), 5,
              "Mistral-7B shape past its 4096-token sliding window (4608-token prompt): FlashAttention rows"),
        Stage("sweep-llama", "sweep", (Part(ATTENTION, {**GUIDE_SWEEP, "model": "synthetic:llama-2-7b"}),), 2.5,
              "the guide's speedup chart: one forward pass at 4096, batch 1..8, padding 0 and 30%, Llama-2-7B shape"),
        Stage("sweep-falcon", "sweep", (Part(ATTENTION, {**GUIDE_SWEEP, "model": "synthetic:falcon-7b"}),), 2.5,
              "the guide's speedup chart on the Falcon-7B shape"),
        Stage("sweep-memory", "sweep", (Part(ATTENTION, {**GUIDE_SWEEP, "model": "synthetic:llama-2-7b",
                                                         "seq_lens": [512, 1024, 2048, 4096, 8192, 16384],
                                                         "batch_sizes": [1], "padding": [0.0]}),), 2.5,
              "the guide's memory chart: peak memory against length, batch 1, Llama-2-7B shape"),
        Stage("padded", "sweep", (Part(PADDED_LINE, {
            "model": "synthetic:llama-2-7b", "mode": "generate-padded", "batch_sizes": [1, 4, 8, 16],
            "prompt_lens": "64..1024", "new_tokens": 128, "dtype": "bf16", "repeats": 2, "warmup": 1,
            "timeout_s": 200}),), 4.5,
              "generation on a padded batch: prompts of 64..1024 tokens, 128 new, batch 1/4/8/16"),
        *(Stage(f"bandwidth-{label}", "bandwidth", (Part(
            where("plain attention and the compile family", lambda c: plain_attention(c) or c.family == "compile"),
            {"model": model, "dtype": "bf16", "max_new_tokens": 128, "repeats": 3, "prompt": STORY, **extra}),),
            minutes, f"each configuration against the memory-bandwidth limit ({what}, bf16, batch 1, 128 new)")
          for label, model, extra, minutes, what in (
              ("7b", "synthetic:llama-2-7b", {"prompt_tokens": 128}, 3, "Llama-2-7B shape"),
              ("1b", "synthetic:llama-3.2-1b", {"prompt_tokens": 128}, 2, "Llama-3.2-1B shape"),
              ("default", "default", {}, 2, "the embedded default"))),
        Stage("quant-7b", "quant", (Part(QUANT_BF16 + where("every torchao row", torchao_row)
                                         + named("bnb-4bit"),
                                         {**SEVEN_B, "dtype": "bf16", "repeats": 3, "prompt": STORY,
                                          "timeout_s": 420}),), 20,
              "torchao (int8 / int4 / float8, plain and under compiled decode) and bnb-4bit beside bf16 "
              "compiled-decode on the Llama-2-7B shape"),
        Stage("quant-default", "quant", (Part(QUANT_BF16 + where("every torchao row", torchao_row)
                                              + named("bnb-4bit"),
                                              {"model": "default", "dtype": "bf16", "max_new_tokens": 128,
                                               "repeats": 3, "prompt": STORY, "timeout_s": 420}),), 8,
              "the same on the embedded default: NLL and agreement against bf16 mean something here"),
        Stage("quant-profile", "profile", (
            Part(QUANT_BF16 + TORCHAO_COMPILED, {**SEVEN_B, "dtype": "bf16", "prompt": STORY}, "Llama-2-7B shape"),
            Part(QUANT_BF16, {"model": "default", "dtype": "bf16", "prompt": STORY}, "embedded default")), 5,
              "kernel time against gaps per decode step (torch.profiler), compiled decode in bf16 and torchao",
              options={"tokens": 21}),
        Stage("fast-int4", "quant", (Part(QUANT_BF16 + INT4_COMPILED, {**SEVEN_B, "dtype": "bf16", "repeats": 3,
                                                                       "prompt": STORY, "timeout_s": 420}),), 5,
              "the 4-bit candidates (tinygemm groups of 128 and 64, gemlite, MSLK where installed) under compiled "
              "decode beside bf16 compiled-decode, Llama-2-7B shape (issue 24's 2x target)"),
        Stage("speculative", "speculative", tuple(
            Part(named("sdpa") + where("the speculative family", lambda c: c.family == "speculative"),
                 {"model": "default", "dtype": "bf16", "prompt": prompt, "max_new_tokens": 128, "repeats": 3,
                  "timeout_s": 300}, label) for label, prompt in (("edit a passage", EDIT_PROMPT),
                                                                  ("free-form", STORY))), 3,
              "speculative decoding on the embedded default against sdpa (the baseline of the call): prompt lookup "
              "and assisted (the embedded model as its own draft: a sanity check, acceptance near 1, no gain expected) "
              "on a prompt that copies a pasted passage and on a free-form one; acceptance, tokens per step, speedup"),
        Stage("fast-fa2-decode", "run", (Part(DECODE_LINE, {"model": "default", "dtype": "bf16", "max_new_tokens": 64,
                                                            "repeats": 3, "timeout_s": 300}),), 3,
              "the compiled step's attention kernel (FlashAttention-2 decoding, SDPA's flash kernel) against sdpa "
              "and compiled-decode on real weights (their tokens must be compiled-decode's)"),
        Stage("fast-flags", "script", tuple(Part(NOTHING, {"argv": [
            "-m", "benchmarks.fast_path", "--model", model, "--configs", configs, "--sets", sets,
            "--json", "{out}/fast-flags-" + label + ".json"], "timeout_s": 590}, label) for model, configs, sets, label in (
                ("synthetic:llama-2-7b", "compiled-decode,torchao-int4wo+compiled-decode", "default,max-autotune,pdl",
                 "7b"),
                # the small model's step is launch-bound: fewer kernels (combo) and shorter gaps (PDL)
                ("default", "compiled-decode", "default,combo,pdl,combo+pdl", "default"))), 14,
              "inductor flag sets (default, max-autotune, combo kernels, PDL) for compiled decode, alternating in one "
              "call: bf16 and int4 on the 7B shape, bf16 on the embedded default (issue 24's 80% and 1,500 tok/s "
              "targets)"),
        Stage("long-context", "run", tuple(
            Part(DECODE_LINE, {"model": "synthetic:llama-2-7b-32k", "dtype": "bf16", "prompt_tokens": n,
                               "max_new_tokens": 128, "repeats": 2, "timeout_s": 540}, f"{n}-token prompt")
            for n in (2048, 8192, 32640)), 20,
              "decode at long context, batch 1, 128 new: eager, sdpa, compiled-decode, its attention-kernel rows and "
              "the FlashAttention-2 rows (where split-KV flash decoding wins), Llama-2-7B-32K shape"),
        *(Stage(f"server-{name}", "script", (Part(NOTHING, {"argv": [
            "-m", "benchmarks.server_e2e", "--phases", phases, "--out", "{out}/server-" + name,
            "--max-run-s", run_s],
            "timeout_s": DEFAULT_TIMEOUT_S}),), minutes, about) for name, phases, run_s, minutes, about in (
            ("quick", "quick,cancel", "300", 5, "the server through its API: quick checks (cold, warm, compiled, six "
                                         "configurations) and cancel, local preset (benchmarks/server_e2e.py)"),
            ("load", "load", "300", 4, "the public server (SPACE_ID set) under 4 sessions and a hostile client for "
                                       "3 minutes"),
            ("families", "families,memory", "540", 15, "every configuration in one run through the server, then GPU "
                                                 "memory: six warm workers and a 7B run after them"))),
        Stage("warm", "script", (Part(named("sdpa") + where("the compile family", lambda c: c.family == "compile"),
                                      {"argv": ["-m", "benchmarks.warm_workers", "--configs", "{configs}",
                                                "--tokens", "32"], "timeout_s": 540}),), 3,
              "warm workers through the server: the same request cold, then warm (benchmarks/warm_workers.py)"),
        Stage("peer", "script", (Part(named("eager", "sdpa"), {"argv": [
            "-m", "benchmarks.peer_check", "--model", "synthetic:llama-2-7b", "--dtype", "bf16", "--prompt-tokens",
            "128", "--max-new-tokens", "64", "--attn", "{configs}", "--rounds", "3",
            "--json", "{out}/peer.json"], "timeout_s": 590}),), 8,
              "optimum-benchmark 0.6.0 and the arena on the 7B shape, alternating rounds (benchmarks/peer_check.py)"),
        Stage("multi-gpu", "run", (
            Part(named("sdpa", "bnb-4bit"), {**TP, "max_new_tokens": 128, "repeats": 3, "gpus": "0",
                                             "timeout_s": 400}, "one GPU"),
            Part(named("sdpa"), {**TP, "max_new_tokens": 128, "repeats": 3, "max_memory": "0=8GiB,1=40GiB",
                                 "timeout_s": 400}, "split, bf16 (8 GiB on GPU 0 forces it)"),
            Part(named("bnb-4bit"), {**TP, "max_new_tokens": 128, "repeats": 3, "max_memory": "0=2GiB,1=40GiB",
                                     "timeout_s": 400}, "split, bnb-4bit")), 6,
              "Llama-2-7B shape on GPU 0 alone, then split over GPUs 0 and 1 by max_memory budgets", gpus=2),
        Stage("multi-gpu-70b", "run", (Part(named("sdpa"), {**TP, "model": "synthetic:llama-2-70b", "gpus": "0,1",
                                                            "timeout_s": 280}),), 5,
              "Llama-2-70B shape (129 GiB of bf16 weights) split over GPUs 0 and 1 by device_map", gpus=2),
        Stage("tp-7b", "run", (
            Part(named("sdpa", "static-cache"), {**TP, "gpus": "0"}, "one GPU"),
            Part(named("sdpa"), {**TP, "gpus": "0,1"}, "device_map split"),
            Part(where("the parallel family", lambda c: c.family == "parallel"), {**TP, "gpus": "0,1"},
                 "tensor parallel")), 5,
              "tensor-parallel (+static cache) against the device_map split and one GPU, Llama-2-7B shape", gpus=2),
        Stage("tp-70b", "run", (
            Part(named("sdpa"), {**TP, "model": "synthetic:llama-2-70b", "gpus": "0,1", "timeout_s": 280},
                 "device_map split"),
            Part(where("the parallel family", lambda c: c.family == "parallel"),
                 {**TP, "model": "synthetic:llama-2-70b", "gpus": "0,1", "timeout_s": 280}, "tensor parallel")), 8,
              "tensor-parallel against the device_map split, Llama-2-70B shape", gpus=2),
        Stage("tp-profile", "script", tuple(
            Part(NOTHING, {"argv": ["-m", "benchmarks.tp_profile", "--model", f"synthetic:{m}", "--dtype", "bf16",
                                    "--gpus", "0,1", "--steps", "16", "--json", f"{{out}}/tp-profile-{m}.json"],
                           "timeout_s": 400}, m) for m in ("llama-2-7b", "llama-2-70b")), 4,
              "what bounds a tensor-parallel decode step: NCCL all-reduce against other kernels and idle", gpus=2),
    )


STAGES: dict[str, Stage] = {s.name: s for s in _stages()}

GROUPS: dict[str, tuple[str, ...]] = {
    "sweep": ("sweep-llama", "sweep-falcon", "sweep-memory"),
    "sweep-guide": ("sweep-llama", "sweep-falcon"),
    "fa2-sweep": ("sweep-llama", "sweep-falcon", "sweep-memory"),  # every sweep has the FA2 line where it runs
    "fa2": ("fa2-default", "fa2-llama", "fa2-mistral"),
    "7b-rest": ("7b-ort", "fidelity-7b"),
    "fidelity": ("fidelity-default", "fidelity-7b"),
    "trust": ("default", "7b-torch", "7b-ort", "fidelity-default"),
    "bandwidth": ("bandwidth-7b", "bandwidth-1b", "bandwidth-default"),
    "quant": ("quant-7b", "quant-default", "quant-profile"),
    "tp": ("tp-7b", "tp-70b", "tp-profile"),
    "server": ("server-quick", "server-load", "server-families"),
    "fast": ("fast-fa2-decode", "fast-int4", "fast-flags", "long-context", "quant-profile"),
    "one-gpu": tuple(s.name for s in STAGES.values() if s.gpus == 1 and s.name != "cpu"),
    "two-gpu": tuple(s.name for s in STAGES.values() if s.gpus == 2),
}


class UnknownStageError(ValueError):
    pass


def expand(names: Iterable[str], stages: Mapping[str, Stage] = STAGES,
           groups: Mapping[str, tuple[str, ...]] = GROUPS) -> list[Stage]:
    """Stage and group names -> stages, in the order given, each once."""
    out: list[Stage] = []
    for name in names:
        members = groups.get(name, (name,))
        for member in members:
            if member not in stages:
                raise UnknownStageError(f"unknown stage {name!r}; stages: {', '.join(stages)}; "
                                        f"groups: {', '.join(groups)}")
            if stages[member] not in out:
                out.append(stages[member])
    return out
