"""Training: the model against the equations and transformers, attention backends, FSDP2 on two
gloo ranks, the mixture loader, the optimiser, checkpoints and resume, `corral train`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import plain_llama
import pytest
import torch
from conftest import make_build

from corral.manifests.build import BuildManifest, Funnel, SourceBuild, relative_shard
from corral.manifests.mixture import parse_mixture
from corral.shards import write_token_shard
from corral.train import attention
from corral.train.checkpoint import export
from corral.train.config import ConfigError, TrainConfig, load_config
from corral.train.data import DataError, MixtureLoader
from corral.train.model import Transformer, ffn_hidden_dim, model_args
from corral.train.optim import lr_factor, param_groups

HERE = Path(__file__).resolve().parent


def torchrun(nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    path = str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def small_model(vocab=300, **kw) -> Transformer:
    torch.manual_seed(0)
    m = Transformer(model_args("tiny", vocab_size=vocab, **kw))
    for name, p in m.named_parameters():
        with torch.no_grad():
            p.copy_(m.init_value(name, p.shape, torch.Generator().manual_seed(hash(name) % 1000), "cpu"))
            if name.endswith("norm.weight"):
                p.add_(torch.randn(p.shape) * 0.1)  # gains other than 1, so the norms are tested too
    return m


# --- the model ----------------------------------------------------------------------------------


def test_configs_follow_table_2_and_the_swiglu_rule():
    assert ffn_hidden_dim(4096, 256) == 11008  # LLaMA 7B
    a = model_args("65B")
    assert (a.dim, a.n_heads, a.n_layers, a.vocab_size, a.norm_eps) == (8192, 64, 80, 32000, 1e-6)
    with torch.device("meta"):
        n = Transformer(model_args("7B")).num_params()
    assert 6.7e9 < n < 6.8e9  # Table 2: 6.7B


def test_parameter_names_are_metas():
    names = set(dict(small_model().named_parameters()))
    assert {
        "tok_embeddings.weight",
        "layers.0.attention.wq.weight",
        "layers.1.feed_forward.w3.weight",
        "layers.0.attention_norm.weight",
        "layers.0.ffn_norm.weight",
        "norm.weight",
        "output.weight",
    } <= names
    assert "freqs_cis" not in small_model().state_dict()  # a non-persistent buffer
    assert not [n for n in names if "bias" in n]


def test_logits_equal_the_plain_equations():
    m = small_model()
    tokens = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(1))
    got = m(tokens).double()
    sd = m.state_dict()
    for b in range(2):
        want = plain_llama.logits(sd, 2, 4, 1e-6, tokens[b])
        assert torch.allclose(got[b], want, atol=2e-5), (got[b] - want).abs().max()


@pytest.mark.parametrize("impl", ["sdpa", "flex", "reference"])
def test_attention_backends_agree_with_and_without_document_masks(impl):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 64 + 64, 4, 16, generator=g) for _ in range(3))  # seq % 128 == 0 and 64 tails
    for seq in (128, 64 + 1):
        qs, ks, vs = q[:, :seq], k[:, :seq], v[:, :seq]
        ref = attention.reference(qs, ks, vs)
        assert torch.allclose(attention.attend(impl, qs, ks, vs), ref, atol=1e-5)
        doc = torch.tensor([[0] * 20 + [1] * (seq - 20), [0] * seq])
        masked = attention.attend(impl, qs, ks, vs, attention.documents(impl, doc, "cpu"))
        assert torch.isfinite(masked).all()
        # the first token of document 1 attends only to itself
        assert torch.allclose(masked[0, 20], vs[0, 20], atol=1e-5)
        assert torch.allclose(masked[1], ref[1], atol=1e-5)


def test_gpu_kernels_refuse_cpu_clearly():
    q = torch.randn(1, 8, 2, 8)
    for impl in ("xformers", "varlen"):
        with pytest.raises(RuntimeError, match="CUDA only"):
            attention.attend(impl, q, q, q)
    with pytest.raises(RuntimeError, match="trains on CUDA only"):
        attention.attend("flex", q.requires_grad_(), q, q)
    with pytest.raises(ValueError, match="sdpa"):
        attention.attend("flash9", q, q, q)


def test_hf_export_loads_in_transformers_with_the_same_logits(tmp_path):
    from transformers import LlamaForCausalLM

    m = small_model()
    export(m.state_dict(), m.params, str(tmp_path))
    hf = LlamaForCausalLM.from_pretrained(str(tmp_path / "hf"), torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, 300, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(hf(tokens).logits, m(tokens), atol=1e-4)
    from safetensors.torch import load_file

    again = Transformer(m.params)
    again.load_state_dict(load_file(str(tmp_path / "meta" / "consolidated.safetensors")))  # Meta names: no mapping
    assert torch.equal(again(tokens), m(tokens))


# --- FSDP2 ----------------------------------------------------------------------------------------


def test_fsdp_gradients_on_two_ranks_equal_one_process(tmp_path):
    torchrun(1, str(HERE / "dist" / "grads.py"), str(tmp_path))
    torchrun(2, str(HERE / "dist" / "grads.py"), str(tmp_path))
    one, two = torch.load(tmp_path / "grads-1.pt"), torch.load(tmp_path / "grads-2.pt")
    for ac in ("none", "full", "selective"):
        assert set(one[ac]) == set(two[ac]) and len(one[ac]) == 21
        diff = max((one[ac][k] - two[ac][k]).abs().max().item() for k in one[ac])
        assert diff < 1e-6, (ac, diff)
        assert max((one[ac][k] - one["none"][k]).abs().max().item() for k in one[ac]) < 1e-6
    # HSDP: a (2 replicas, 1 shard) mesh gives FSDP's gradients
    assert max((two["hsdp"][k] - one["none"][k]).abs().max().item() for k in one["none"]) < 1e-6


# --- data -----------------------------------------------------------------------------------------


def token_build(out: Path, weights: dict, docs: int = 60, eos: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    mixture = parse_mixture(
        "name: t\ntarget_tokens: 1M\nsources:\n"
        + "".join(f"  {s}:\n    weight: {w}\n    inputs: [x]\n" for s, w in weights.items())
    )
    sources = {}
    for si, s in enumerate(weights):
        toks = [
            np.concatenate(
                [[1], rng.integers(3 + si * 10, 13 + si * 10, rng.integers(5, 90)), [2] if eos else []]
            ).astype(np.uint16)
            for _ in range(docs)
        ]
        info = write_token_shard(str(out / "tokens" / s / "part-00000.arrow"), [f"{s}{i}" for i in range(docs)], toks)
        sources[s] = SourceBuild(
            weight=w if (w := weights[s]) else 0,
            documents=docs,
            funnel=Funnel(docs, docs),
            token_shards=[relative_shard(info, str(out))],
            tokens=sum(len(t) for t in toks),
        )
    settings = {**mixture.settings(), "tokenize": {"eos": eos, "bos": True}}
    BuildManifest(mixture=mixture.to_dict(), settings=settings, sources=sources).save(str(out))
    return out


def test_tokens_per_source_follow_the_weights_within_one_percent(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 0.6, "books": 0.25, "arxiv": 0.15})
    loader = MixtureLoader(str(out), seq_len=32, micro_batch=4, seed=3)
    seen = {"c4": 0, "books": 0, "arxiv": 0}
    for _ in range(500):
        for b in loader.next_step(2):
            for name in b.sources:
                seen[name] += 32
    total = sum(seen.values())
    for name, w in {"c4": 0.6, "books": 0.25, "arxiv": 0.15}.items():
        assert abs(seen[name] / total - w) < 0.01, (name, seen[name] / total)
    # the windows really come from their sources (token ranges differ per source)
    b = loader.next_step(1)[0]
    for row, name in zip(b.inputs, b.sources):
        body = row[(row != 1) & (row != 2)]
        base = {"c4": 3, "books": 13, "arxiv": 23}[name]
        assert ((body >= base) & (body < base + 10)).all()


def test_ranks_take_disjoint_windows_and_state_resumes(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 0.7, "books": 0.3})
    loaders = [MixtureLoader(str(out), 16, 2, rank=r, world=2, seed=1) for r in range(2)]
    single = MixtureLoader(str(out), 16, 4, seed=1)
    a, b = loaders[0].next_step(1)[0], loaders[1].next_step(1)[0]
    s = single.next_step(1)[0]
    both = np.concatenate([a.inputs, b.inputs])
    assert sorted(map(bytes, both)) == sorted(map(bytes, s.inputs))  # the same 4 windows, split
    assert not {bytes(x) for x in a.inputs} & {bytes(x) for x in b.inputs}
    state = loaders[0].state_dict()
    assert set(state) == {"window", "taken", "names", "seed", "seq_len"}
    nxt = loaders[0].next_step(3)
    fresh = MixtureLoader(str(out), 16, 2, rank=0, world=2, seed=1)
    fresh.load_state_dict(json.loads(json.dumps(state)))
    again = fresh.next_step(3)
    assert all(np.array_equal(x.inputs, y.inputs) for x, y in zip(nxt, again))
    with pytest.raises(DataError, match="seq_len"):
        MixtureLoader(str(out), 32, 2, seed=1).load_state_dict(state)


def test_eos_is_added_only_when_documents_lack_it(tmp_path):
    out = token_build(tmp_path / "b", {"c4": 1.0}, docs=5, eos=False)
    loader = MixtureLoader(str(out), 500, 1, seed=0, val_fraction=0)
    row = loader.next_step(1)[0].inputs[0]
    assert (row == 2).sum() >= 4  # one EOS after each document


def test_loader_refuses_a_build_without_token_shards(tmp_path):
    out = make_build(tmp_path / "a", tokenize=False)
    with pytest.raises(DataError, match="corral tokenize"):
        MixtureLoader(str(out), 16, 1)


# --- optimiser ------------------------------------------------------------------------------------


def test_schedule_warms_up_then_decays_to_ten_percent():
    assert lr_factor(0, 2000, 10000) == pytest.approx(1 / 2000)
    assert lr_factor(1999, 2000, 10000) == 1.0
    assert lr_factor(6000, 2000, 10000) == pytest.approx(0.55)
    assert lr_factor(10000, 2000, 10000) == pytest.approx(0.1)
    assert lr_factor(20000, 2000, 10000) == pytest.approx(0.1)


def test_weight_decay_on_matrices_only():
    m = small_model()
    decay, no_decay = param_groups(m)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="batch_tokens"):
        TrainConfig(model="tiny", seq_len=64, micro_batch=4, batch_tokens=1000).resolved(2)
    with pytest.raises(ConfigError, match="model"):
        TrainConfig(model="huge").resolved(1)
    bad = tmp_path / "c.yaml"
    bad.write_text("steps: 10\nlearning_rate: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*learning_rate"):
        load_config(str(bad), {})
    c = TrainConfig(model="7B").resolved(8)
    assert (c.seq_len, c.batch_tokens, c.lr, c.warmup) == (2048, 4 * 1024 * 1024, 3e-4, 100)
    assert c.accum(8) == 32


# --- the trainer ------------------------------------------------------------------------------


def _losses(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["tokens_seen"]) for r in rows]


@pytest.mark.parametrize("flags", [[], ["--doc-mask"]], ids=["packed", "doc-mask"])
def test_resume_continues_the_same_run_exactly(tmp_path, tokenized, flags):
    common = [
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "8",
        *flags,
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    res = subprocess.run(
        [sys.executable, *common, "--run-dir", str(straight), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    res = subprocess.run(
        [sys.executable, *common, "--stop-at", "4", "--run-dir", str(split), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert not (split / "export").exists()  # not finished: no export yet
    res = subprocess.run(
        [sys.executable, *common, "--run-dir", str(split), "--nproc", "2", "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "resumed from" in res.stderr
    a, b = _losses(straight), _losses(split)
    assert [r[0] for r in b] == list(range(1, 9))
    assert a == b  # identical losses and tokens per source, step by step


def test_resume_against_another_build_is_refused(tmp_path, tokenized):
    import shutil

    run = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "2",
        "--run-dir",
        str(run),
    ]
    assert subprocess.run([*base[:4], str(tokenized), *base[4:]], capture_output=True, timeout=300).returncode == 0
    other = tmp_path / "other"
    shutil.copytree(tokenized, other)
    m = json.loads((other / "manifest.json").read_text())
    m["mixture"]["description"] = "changed"
    (other / "manifest.json").write_text(json.dumps(m))
    res = subprocess.run(
        [*base[:4], str(other), *base[4:], "--resume", "--steps", "3"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode != 0 and "same build" in res.stderr


def test_non_finite_loss_skips_the_update(tmp_path, tokenized, monkeypatch):
    from corral.train.trainer import NonFiniteError, Trainer

    monkeypatch.setenv("MASTER_PORT", str(21000 + os.getpid() % 5000))
    t = Trainer(
        TrainConfig(out=str(tokenized), model="tiny", seq_len=32, micro_batch=2, steps=5, run_dir=str(tmp_path / "r"))
    )
    try:
        with torch.no_grad():
            t.model.output.weight.to_local().fill_(float("nan"))
        before = t.model.layers[0].attention.wq.weight.to_local().clone()
        row = t.train_step()
        assert row["skipped"] == 1 and not np.isfinite(row["loss"])
        assert torch.equal(before, t.model.layers[0].attention.wq.weight.to_local())
        t.cfg.nonfinite = "stop"
        with pytest.raises(NonFiniteError):
            t.train_step()
    finally:
        torch.distributed.destroy_process_group()


def test_corral_train_on_a_real_build_lowers_validation_loss(tmp_path, real_build):
    run = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "train",
            str(real_build),
            "--model",
            "tiny",
            "--run-dir",
            str(run),
            "--steps",
            "300",
            "--seq-len",
            "128",
            "--micro-batch",
            "8",
            "--lr",
            "3e-3",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and {
        "step",
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "mfu",
        "memory_mb",
        "tokens_seen",
    } <= set(rows[0])
    vals = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    first, last = vals[0][1], vals[-1][1]
    assert set(first) == {"c4", "wikipedia", "books", "arxiv", "stackexchange"}
    assert sum(last.values()) / 5 < sum(first.values()) / 5 - 0.5
    assert (run / "export" / "hf" / "model.safetensors").is_file()
    assert json.loads((run / "config.json").read_text())["steps"] == 300
    assert "step 300/300" in res.stdout


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, tokenized):
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ckpt_every: 3\nkeep: 2\nexport: false\n")
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--run-dir",
        str(run),
        "--config",
        str(cfg),
    ]
    assert subprocess.run([*base, "--steps", "6"], capture_output=True, timeout=300).returncode == 0
    newest = run / "checkpoints" / "step-00000006"
    for f in newest.glob("*.distcp"):
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])  # truncated
    res = subprocess.run(
        [*base, "--steps", "8", "--resume", "--reschedule"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "cannot be loaded" in res.stderr and "step-00000003 (step 3)" in res.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    rank_file = run / "checkpoints" / "step-00000008" / "rank-0.pt"
    torch.load(rank_file, weights_only=True)  # RNG and loader state load without unpickling objects


def test_a_run_killed_mid_training_resumes_to_the_same_losses(tmp_path, tokenized):
    import signal
    import time

    cfg = tmp_path / "c.yaml"
    cfg.write_text("ckpt_every: 3\nkeep: 3\nexport: false\n")
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "30",
        "--nproc",
        "2",
        "--config",
        str(cfg),
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    res = subprocess.run([*base, "--run-dir", str(straight)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    proc = subprocess.Popen(
        [*base, "--run-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-00000006" / "meta.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, at once
    proc.wait()
    rows = (killed / "metrics.jsonl").read_text().splitlines()
    assert 6 <= len(rows) < 30  # it really died part-way
    res = subprocess.run([*base, "--run-dir", str(killed), "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert _losses(killed) == _losses(straight)


def test_compiled_blocks_train_like_eager_ones(tmp_path, tokenized):
    base = [
        sys.executable,
        "-m",
        "corral.cli",
        "train",
        str(tokenized),
        "--model",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch",
        "2",
        "--steps",
        "3",
    ]
    for name, extra in (("eager", []), ("compiled", ["--compile", "--ac", "selective"])):
        res = subprocess.run(
            [*base, "--run-dir", str(tmp_path / name), *extra], capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    eager, compiled = _losses(tmp_path / "eager"), _losses(tmp_path / "compiled")
    assert [r[0] for r in compiled] == [1, 2, 3]
    for (_, a, seen_a), (_, b, seen_b) in zip(eager, compiled):
        assert abs(a - b) < 1e-4 and seen_a == seen_b


def test_worker_env_and_torchrun_command():
    from corral.train.launch import torchrun_command, worker_env

    assert worker_env({"PATH": "/bin"}) == {
        "PATH": "/bin",
        "THP_MEM_ALLOC_ENABLE": "1",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    assert worker_env({"THP_MEM_ALLOC_ENABLE": "0"})["THP_MEM_ALLOC_ENABLE"] == "0"  # the caller's wins
    one = torchrun_command("RUN/config.json", 2)
    assert one[-4:] == ["--standalone", "-m", "corral.train.trainer", "RUN/config.json"]
    many = torchrun_command("c.json", 8, nnodes=4, node_rank=3, master_addr="10.0.0.1", master_port=29600)
    assert {
        "--nproc-per-node=8",
        "--nnodes=4",
        "--node-rank=3",
        "--master-addr=10.0.0.1",
        "--master-port=29600",
    } <= set(many) and "--standalone" not in many
