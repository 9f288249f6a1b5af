import json

import pytest
import torch

from enhance_edge.dataset import load_pairs
from enhance_edge.errors import CheckpointError
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


def test_init_from_refuses_a_generator_of_another_design(face_folder, tmp_path):
    train(face_folder, tmp_path / "skip", tiny(adversarial_weight=0), report=lambda line: None)
    no_skip = RunConfig(GeneratorConfig(channels=4, residual_blocks=1, skip="none"),
                        DiscriminatorConfig(base_channels=4), tiny(init_from=str(tmp_path / "skip" / "best.pt")).train)
    # Same weight names and shapes: only the config tells the two designs apart.
    with pytest.raises(CheckpointError, match="skip: 'bicubic' -> 'none'"):
        train(face_folder, tmp_path / "no skip", no_skip, report=lambda line: None)
    assert not (tmp_path / "no skip" / "last.pt").exists()


def test_distillation_adds_the_teachers_outputs_as_a_second_target(face_folder, tmp_path, tiny_onnx):
    weights, records = {}, {}
    for name, teacher in (("alone", {}), ("weight 0", {"teacher": str(tiny_onnx), "distill_weight": 0.0}),
                          ("taught", {"teacher": str(tiny_onnx), "distill_weight": 1.0})):
        train(face_folder, tmp_path / name, tiny(adversarial_weight=0, hflip=True, **teacher), report=lambda line: None)
        weights[name] = checkpoint.load(tmp_path / name / "last.pt")["generator"]
        records[name] = json.loads((tmp_path / name / "metrics.jsonl").read_text())
    # The teacher enters the loss only through its weight; with it, training goes elsewhere.
    torch.testing.assert_close(weights["alone"], weights["weight 0"], rtol=0, atol=0)
    assert not torch.equal(weights["alone"]["head.weight"], weights["taught"]["head.weight"])
    assert "distill" not in records["alone"]["train"]
    taught = records["taught"]["train"]
    assert taught["distill"] > 0 and taught["g_loss"] == pytest.approx(taught["content"] + taught["distill"])


def test_quantization_aware_run_scores_both_networks_and_exports_the_float_one(face_folder, tmp_path):
    train(face_folder, tmp_path / "float", tiny(adversarial_weight=0), report=lambda line: None)
    lines = []
    train(face_folder, tmp_path / "qat", tiny(adversarial_weight=0, epochs=2, qat=True, lr=1e-4,
                                              init_from=str(tmp_path / "float" / "best.pt")), report=lines.append)
    records = [json.loads(line) for line in (tmp_path / "qat" / "metrics.jsonl").read_text().splitlines()]
    simulated = [r["validation_int8_simulated"]["psnr"] for r in records]
    assert all(s != r["validation"]["psnr"] for s, r in zip(simulated, records))
    assert "simulated int8" in lines[-1]
    best = checkpoint.load(tmp_path / "qat" / "best.pt")
    assert best["epoch"] == 1 + simulated.index(max(simulated))  # chosen on the simulated int8 score
    generator, _ = checkpoint.load_generator(tmp_path / "qat" / "best.pt")
    assert set(generator.state_dict()) == set(checkpoint.load_generator(tmp_path / "float" / "best.pt")[0].state_dict())
    pairs = load_pairs(face_folder, (20, 24), 0)
    assert evaluate(generator, None, pairs["validation"], tiny())["psnr"] == best["validation"]["psnr"]
