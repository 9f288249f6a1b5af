import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from enhance_edge.apps.cli import main
from enhance_edge.errors import EnhanceEdgeError
from enhance_edge.train import checkpoint, distributed
from enhance_edge.train.distributed import Processes

# 6 training images in global batches of 2; epoch 1 without the adversary, epoch 2 with it.
OPTIONS = ["--epochs", "2", "--batch-size", "2", "--channels", "4", "--blocks", "1", "--warmup-epochs", "1",
           "--hflip", "--threads", "1", "--checkpoint-every", "2"]


def test_without_torchrun_it_is_one_plain_process(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with distributed.processes_from_environment() as procs:
        assert (procs.rank, procs.world_size, procs.distributed, procs.is_main) == (0, 1, False, True)
        assert not torch.distributed.is_initialized()
        module = torch.nn.Linear(2, 2)
        assert distributed.data_parallel(module, procs) is module
        assert distributed.sum_over_processes([1.5, 2.0], procs) == [1.5, 2.0]


def test_a_partial_torchrun_environment_is_a_clear_error(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(EnhanceEdgeError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not: launch with"), \
            distributed.processes_from_environment():
        pass


def test_the_global_batch_is_split_evenly_or_refused():
    assert distributed.local_batch_size(64, Processes(world_size=4)) == 16
    with pytest.raises(EnhanceEdgeError, match="batch size 64 does not split evenly over 3 processes"):
        distributed.local_batch_size(64, Processes(world_size=3))


@pytest.mark.parametrize("size, world_size", [(12, 2), (12, 4), (10, 4)])
def test_shards_of_a_step_hold_the_images_one_process_would_take(size, world_size):
    batch, epoch = 4, 3
    single = distributed.epoch_order(size, Processes(), seed=5)
    single.set_epoch(epoch)
    alone = list(single)
    shards = []
    for rank in range(world_size):
        order = distributed.epoch_order(size, Processes(rank=rank, world_size=world_size), seed=5)
        order.set_epoch(epoch)
        shards.append(list(order))
    local = distributed.local_batch_size(batch, Processes(world_size=world_size))
    for step in range(len(alone) // batch):  # full steps (the last may be padded with repeats)
        together = sorted(i for shard in shards for i in shard[step * local:(step + 1) * local])
        assert together == sorted(alone[step * batch:(step + 1) * batch])


def test_two_gloo_workers_train_like_one_process(face_folder, tmp_path):
    alone, together = tmp_path / "alone", tmp_path / "together"
    threads = torch.get_num_threads()
    single = CliRunner().invoke(main, ["train", "--data", str(face_folder), "--out", str(alone), *OPTIONS])
    torch.set_num_threads(threads)
    assert single.exit_code == 0, single.output
    cli = shutil.which("enhance-edge", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                             os.environ.get("PATH", "")]))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "--no-python", cli, "train", "--data", str(face_folder), "--out", str(together),
                             *OPTIONS], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    # Rank 0 alone logs and writes, the same files as one process.
    assert "2 processes on cpu" in result.stderr
    assert result.stderr.count("epoch 1/2") == 1 and result.stdout.count("best checkpoint") == 1
    assert sorted(p.name for p in together.iterdir()) == sorted(p.name for p in alone.iterdir()) == \
        ["best.pt", "last.pt", "metrics.jsonl"]
    records = {run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
               for run in (alone, together)}
    assert [r["epoch"] for r in records[together]] == [1, 2]
    for mine, theirs in zip(records[alone], records[together]):
        assert mine.keys() == theirs.keys() and mine["train"].keys() == theirs["train"].keys()
        assert mine["validation"].keys() == theirs["validation"].keys()
    # Without the adversary (epoch 1), the same global batches give the same generator up to
    # the order of float sums.
    first_alone, first_together = records[alone][0], records[together][0]
    assert first_together["train"]["g_loss"] == pytest.approx(first_alone["train"]["g_loss"], rel=1e-5)
    assert first_together["validation"]["psnr"] == pytest.approx(first_alone["validation"]["psnr"], abs=1e-4)
    states = {run: checkpoint.load(run / "last.pt") for run in (alone, together)}
    assert states[alone].keys() == states[together].keys() and states[together]["config"] == states[alone]["config"]
    for part in ("generator", "discriminator"):
        assert {k: v.shape for k, v in states[together][part].items()} == \
            {k: v.shape for k, v in states[alone][part].items()}
    assert states[together]["optimizer_g"]["state"][0]["step"] == 6  # 2 epochs x 3 global steps
