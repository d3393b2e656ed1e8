"""FlashAttention-2 / -3 availability: each one-line reason, from the registry's real code on
Platforms built for the case (this machine has no GPU and no flash-attn)."""

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from arena.core.env import built_cuda_major, platform
from arena.techniques import registry

FA2 = registry.get("flash-attention-2")
FA3 = registry.get("flash-attention-3")
MISSING_CUDART = "ImportError: libcudart.so.12: cannot open shared object file: No such file or directory"


def gpu(capability=(9, 0), fa2="2.8.3", fa3=None, errors=None, torch_cuda="13.0"):
    return replace(platform(), has_cuda=True, gpu_name="Test GPU", capability=capability, bf16_supported=True,
                   packages={**platform().packages, "flash-attn": fa2, "flash-attn-3": fa3},
                   torch_cuda=torch_cuda, import_errors=dict(errors or {}))


@pytest.mark.parametrize("name", ["flash-attention-2", "bnb-4bit+flash-attention-2", "bnb-8bit+flash-attention-2"])
def test_fa2_reasons(name):
    cfg = registry.get(name)
    assert registry.availability(cfg, "bf16", gpu()).ok
    assert registry.availability(cfg, "bf16", gpu(fa2=None)).reason == "flash-attn is not installed"
    assert registry.availability(cfg, "fp16", gpu(capability=(7, 5))).reason == \
        "FlashAttention-2 needs an Ampere or newer GPU (compute 8.0+)"
    assert registry.availability(cfg, "fp32", gpu()).reason == "needs fp16/bf16 (run dtype is fp32)"
    mismatch = registry.availability(cfg, "bf16", gpu(errors={"flash-attn": MISSING_CUDART}))
    assert not mismatch.ok
    assert mismatch.reason.startswith("CUDA mismatch: flash-attn was built for CUDA 12, torch uses CUDA 13.0")
    assert "\n" not in mismatch.reason


def test_cuda_mismatch_from_the_wheels_label_and_other_import_failures():
    undefined = "ImportError: flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEab"
    labelled = gpu(fa2="2.8.3+cu12torch2.7cxx11abiTRUE", errors={"flash-attn": undefined})
    assert registry.availability(FA2, "bf16", labelled).reason.startswith(
        "CUDA mismatch: flash-attn was built for CUDA 12, torch uses CUDA 13.0")
    # built for torch's own CUDA major: not a mismatch, the import error is the reason
    same = registry.availability(FA2, "bf16", gpu(fa2="2.8.3+cu130", errors={"flash-attn": undefined}))
    assert same.reason == f"flash-attn is installed but its import check fails: {undefined}"
    einops = "ModuleNotFoundError: No module named 'einops'"
    assert registry.availability(FA2, "bf16", gpu(errors={"flash-attn": einops})).reason.endswith(einops)
    # flash-attn's problem is not FlashAttention-3's
    assert registry.availability(FA3, "bf16", gpu(fa3="3.0.0b1", errors={"flash-attn": einops})).ok


@pytest.mark.parametrize("error, version, major", [
    (MISSING_CUDART, "2.8.3", "12"),
    ("OSError: libcublasLt.so.13: cannot open shared object file", None, "13"),
    ("ImportError: undefined symbol", "2.8.3+cu128torch2.8", "12"),
    (None, "2.8.3+cu130", "13"),
    (None, "2.8.3+cu12torch2.7cxx11abiFALSE", "12"),
    ("ImportError: undefined symbol", "2.8.3", None),
])
def test_built_cuda_major(error, version, major):
    assert built_cuda_major(error, version) == major


def test_fa3_needs_hopper_its_package_and_half_precision():
    assert FA3.attn == "flash_attention_3" and FA3.family == "attention"
    assert registry.availability(FA3, "bf16", gpu(fa3="3.0.0b1")).ok
    assert registry.availability(FA3, "bf16", gpu(fa3=None)).reason == "flash-attn-3 is not installed"
    for capability in [(8, 0), (8, 9), (10, 0)]:
        assert registry.availability(FA3, "bf16", gpu(capability=capability, fa3="3.0.0b1")).reason == \
            "FlashAttention-3 needs a Hopper GPU (compute 9.0, e.g. H100)"
    assert registry.availability(FA3, "fp32", gpu(fa3="3.0.0b1")).reason == "needs fp16/bf16 (run dtype is fp32)"
    broken = gpu(fa3="3.0.0b1", errors={"flash-attn-3": "ImportError: libcudart.so.12: cannot open shared"})
    assert registry.availability(FA3, "bf16", broken).reason.startswith("CUDA mismatch: flash-attn-3 was built for CUDA 12")


@pytest.mark.skipif(platform().has_cuda, reason="checks the reasons given on a machine without a GPU")
def test_on_this_cpu_machine_both_need_a_gpu():
    table = {row["config"]: row for row in registry.availability_table("auto")}
    assert table["flash-attention-3"]["reason"] == table["flash-attention-2"]["reason"] == "needs a CUDA GPU"


def _installed(root, bert_padding: str):
    """A flash_attn distribution on disk (metadata + the modules transformers imports)."""
    pkg = root / "flash_attn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("def flash_attn_func(*a): pass\ndef flash_attn_varlen_func(*a): pass\n")
    (pkg / "bert_padding.py").write_text(bert_padding)
    info = root / "flash_attn-2.8.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flash_attn\nVersion: 2.8.3\n")
    return root


def test_platform_runs_flash_attns_own_import_check(tmp_path):
    """platform() imports what transformers imports (upstream's bert_padding needs einops, absent
    here) and then asks transformers' is_flash_attn_2_available(); a fresh process each."""
    broken = _installed(tmp_path / "a", "from einops import rearrange\ndef pad_input(): pass\ndef unpad_input(): pass\n")
    whole = _installed(tmp_path / "b", "def pad_input(): pass\ndef unpad_input(): pass\n")
    script = textwrap.dedent("""
        import json, sys
        from arena.core.env import platform
        from arena.techniques import registry  # its rows declare the packages platform() looks at
        p = platform()
        print(json.dumps([p.packages["flash-attn"], p.import_errors]))
    """)
    found = []
    for root in (broken, whole):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={"PYTHONPATH": f"{root}:.", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
        assert out.returncode == 0, out.stderr[-2000:]
        found.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert found[0] == ["2.8.3", {"flash-attn": "ModuleNotFoundError: No module named 'einops'"}]
    # imports fine; transformers' own check says no on a machine without CUDA
    assert found[1] == ["2.8.3", {"flash-attn": "transformers' is_flash_attn_2_available() is False"}]
    assert "flash-attn-3" not in found[0][1]
