import json

import pytest
import torch

from enhance_edge.dataset import load_pairs
from enhance_edge.train import checkpoint
from enhance_edge.train.config import DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from enhance_edge.train.loop import evaluate, train
from enhance_edge.train.networks import Discriminator

CHECKPOINT_KEYS = {"format", "config", "epoch", "data", "generator", "optimizer_g", "discriminator",
                   "optimizer_d", "validation"}
RECORD_KEYS = {"epoch", "adversarial", "lr", "train", "validation", "baselines", "seconds"}


def tiny(**train) -> RunConfig:
    return RunConfig(GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic"),
                     DiscriminatorConfig(base_channels=4),
                     TrainConfig(hr_size=(20, 24), threads=1, **{"epochs": 1, "batch_size": 3, **train}))


@pytest.fixture(autouse=True)
def keep_thread_count():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_steps_write_metrics_and_a_checkpoint_that_reloads_to_identical_outputs(face_folder, tmp_path):
    config = tiny(warmup_epochs=0)  # 6 training images in batches of 3: two steps
    lines = []
    best = train(face_folder, tmp_path, config, report=lines.append)
    assert best == tmp_path / "best.pt" and best.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    record, = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert set(record) == RECORD_KEYS and record["epoch"] == 1 and record["adversarial"]
    assert set(record["train"]) == {"g_loss", "content", "d_loss"}
    assert lines[0].startswith("data ") and lines[-1].startswith("epoch 1/1")

    state = checkpoint.load(tmp_path / "last.pt")
    assert CHECKPOINT_KEYS <= set(state) and (state["epoch"], state["step"]) == (1, 0)
    assert RunConfig.from_dict(state["config"]) == config
    assert len(state["optimizer_g"]["state"]) and state["optimizer_g"]["state"][0]["step"] == 2
    generator, _ = checkpoint.load_generator(tmp_path / "last.pt")
    discriminator = Discriminator(config.discriminator).to(memory_format=torch.channels_last)  # as trained
    discriminator.load_state_dict(state["discriminator"])
    pairs = load_pairs(face_folder, config.train.hr_size, config.train.seed)
    assert evaluate(generator, discriminator, pairs["validation"], config) == record["validation"]


def test_warmup_epochs_train_without_the_adversary(face_folder, tmp_path):
    train(face_folder, tmp_path, tiny(epochs=2, warmup_epochs=1), report=lambda line: None)
    first, second = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert not first["adversarial"] and "d_loss" not in first["train"]
    assert second["adversarial"] and "d_loss" in second["train"]


def test_same_seed_same_single_process_run_gives_identical_weights(face_folder, tmp_path):
    trained = {}
    for name, seed in (("a", 0), ("b", 0), ("other seed", 1)):
        config = tiny(epochs=2, batch_size=2, hflip=True, lr_schedule="cosine", seed=seed, checkpoint_every=2)
        train(face_folder, tmp_path / name, config, report=lambda line: None)
        state = checkpoint.load(tmp_path / name / "last.pt")
        trained[name] = {key: state[key] for key in ("generator", "discriminator", "optimizer_g", "optimizer_d",
                                                     "schedule")}
    torch.testing.assert_close(trained["a"], trained["b"], rtol=0, atol=0)
    assert not torch.equal(trained["a"]["generator"]["head.weight"], trained["other seed"]["generator"]["head.weight"])


def test_init_from_starts_the_generator_from_another_runs_weights(face_folder, tmp_path):
    train(face_folder, tmp_path / "mse", tiny(adversarial_weight=0), report=lambda line: None)
    start = checkpoint.load(tmp_path / "mse" / "best.pt")["generator"]
    # A learning rate too small to move any weight: the result is the starting point.
    train(face_folder, tmp_path / "gan", tiny(init_from=str(tmp_path / "mse" / "best.pt"), lr=1e-30),
          report=lambda line: None)
    state = checkpoint.load(tmp_path / "gan" / "last.pt")
    assert state["config"]["train"]["init_from"] == str(tmp_path / "mse" / "best.pt")
    for name, weights in start.items():
        assert torch.allclose(state["generator"][name], weights), name
