import copy
import hashlib
import json
import math
import re
import shutil
from types import SimpleNamespace

import onnx
import pytest
import torch
import torch.nn.functional as F

from enhance_edge.eval.dataset import load_pairs
from enhance_edge.errors import CheckpointError
from enhance_edge.train import checkpoint
from enhance_edge.eval.degradation import DegradationConfig
from enhance_edge.train.config import DiscriminatorConfig, EstimatorConfig, GeneratorConfig, RunConfig, TrainConfig
from enhance_edge.train.loop import ROUNDING_MSE, Batch, EpochTally, content_loss, evaluate, train, train_step
from enhance_edge.train.networks import DegradationEstimator, Discriminator, Generator
from enhance_edge.train.warm_start import load_warm_start

CHECKPOINT_KEYS = {"format", "config", "epoch", "data", "generator", "optimizer_g", "discriminator",
                   "optimizer_d", "validation"}
RECORD_KEYS = {"epoch", "adversarial", "lr", "train", "validation", "baselines", "seconds"}


def tiny_train(**train) -> TrainConfig:
    return TrainConfig(hr_size=(20, 24), threads=1, **{"epochs": 1, "batch_size": 3, **train})


def tiny(**train) -> RunConfig:
    return RunConfig(GeneratorConfig(channels=4, residual_blocks=1, skip="bicubic"),
                     DiscriminatorConfig(base_channels=4), tiny_train(**train))


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
    assert set(record["train"]) == {"g_loss", "content", "adversarial", "d_loss"}
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


def test_train_and_validation_log_the_same_loss_terms_and_the_discriminator_only_while_it_trains(
        face_folder, tmp_path, tiny_onnx):
    lines = []
    train(face_folder, tmp_path, tiny(epochs=2, warmup_epochs=1, teacher=str(tiny_onnx), distill_weight=0.5),
          report=lines.append)
    warmup, adversarial = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert set(warmup["train"]) == {"g_loss", "content", "distill"}
    assert set(adversarial["train"]) == {"g_loss", "content", "distill", "adversarial", "d_loss"}
    for record in (warmup, adversarial):
        assert set(record["validation"]) - {"psnr", "ssim", "discriminator"} == set(record["train"])
        assert ("discriminator" in record["validation"]) == record["adversarial"]
        for logged in (record["train"], record["validation"]):  # g_loss: the same sum on both sides
            assert logged["g_loss"] == pytest.approx(logged["content"] + 0.5 * logged["distill"]
                                                     + 1e-3 * logged.get("adversarial", 0.0))
    assert "D acc" not in lines[-2] and "D acc" in lines[-1]


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(face_folder, tmp_path):
    train(face_folder, tmp_path, tiny(adversarial_weight=0), report=lambda line: None)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    other = tiny(adversarial_weight=0, lr=1e-3)
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path} already holds a run (last.pt, best.pt, "
                                                        f"metrics.jsonl): resume it (--resume), replace it")):
        train(face_folder, tmp_path, other, report=lambda line: None)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    for name in ("last.pt", "best.pt"):
        (tmp_path / name).unlink()
    with pytest.raises(CheckpointError, match=re.escape("already holds a run (metrics.jsonl)")):
        train(face_folder, tmp_path, other, report=lambda line: None)
    with pytest.raises(ValueError, match="not both"):
        train(face_folder, tmp_path, other, report=lambda line: None, resume=True, overwrite=True)
    train(face_folder, tmp_path, other, report=lambda line: None, overwrite=True)
    assert checkpoint.load(tmp_path / "last.pt")["config"]["train"]["lr"] == 1e-3
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_the_teacher_file_is_recorded_and_resume_refuses_one_whose_content_changed(face_folder, tmp_path, tiny_onnx):
    teacher = tmp_path / "teacher.onnx"
    shutil.copy(tiny_onnx, teacher)
    config = tiny(adversarial_weight=0, teacher=str(teacher))
    train(face_folder, tmp_path / "run", config, report=lambda line: None)
    recorded = checkpoint.load(tmp_path / "run" / "last.pt")["teacher"]
    assert recorded == {"name": str(teacher), "path": str(teacher.resolve()),
                        "sha256": hashlib.sha256(teacher.read_bytes()).hexdigest()}
    model = onnx.load(str(teacher))
    model.doc_string = "retrained since"  # same name, other content
    onnx.save(model, str(teacher))
    now = hashlib.sha256(teacher.read_bytes()).hexdigest()
    with pytest.raises(CheckpointError, match=f"with sha256 {recorded['sha256']}; .* now has sha256 {now}"):
        train(face_folder, tmp_path / "run", config, report=lambda line: None, resume=True)


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


@pytest.mark.parametrize("width", [2, 3])
def test_init_from_hands_on_an_estimator_of_the_same_width_and_starts_another_afresh(
        face_folder, tmp_path, tiny_conditioned, tiny_conditioned_onnx, width):
    generator, source_estimator = tiny_conditioned  # an estimator 2 channels wide
    config = RunConfig(generator.config, DiscriminatorConfig(base_channels=4),
                       tiny(adversarial_weight=0, init_from=str(tiny_conditioned_onnx), lr=1e-30).train,
                       degradation=DegradationConfig(), estimator=EstimatorConfig(channels=width, first_stride=2))
    torch.manual_seed(config.train.seed)  # the run draws its generator, then its estimator
    Generator(config.generator)
    fresh = DegradationEstimator(config.estimator).state_dict()
    train(face_folder, tmp_path, config, report=lambda line: None)
    trained = checkpoint.load(tmp_path / "last.pt")["estimator"]
    assert trained["layers.0.weight"].shape[0] == width
    start = source_estimator.state_dict() if width == 2 else fresh
    # two steps at the estimator's own rate move each weight by about 2 x 3e-3 at most
    assert all((trained[key] - start[key]).abs().max() < 0.01 for key in start)


def test_estimator_only_trains_the_estimator_at_the_runs_rate_and_leaves_the_generator_as_it_was(
        face_folder, tmp_path, tiny_conditioned, tiny_conditioned_onnx):
    generator, _ = tiny_conditioned
    run = tiny_train(adversarial_weight=0, init_from=str(tiny_conditioned_onnx), lr=1e-2, estimator_only=True,
                     lr_schedule="cosine", epochs=2)
    config = RunConfig(generator.config, DiscriminatorConfig(base_channels=4), run,
                       degradation=DegradationConfig(clean_share=0.0),
                       estimator=EstimatorConfig(channels=2, first_stride=2))
    lines = []
    train(face_folder, tmp_path, config, report=lines.append)
    state = checkpoint.load(tmp_path / "last.pt")
    start_generator, start_estimator = load_warm_start(tiny_conditioned_onnx, generator.config)
    for name, weights in start_generator.state_dict().items():
        assert torch.equal(state["generator"][name], weights), name
    moved = max((state["estimator"][key] - start_estimator[key]).abs().max().item() for key in start_estimator)
    assert 0.01 < moved < 0.1  # 4 steps at 1e-2 (Adam: about the rate per step), not the estimator's own 3e-3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert set(records[0]["train"]) == {"estimator"} and records[0]["train"]["estimator"] > 0
    assert records[1]["lr"] < records[0]["lr"] == pytest.approx(1e-2 * (1 + math.cos(math.pi / 2)) / 2)  # cosine
    assert lines[-1].startswith("epoch 2/2  train estimator ")


def test_keep_readings_teaches_what_the_start_estimator_reads_from_the_lr_on_the_jpeg_grid(tiny_conditioned):
    _, start = tiny_conditioned
    student, teacher = copy.deepcopy(start).train(), copy.deepcopy(start).eval()
    lr, aligned = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        expected = F.mse_loss(student(lr), teacher(aligned)).item()
    nets = SimpleNamespace(device=torch.device("cpu"), estimator=student, parallel_e=student, reading_teacher=teacher,
                           opt_e=torch.optim.SGD(student.parameters(), lr=0.1), schedule=None,
                           cfg=tiny_train(estimator_only=True, keep_readings=True))
    batch = Batch(lr, torch.rand(4, 1, 32, 32), torch.zeros(4, 1, 1, 1), None, aligned)
    loss = train_step(nets, batch, False, EpochTally.start(None))
    assert loss.item() == pytest.approx(expected) and expected > 1e-6
    assert any((a != b).any() for a, b in zip(student.parameters(), start.parameters()))  # the student moved


@pytest.mark.parametrize("degradation", [None, DegradationConfig(jpeg_grid_shift=False)])
def test_keep_readings_needs_an_estimator_only_run_with_shifted_jpeg_grids(degradation):
    generator = GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=1,
                                condition="degradation" if degradation else "none")
    with pytest.raises(ValueError, match=r"keep_readings teaches an estimator to read blocks off the JPEG grid: it "
                                         r"needs estimator_only and degradations with jpeg_grid_shift"):
        RunConfig(generator, DiscriminatorConfig(base_channels=4),
                  tiny_train(init_from="default", adversarial_weight=0, estimator_only=degradation is not None,
                             keep_readings=True), degradation=degradation)


@pytest.mark.parametrize("change", [{"init_from": None}, {"teacher": "default"}, {"adversarial_weight": 1e-3}])
def test_estimator_only_is_refused_without_a_trained_conditioned_generator_or_with_a_teacher(change):
    train_config = tiny_train(**{"init_from": "default", "adversarial_weight": 0, "estimator_only": True, **change})
    with pytest.raises(ValueError, match=r"estimator_only trains the level estimator of a trained conditioned "
                                         r"generator: it needs condition 'degradation' and init_from"):
        RunConfig(GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=1, condition="degradation"),
                  DiscriminatorConfig(base_channels=4), train_config, degradation=DegradationConfig())


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


def test_a_7_bit_quantization_aware_rep_run_loads_with_its_kernels_on_the_7_bit_grid(face_folder, tmp_path):
    rep = GeneratorConfig(channels=4, residual_blocks=0, body="rep", rep_convs=2, skip="bicubic")
    config = RunConfig(rep, DiscriminatorConfig(base_channels=4),
                       tiny_train(adversarial_weight=0, qat=True, qat_weight_bits=7))
    train(face_folder, tmp_path, config, report=lambda line: None)
    generator, state = checkpoint.load_generator(tmp_path / "best.pt")
    assert checkpoint.run_config(tmp_path / "best.pt", state).train.qat_weight_bits == 7
    for conv in (generator.head, *(layer[0] for layer in generator.body)):
        kernel = conv.folded()[0].detach().flatten(1)
        steps = kernel / (kernel.abs().amax(1, keepdim=True) / 64)
        torch.testing.assert_close(steps, torch.round(steps), atol=1e-4, rtol=0)
    # what training scored as the float network is what loads
    pairs = load_pairs(face_folder, (20, 24), 0)
    assert evaluate(generator, None, pairs["validation"], config)["psnr"] == state["validation"]["psnr"]


def test_the_psnr_content_loss_is_minus_the_mean_per_image_psnr_and_weighs_images_alike():
    hr = torch.zeros(2, 1, 4, 4)
    fake = torch.stack([torch.full((1, 4, 4), 0.01), torch.full((1, 4, 4), 0.1)]).requires_grad_()
    loss = content_loss("psnr", fake, hr)
    per_image_mse = torch.tensor([0.01**2, 0.1**2])
    assert loss.item() == pytest.approx(float((10 * torch.log10(per_image_mse + ROUNDING_MSE)).mean()), rel=1e-6)
    loss.backward()
    # Under MSE the image with 10x the error pulls 10x harder; here each pixel's pull is its error
    # over its image's MSE, so the image with the small error pulls harder per unit of error.
    small, large = fake.grad[0].abs().mean(), fake.grad[1].abs().mean()
    assert float(small) > float(large)
    assert content_loss("mse", fake, hr).item() == pytest.approx(float(per_image_mse.mean()), rel=1e-6)
