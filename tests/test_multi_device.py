"""GPU choice and max_memory splits (arena/models/placement.py): parsing and validation, the split
accelerate plans for a 2-GPU budget (on the meta device, no GPU needed), a real split run on the
cpu that records its placement and per-device peak, and the configurations that cannot be split."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from arena.core.env import platform
from arena.core.limits import ServerLimits
from arena.core.request import RequestError, RunRequest
from arena.core.results import JSON_FIELDS
from arena.execute import runner
from arena.execute.prepare import validate
from arena.models import placement
from arena.models.placement import Devices, GiB, MiB, Placement, PlacementError
from arena.models.sources import load_config
from arena.models.spec import parse_model
from arena.techniques import registry
from arena.ui.cli import main
from tests.localmodel import small_local_model as _small_local_model

TWO_H200 = Devices(gpu_memory=(140 * GiB, 140 * GiB), cpu_memory=256 * GiB)
ONE_GPU = Devices(gpu_memory=(80 * GiB,), cpu_memory=64 * GiB)
NO_GPU = Devices(gpu_memory=(), cpu_memory=16 * GiB)
no_cuda = pytest.mark.skipif(platform().has_cuda, reason="checks what a machine without a GPU refuses")


# ---------------------------------------------------------------- parsing and validation


def test_budget_syntax_units_and_devices():
    assert placement.parse_max_memory("0=20GiB,1=20GiB") == {"0": 20 * GiB, "1": 20 * GiB}
    assert placement.parse_max_memory(" 0 = 512MiB , cpu=1.5GB, ") == {"0": 512 * MiB, "cpu": 1_500_000_000}
    assert placement.parse_max_memory("cuda:1=500MB,CPU=2gib") == {"1": 500_000_000, "cpu": 2 * GiB}
    assert placement.parse_max_memory({0: "8GiB", "cpu": 3 * GiB}) == {"0": 8 * GiB, "cpu": 3 * GiB}
    assert placement.parse_max_memory(None) == placement.parse_max_memory("") == {}


@pytest.mark.parametrize("text,message", [
    ("0=20", "'20' is not a size such as 20GiB"),
    ("0=20 parsecs", "is not a size"),
    ("0:20GiB", "is not DEVICE=SIZE"),
    ("gpu0=1GiB", "'gpu0' is not a device"),
    ("disk=10GiB", "disk offload is not supported"),
    ("0=1GiB,0=2GiB", "gives GPU 0 twice"),
    ("cpu=-1GiB", "is not a size"),
    ("0=nanGiB", "is not a size"),
])
def test_bad_budget_text_is_one_line(text, message):
    with pytest.raises(PlacementError) as err:
        placement.parse(None, text, TWO_H200)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_gpu_indices_checked_against_the_devices_here():
    assert placement.parse("0,1", None, TWO_H200) == Placement((0, 1), {})
    assert placement.parse([1, 1, 0], None, TWO_H200).gpus == (1, 0)  # duplicates dropped, order kept
    assert placement.parse("all", None, TWO_H200).gpus == (0, 1)
    with pytest.raises(PlacementError, match=r"GPU 2 does not exist here: this machine has 2 GPUs \(0-1\)"):
        placement.parse("0,2", None, TWO_H200)
    with pytest.raises(PlacementError, match=r"GPU 1 does not exist here: this machine has 1 GPU \(0\)"):
        placement.parse(None, "0=8GiB,1=40GiB", ONE_GPU)
    with pytest.raises(PlacementError, match="this machine has no CUDA GPU"):
        placement.parse("0", None, NO_GPU)
    for junk in ("-1", "0.5", "x", [True], [None], 2.0, {"0": 1}, 10**400):
        with pytest.raises(PlacementError) as err:
            placement.parse(junk, None, TWO_H200)
        assert "\n" not in str(err.value)


def test_absurd_budgets_are_refused():
    with pytest.raises(PlacementError, match="more than GPU 0's memory"):
        placement.parse(None, "0=200GiB", TWO_H200)
    with pytest.raises(PlacementError, match="more than this machine's RAM"):
        placement.parse(None, "cpu=1TiB", TWO_H200)
    with pytest.raises(PlacementError, match="a budget is at least 1MiB"):
        placement.parse(None, "0=100KiB", TWO_H200)
    with pytest.raises(PlacementError, match="more than 1ZiB"):
        placement.parse(None, {"cpu": 10**400}, TWO_H200)
    with pytest.raises(PlacementError, match="which is not in gpus"):
        placement.parse("0", "0=8GiB,1=8GiB", TWO_H200)
    # a server's memory limit per configuration bounds every budget
    with pytest.raises(PlacementError, match="above this server's limit of 4096 MB"):
        placement.parse(None, "0=8GiB", TWO_H200, worker_memory_mb=4096)


def test_what_a_placement_means():
    split = placement.parse(None, "0=8GiB,1=40GiB", TWO_H200)
    assert split.gpus == (0, 1) and split.mapped and split.asked and split.device("cuda") == "cuda:0"
    chosen = placement.parse("1", None, TWO_H200)
    assert not chosen.mapped and chosen.asked and chosen.device("cuda") == "cuda:1"
    assert not placement.parse("0", None, TWO_H200).asked  # GPU 0 alone is the default device
    on_cpu = placement.parse(None, "cpu=2GiB", NO_GPU)
    assert on_cpu.mapped and on_cpu.device("cpu") == "cpu"
    assert split.accelerate_max_memory() == {0: 8 * GiB, 1: 40 * GiB}
    # a GPU named without a budget gets its free memory, as accelerate itself would give it
    both = placement.parse("0,1", "0=8GiB", TWO_H200)
    assert both.accelerate_max_memory({1: 100 * GiB}) == {0: 8 * GiB, 1: 100 * GiB}
    assert both.text() == "gpus 0,1; max_memory 0=8GiB"


@no_cuda
def test_requests_refuse_gpus_that_do_not_exist_and_keep_the_normal_form():
    base = dict(model="synthetic:tiny-llama", configs=["eager"], prompt_tokens=8, max_new_tokens=4)
    for kw, message in [(dict(gpus="0,1"), "gpus: GPU 0 does not exist here: this machine has no CUDA GPU"),
                        (dict(max_memory="0=20GiB,1=20GiB"), "GPU 0 does not exist here"),
                        (dict(max_memory="cpu=20"), "is not a size"),
                        (dict(max_memory=["cpu=1GiB"]), "max_memory must be text")]:
        with pytest.raises(RequestError) as err:
            validate(RunRequest(**base, **kw))
        assert message in str(err.value) and "\n" not in str(err.value)
    prepared = validate(RunRequest(**base, max_memory="cpu=1GiB"))
    assert prepared.request.max_memory == {"cpu": GiB} and prepared.request.gpus is None
    assert prepared.placement == Placement((), {"cpu": GiB})
    assert validate(RunRequest.from_dict(prepared.request.to_dict())).placement == prepared.placement
    assert not validate(RunRequest(**base, gpus="", max_memory="")).placement.asked
    with pytest.raises(RequestError, match="above this server's limit"):
        validate(RunRequest(**base, max_memory="cpu=2GiB"), limits=ServerLimits(worker_memory_mb=1024))


# ---------------------------------------------------------------- configurations that cannot be split


def _gpu_platform():
    return replace(platform(), has_cuda=True, gpu_name="Test GPU", capability=(9, 0), bf16_supported=True,
                   ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
                   packages={**platform().packages, "optimum-onnx": "0.1.0", "bitsandbytes": "0.50.0"})


def test_unsplittable_configurations_say_why():
    gpu = _gpu_platform()
    split = placement.parse(None, "0=8GiB,1=40GiB", TWO_H200)
    reasons = {name: registry.availability(registry.get(name), "bf16", gpu, placement=split).reason
               for name in ("static-cache", "compiled-decode", "ort-cuda", "ort-cpu")}
    assert "static cache's compiled forward" in reasons["static-cache"]
    assert "one CUDA graph" in reasons["compiled-decode"]
    assert "ONNX Runtime runs the whole model on one execution provider" in reasons["ort-cuda"]
    assert all(r.startswith("cannot be split over devices") for r in reasons.values()), reasons
    for name in ("eager", "sdpa", "bnb-4bit", "bnb-8bit", "bnb-nf4"):
        assert registry.availability(registry.get(name), "bf16", gpu, placement=split).ok, name
    # one GPU other than 0: every PyTorch configuration runs there; ONNX Runtime on CUDA would not
    second = placement.parse("1", None, TWO_H200)
    assert registry.availability(registry.get("static-cache"), "bf16", gpu, placement=second).ok
    assert "GPU 0 only" in registry.availability(registry.get("ort-cuda"), "fp16", gpu, placement=second).reason
    # no placement asked: nothing changes
    assert registry.availability(registry.get("static-cache"), "bf16", gpu, placement=Placement()).ok


# ---------------------------------------------------------------- the split a 2-GPU run would use


def _layer_bytes(cfg, dtype_bytes: int) -> int:
    h, i = cfg.hidden_size, cfg.intermediate_size
    kv = h * cfg.num_key_value_heads // cfg.num_attention_heads
    return dtype_bytes * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h)


def test_llama_2_7b_split_over_two_gpus_is_planned_without_weights():
    cfg = load_config(parse_model("synthetic:llama-2-7b"))
    budget = {0: 8 * GiB, 1: 40 * GiB}
    device_map = placement.plan(cfg, torch.bfloat16, budget)
    layers = placement.plan_summary(device_map, cfg.num_hidden_layers)
    assert set(layers) == {"cuda:0", "cuda:1"} and sum(layers.values()) == cfg.num_hidden_layers
    assert device_map["model.embed_tokens"] == 0 and device_map["lm_head"] == 1
    # what GPU 0 holds fits its 8 GiB: its layers plus the embedding
    embed = 2 * cfg.vocab_size * cfg.hidden_size
    assert layers["cuda:0"] * _layer_bytes(cfg, 2) + embed <= budget[0]
    # the whole model does not fit GPU 0's budget: the budget forces the split
    assert cfg.num_hidden_layers * _layer_bytes(cfg, 2) + 2 * embed > budget[0]
    # budgets too small for the model leave layers for the disk, which runs refuse
    assert "disk" in placement.plan_summary(placement.plan(cfg, torch.bfloat16, {0: 2 * GiB, 1: 2 * GiB}), 32)


def test_cli_plan_prints_the_split(capsys, tmp_path):
    out = tmp_path / "plan.json"
    assert main(["plan", "--model", "synthetic:llama-2-7b", "--max-memory", "0=8GiB,1=40GiB", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cuda:0" in text and "cuda:1" in text and out.is_file()
    assert main(["plan", "--max-memory", "0=8"]) == 2
    assert "is not a size" in capsys.readouterr().err


# ---------------------------------------------------------------- a real split run, on the cpu


def test_cpu_split_records_placement_and_per_device_peak(store):
    req = RunRequest(model="synthetic:tiny-llama", configs=["eager", "static-cache", "compiled-decode", "ort-cpu"],
                     prompt_tokens=16, max_new_tokens=6, repeats=1, isolation="inline", max_memory="cpu=1GiB")
    results = {r.config: r for r in runner.execute(validate(req), store=store)}
    eager = results["eager"]
    assert eager.status == "ok", eager.reason
    cfg = load_config(parse_model("synthetic:tiny-llama"))
    assert eager.placement["cpu"]["layers"] == cfg.num_hidden_layers
    assert 0 < eager.placement["cpu"]["weights_mb"] <= eager.weights_mb * 1.01
    assert eager.device_peak_memory_mb["cpu"] == pytest.approx(eager.peak_memory_mb) and eager.peak_memory_mb > 0
    assert eager.settings["max_memory"] == {"cpu": GiB}
    for name in ("static-cache", "compiled-decode", "ort-cpu"):
        assert results[name].status == "unavailable"
        assert results[name].reason.startswith("cannot be split over devices"), results[name].reason
    stored = {r.config: r for r in store.results()}
    assert stored["eager"].placement == eager.placement
    assert stored["eager"].device_peak_memory_mb == eager.device_peak_memory_mb
    assert {"placement", "device_peak_memory_mb"} <= set(JSON_FIELDS)
    # the same weights on the default path: the split changes where, not what, is computed
    plain = runner.execute(validate(RunRequest(model="synthetic:tiny-llama", configs=["eager"], prompt_tokens=16,
                                               max_new_tokens=6, repeats=1, isolation="inline")))[0]
    assert plain.token_ids == eager.token_ids
    assert plain.placement == {"cpu": eager.placement["cpu"]}



def test_budget_too_small_for_the_model_fails_with_its_reason(tmp_path):
    path = _small_local_model(tmp_path / "small-llama")
    req = RunRequest(model=str(path), prompt="w1 w2 w3", configs=["eager"], max_new_tokens=2, repeats=1,
                     isolation="inline", max_memory="cpu=6MiB")
    [result] = runner.execute(validate(req))
    assert result.status == "failed"
    assert "do not hold the whole model" in result.reason and "cpu=6MiB" in result.reason, result.reason
    assert "\n" not in result.reason


@no_cuda
def test_cli_settings_exit_2_or_print_the_placement(capsys):
    assert main(["run", "--model", "synthetic:tiny-llama", "--gpus", "0,1", "--no-store"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "error: gpus: GPU 0 does not exist here: this machine has no CUDA GPU"
    assert main(["run", "--model", "synthetic:tiny-llama", "--max-memory", "cpu=1GiB", "--configs", "sdpa,static-cache",
                 "--prompt-tokens", "8", "--max-new-tokens", "3", "--repeats", "1", "--inline", "--no-store",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "placement (max_memory cpu=1GiB):" in out
    assert "sdpa: cpu 2 layers" in out and "peak" in out
    assert "cannot be split over devices" in out


def test_cards_show_a_split_models_placement_and_peaks():
    from arena.ui.web.panels import RunState, render

    def card(**settings) -> tuple[str, dict]:
        req = RunRequest(model="synthetic:tiny-llama", configs=["eager"], prompt_tokens=8, max_new_tokens=3,
                         repeats=1, isolation="inline", **settings)
        state = RunState(["eager"])
        [result] = runner.execute(validate(req), on_event=state.apply)
        assert result.status == "ok", result.reason
        return render(state), result.to_dict()

    page, result = card(max_memory="cpu=1GiB")
    line = placement.describe(result["placement"], result["device_peak_memory_mb"])
    assert line.startswith("cpu 2 layers ") and " peak " in line
    assert f'<div class="arena-placement">{line}</div>' in page
    plain, _ = card()
    assert "arena-placement" not in plain
