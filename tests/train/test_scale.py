"""Training at scale, what a CPU can check: the plan and the named GPU configurations, the MFU
table, the loss's chunking by device, the document structure built once per micro-batch with no
seq × seq mask on the flex, varlen and xformers paths, flex's forward against SDPA's on a build,
and the GPU check script's exit without CUDA."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from corral.cli import main
from corral.launch.plan import fitted
from corral.train import attention
from corral.train import loss as fused
from corral.train import model as model_mod
from corral.train.config import TrainConfig
from corral.train.data import MixtureLoader
from corral.train.metrics import peak_of
from corral.train.model import Transformer, model_args

ROOT = Path(__file__).resolve().parents[2]


def test_plan_prints_memory_and_days_for_the_paper_sizes_and_7b_fits_80gb(capsys):
    assert main(["train", "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out[2:6]}
    assert list(rows) == ["7B", "13B", "33B", "65B"]
    assert rows["7B"][2] == "yes" and float(rows["7B"][-1]) > 0
    assert "GiB" in out[2] and out[-1].startswith("paper (LLaMA §2.4): 65B at 380 tokens/s/GPU")
    # the paper's own set-up reproduces its figure: 2,048 A100s at the MFU it implies, ~21 days
    assert main(["train", "--plan", "--model", "65B", "--gpus", "2048", "--peak-tflops", "312", "--mfu", "0.49"]) == 0
    days = float(capsys.readouterr().out.splitlines()[2].split()[-1])
    assert 19 < days < 23


def test_paper_sizes_on_a_gpu_get_a_configuration_that_fits():
    c = fitted(TrainConfig(out="x", model="7B"), 8, 80 * 10**9).resolved(8)
    assert c.ac == "selective" and c.compile and c.micro_batch >= 1
    assert c.batch_tokens % (8 * c.micro_batch * c.seq_len) == 0
    cpu = TrainConfig(out="x", model="tiny").resolved(1)
    assert (cpu.micro_batch, cpu.ac, cpu.compile) == (8, "none", False)
    mine = fitted(TrainConfig(out="x", model="7B", micro_batch=1, ac="full"), 8, 80 * 10**9).resolved(8)
    assert (mine.micro_batch, mine.ac) == (1, "full")  # what a user sets wins


def test_mfu_peaks_match_the_longest_device_name():
    assert peak_of("NVIDIA H200 NVL") == 835e12 and peak_of("NVIDIA H200") == 989e12
    assert peak_of("NVIDIA GH200 480GB") == 989e12 and peak_of("NVIDIA H800") == 989e12
    assert peak_of("NVIDIA H20") == 148e12 and peak_of("NVIDIA B200") == 2250e12
    assert peak_of("NVIDIA A100-SXM4-80GB") == 312e12 and peak_of("NVIDIA H100 PCIe") == 756e12
    assert peak_of("Some Other GPU") is None


def test_loss_chunks_are_sized_by_device():
    assert fused._rows(32000) == (1 << 23) // 32000  # CPU: cache-sized
    assert fused._rows(32000, cuda=True) >= 4096  # GPU: GEMMs that fill the device


def _tiny(attn: str, ac: str = "none") -> Transformer:
    from corral.train import parallel as par

    torch.manual_seed(0)
    m = Transformer(model_args("tiny", vocab_size=300, attn=attn))
    par.apply_activation_checkpointing(m, ac)
    return m


def test_the_document_structure_is_built_once_per_micro_batch_not_per_layer(monkeypatch):
    calls = {"documents": 0, "doc_mask": 0}
    real_documents, real_mask = attention.documents, attention.doc_mask

    def documents(*a, **k):
        calls["documents"] += 1
        return real_documents(*a, **k)

    def doc_mask(*a, **k):
        calls["doc_mask"] += 1
        return real_mask(*a, **k)

    monkeypatch.setattr(model_mod, "documents", documents)
    monkeypatch.setattr(attention, "doc_mask", doc_mask)
    m = _tiny("sdpa", ac="full")  # full checkpointing: the backward recomputes every layer
    tokens = torch.randint(0, 300, (2, 64))
    ids = torch.tensor([[0] * 30 + [1] * 34, [0] * 64])
    m(tokens, ids, targets=tokens).backward()
    assert calls == {"documents": 1, "doc_mask": 1}


class _Shapes(TorchDispatchMode):
    """Records the shape of every tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


@pytest.mark.parametrize("impl", ["flex", "varlen", "xformers"])
def test_no_seq_by_seq_mask_is_made_on_the_flex_varlen_and_xformers_paths(impl, monkeypatch):
    seen = {}
    if impl == "xformers":  # the mask is xformers' own object, built from the host's lengths
        mask = types.SimpleNamespace(from_seqlens=lambda lengths: seen.setdefault("lengths", list(lengths)))
        fmha = types.SimpleNamespace(attn_bias=types.SimpleNamespace(BlockDiagonalCausalMask=mask))
        monkeypatch.setitem(sys.modules, "xformers", types.ModuleType("xformers"))
        monkeypatch.setitem(sys.modules, "xformers.ops", types.SimpleNamespace(fmha=fmha))
    seq = 512
    lengths = [np.full(8, seq // 8, dtype=np.int32)] * 2  # what the loader gives: each row's documents
    with _Shapes() as rec:
        docs = attention.documents(impl, lengths, "cpu")
    assert max((int(np.prod(s)) for s in rec.shapes), default=0) < seq * seq // 8, rec.shapes
    if impl == "flex":
        assert docs.block_mask.kv_num_blocks.shape == (2, 1, seq // 128)
        assert docs.dense is None
    elif impl == "varlen":
        assert docs.cu_seqlens.tolist() == list(range(0, 2 * seq + 1, seq // 8)) and docs.max_seqlen == 64
    else:
        assert seen["lengths"] == [64] * 16


def test_flex_forward_equals_sdpa_on_a_builds_validation_windows(tokenized):
    loader = MixtureLoader(str(tokenized), seq_len=256, micro_batch=1, seed=0, val_fraction=0.2)
    val = loader.validation(2)
    losses = {}
    for impl in ("sdpa", "flex"):
        m = _tiny(impl)
        total = 0.0
        with torch.no_grad():
            for b in val.values():
                x, y = torch.from_numpy(b.inputs), torch.from_numpy(b.targets)
                total += float(m(x, attention.documents(impl, b.doc_lengths, "cpu"), targets=y)) / y.numel()
        losses[impl] = total
    assert abs(losses["flex"] - losses["sdpa"]) <= 1e-4 * abs(losses["sdpa"]), losses


def test_train_with_flex_on_a_cpu_machine_is_one_line(tokenized, tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "train",
            str(tokenized),
            "--attn",
            "flex",
            "--run-dir",
            str(tmp_path / "run"),
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("corral train:")]
    assert len(lines) == 1 and "CUDA only" in lines[0] and "--attn sdpa" in lines[0], res.stderr
    assert not (tmp_path / "run").exists()


def test_the_gpu_check_script_says_there_is_no_cuda_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the script runs its checks instead")
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py")], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "no CUDA device" in res.stdout
