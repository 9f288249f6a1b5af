"""Runs killed with SIGKILL at chosen checkpoint writes, then resumed with --resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from enhance_edge.apps.cli import main
from enhance_edge.train import checkpoint

# 6 training images in global batches of 2: 3 steps per epoch, a step checkpoint every 2 steps
# (epoch 1 step 2, epoch 2 step 1, epoch 3 step 2), the adversary from epoch 2, a cosine schedule.
OPTIONS = ["--epochs", "3", "--batch-size", "2", "--channels", "4", "--blocks", "1", "--warmup-epochs", "1",
           "--lr-schedule", "cosine", "--hflip", "--threads", "1", "--checkpoint-every", "2"]
TRAINED = ("generator", "discriminator", "optimizer_g", "optimizer_d", "schedule")

# Runs `enhance-edge train` and SIGKILLs it at the write of checkpoint NAME holding progress
# (EPOCH, STEP): right "after" the write, or "during" it, halfway through the bytes.
KILLED_RUN = """
import os, signal, sys
import torch
from enhance_edge.apps.cli import main
from enhance_edge.train import checkpoint

name, epoch, step, moment = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
save = checkpoint.save

def write_half_then_die(obj, handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def save_then_die(path, state):
    target = path.name == name and (state["epoch"], state["step"]) == (epoch, step)
    if target and moment == "during":
        torch.save = write_half_then_die
    save(path, state)
    if target:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save = save_then_die
main(["train", *sys.argv[5:]])
"""


def kill_run(face_folder: Path, out: Path, name: str, epoch: int, step: int, moment: str) -> None:
    result = subprocess.run([sys.executable, "-c", KILLED_RUN, name, str(epoch), str(step), moment,
                             "--data", str(face_folder), "--out", str(out), *OPTIONS],
                            capture_output=True, text=True, timeout=600, check=False,
                            cwd=out.parent)  # not the checkout: its enhance_edge/ would shadow the installed one
    assert result.returncode == -signal.SIGKILL, result.stderr


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def without_seconds(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in records]


@pytest.fixture(autouse=True)
def keep_thread_count():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(face_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    result = CliRunner().invoke(main, ["train", "--data", str(face_folder), "--out", str(out), *OPTIONS])
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("name, epoch, step, moment, resumed_at", [
    ("last.pt", 1, 0, "after", "epoch 1 complete\n"),
    # Epoch 2's metrics line is written, its checkpoint torn: resume from step 1 of epoch 2.
    ("last.pt", 2, 0, "during", "epoch 1 complete, 1 steps into epoch 2\n"),
])
def test_a_killed_run_resumes_to_the_uninterrupted_runs_weights_and_metrics(
        face_folder, tmp_path, uninterrupted, name, epoch, step, moment, resumed_at):
    kill_run(face_folder, tmp_path, name, epoch, step, moment)
    assert len(records(tmp_path)) == epoch
    result = CliRunner().invoke(main, ["train", "--data", str(face_folder), "--out", str(tmp_path), *OPTIONS,
                                       "--resume"])
    assert result.exit_code == 0, result.output
    assert f"resumed from {tmp_path / 'last.pt'}: {resumed_at}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    assert [r["epoch"] for r in records(tmp_path)] == [1, 2, 3]
    assert without_seconds(records(tmp_path)) == without_seconds(records(uninterrupted))
    resumed, whole = checkpoint.load(tmp_path / "last.pt"), checkpoint.load(uninterrupted / "last.pt")
    torch.testing.assert_close({k: resumed[k] for k in TRAINED}, {k: whole[k] for k in TRAINED}, rtol=0, atol=0)


def test_resume_without_a_checkpoint_starts_afresh_and_a_finished_run_stays_finished(face_folder, tmp_path):
    args = ["train", "--data", str(face_folder), "--out", str(tmp_path), "--epochs", "1", "--max-images", "3",
            "--channels", "4", "--blocks", "1", "--adversarial-weight", "0", "--threads", "1", "--resume"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "resumed" not in first.output and [r["epoch"] for r in records(tmp_path)] == [1]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "epoch 1/1" not in again.output
    assert [r["epoch"] for r in records(tmp_path)] == [1]
    other = CliRunner().invoke(main, [*args, "--lr", "1e-3"])
    assert other.exit_code == 1
    assert "train.lr: 0.0002 -> 0.001" in other.output and "Traceback" not in other.output


def test_a_single_process_run_resumes_under_two_gloo_workers(face_folder, tmp_path):
    kill_run(face_folder, tmp_path, "last.pt", 1, 1, "after")  # step 1 of epoch 2
    cli = shutil.which("enhance-edge", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                             os.environ.get("PATH", "")]))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "--no-python", cli, "train", "--data", str(face_folder), "--out", str(tmp_path),
                             *OPTIONS, "--resume"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("resumed from") == 1 and result.stdout.count("best checkpoint") == 1
    assert [r["epoch"] for r in records(tmp_path)] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    state = checkpoint.load(tmp_path / "last.pt")
    assert (state["epoch"], state["step"]) == (3, 0) and state["optimizer_g"]["state"][0]["step"] == 9
