"""corral.launch.torchrun: the workers' environment and the torchrun command."""


def test_worker_env_and_torchrun_command():
    from corral.launch.torchrun import torchrun_command, worker_env

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
