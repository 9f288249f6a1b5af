import pathlib
import re

import pytest
import torch

from enhance_edge.errors import CheckpointError
from enhance_edge.train import checkpoint
from enhance_edge.train.config import DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from enhance_edge.train.networks import Discriminator, Generator
from enhance_edge.train.warm_start import load_warm_start

DATA = {"folder": "faces", "hr_size": (20, 24), "images": {"train": 6, "validation": 3, "test": 3}}


def resumable_state(config: RunConfig) -> dict:
    return {"config": config.to_dict(), "epoch": 1, "step": 0, "data": DATA,
            "generator": Generator(config.generator).state_dict(),
            "optimizer_g": {}, "validation": {"psnr": 30.0, "ssim": 0.9}, "best_psnr": 30.0, "history": [],
            "partial": None, "rng": {"torch": torch.get_rng_state()}}


def test_save_writes_atomically_and_load_round_trips(tmp_path):
    path = tmp_path / "run" / "last.pt"
    checkpoint.save(path, {"epoch": 2, "generator": {"w": torch.arange(3.0)}})
    state = checkpoint.load(path)
    assert state["format"] == checkpoint.FORMAT and state["epoch"] == 2
    assert torch.equal(state["generator"]["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"epoch": 1})
    with pytest.raises(TypeError, match="cannot pickle"):
        checkpoint.save(path, {"epoch": 2, "unpicklable": (n for n in range(3))})
    assert checkpoint.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_missing_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nothing.pt")
    good = tmp_path / "good.pt"
    checkpoint.save(good, {"epoch": 1, "generator": {"w": torch.zeros(1000)}})
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        checkpoint.load(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="is not an enhance-edge checkpoint"):
        checkpoint.load(foreign)


class Payload:
    """Unpickling this object would create a file: what a malicious checkpoint could do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_loading_never_runs_code_pickled_into_the_file(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "generator": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        checkpoint.load(path)
    assert not marker.exists()


def test_resume_accepts_the_same_run_with_other_threads_or_checkpoint_interval(tmp_path):
    config = RunConfig(GeneratorConfig(channels=4), train=TrainConfig(epochs=2, hr_size=(20, 24)))
    checkpoint.save(tmp_path / "last.pt", resumable_state(config))
    again = RunConfig(GeneratorConfig(channels=4),
                      train=TrainConfig(epochs=2, hr_size=(20, 24), threads=3, checkpoint_every=7))
    assert checkpoint.load_for_resume(tmp_path / "last.pt", again, DATA)["epoch"] == 1


def test_resume_refuses_other_settings_other_data_and_old_checkpoints_naming_why(tmp_path):
    config = RunConfig(GeneratorConfig(channels=4), train=TrainConfig(epochs=2, hr_size=(20, 24)))
    path = tmp_path / "last.pt"
    checkpoint.save(path, resumable_state(config))
    other = RunConfig(GeneratorConfig(channels=8), train=TrainConfig(epochs=2, hr_size=(20, 24), lr=1e-3))
    with pytest.raises(CheckpointError, match=r"generator.channels: 4 -> 8; train.lr: 0.0002 -> 0.001"):
        checkpoint.load_for_resume(path, other, DATA)
    with pytest.raises(CheckpointError, match="was trained on other data"):
        checkpoint.load_for_resume(path, config, {**DATA, "folder": "cats"})
    old = {key: value for key, value in resumable_state(config).items() if key not in ("step", "history")}
    checkpoint.save(path, old)
    with pytest.raises(CheckpointError, match="cannot be resumed: it lacks step, history"):
        checkpoint.load_for_resume(path, config, DATA)


def test_resume_refuses_a_teacher_file_whose_content_changed_naming_both_hashes(tmp_path):
    config = RunConfig(GeneratorConfig(channels=4), train=TrainConfig(epochs=2, hr_size=(20, 24), teacher="default"))
    path = tmp_path / "last.pt"
    teacher = {"name": "default", "path": "/models/default.onnx", "sha256": "aa" * 32}
    checkpoint.save(path, {**resumable_state(config), "teacher": teacher})
    assert checkpoint.load_for_resume(path, config, DATA, {**teacher, "path": "/elsewhere/default.onnx"})
    with pytest.raises(CheckpointError, match=f"sha256 {'aa' * 32}; teacher 'default' .* now has sha256 {'bb' * 32}"):
        checkpoint.load_for_resume(path, config, DATA, {**teacher, "sha256": "bb" * 32})
    checkpoint.save(path, resumable_state(config))  # written before teachers were recorded
    with pytest.raises(CheckpointError, match=f"sha256 not recorded; .* now has sha256 {'aa' * 32}"):
        checkpoint.load_for_resume(path, config, DATA, teacher)


def generator_checkpoint(path, **changes):
    """A checkpoint of a tiny generator, with entries replaced (None: removed)."""
    config = RunConfig(GeneratorConfig(channels=4, residual_blocks=1))
    state = {"config": config.to_dict(), "generator": Generator(config.generator).state_dict(), **changes}
    checkpoint.save(path, {key: value for key, value in state.items() if value is not None})
    return path


@pytest.mark.parametrize("changes, cause", [
    ({"config": None}, r"holds an unusable config: no 'config' entry"),
    ({"config": {"generator": {}, "discriminator": {}, "train": {"epochs": 2, "wings": 1}}},
     r"holds an unusable config: unknown TrainConfig keys \['wings'\]"),
    ({"config": {"generator": {"channels": 0}, "discriminator": {}, "train": {}}},
     r"holds an unusable config: GeneratorConfig.channels must be a whole number from 1 to 1024, got 0"),
    ({"generator": None}, "holds no generator weights"),
    ({"generator": Generator(GeneratorConfig(channels=8, residual_blocks=1)).state_dict()},
     r"holds generator weights that do not fit its config: size mismatch for head.weight: .* \(and \d+ more\)$"),
])
def test_a_checkpoint_with_a_bad_config_or_weights_is_a_checkpoint_error_naming_file_and_cause(
        tmp_path, changes, cause):
    path = generator_checkpoint(tmp_path / "newer.pt", **changes)
    for load in (checkpoint.load_generator, lambda p: load_warm_start(p, GeneratorConfig(channels=4))):
        with pytest.raises(CheckpointError, match=f"^'{re.escape(str(path))}' {cause}"):
            load(path)


def test_remove_partial_writes_deletes_only_interrupted_temporary_files(tmp_path):
    for name in (".last.pt.x1y2.part", ".best.pt.abc.part", "last.pt", "metrics.jsonl", ".notes.part"):
        (tmp_path / name).write_text("x")
    checkpoint.remove_partial_writes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.part", "last.pt", "metrics.jsonl"]


def test_an_empty_file_is_a_one_line_error_wherever_it_is_given(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    config = RunConfig(GeneratorConfig(channels=4), train=TrainConfig(epochs=2, hr_size=(20, 24)))
    for load in (checkpoint.load, checkpoint.load_generator, lambda p: checkpoint.load_for_resume(p, config, DATA)):
        with pytest.raises(CheckpointError, match=f"^'{re.escape(str(empty))}' is an empty file, not a checkpoint$"):
            load(empty)


def test_a_torch_error_without_a_message_still_says_what_happened(tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(b"\x80")  # a pickle protocol marker and nothing after it
    with pytest.raises(CheckpointError, match=r"is not a readable checkpoint: \w+"):
        checkpoint.load(cut)


def huge_config(section: str, **changes) -> dict:
    """A tiny run's config dict with ``changes`` to one section (past the dataclasses' checks)."""
    config = RunConfig(GeneratorConfig(channels=4, residual_blocks=1)).to_dict()
    return {**config, section: {**config[section], **changes}}


@pytest.mark.parametrize("config, cause", [
    (huge_config("generator", channels=1_000_000), "GeneratorConfig.channels must be a whole number from 1 to 1024, "
                                                   "got 1000000"),  # 36 TB of weights
    (huge_config("generator", residual_blocks=10**6), "GeneratorConfig.residual_blocks must be a whole number from 0 "
                                                      "to 256, got 1000000"),  # minutes to build on the meta device
    (huge_config("generator", body="rep", residual_blocks=0, rep_convs=10**6),
     "GeneratorConfig.rep_convs must be a whole number from 0 to 512, got 1000000"),
    (huge_config("generator", scale=10**6), "GeneratorConfig.scale must be a whole number from 1 to 16, got 1000000"),
    (huge_config("generator", channels=20.5), "GeneratorConfig.channels must be a whole number from 1 to 1024, "
                                              "got 20.5"),
    (huge_config("discriminator", conv_layers=10**18), "DiscriminatorConfig.conv_layers must be a whole number from 2 "
                                                       "to 16, got 1000000000000000000"),
    (huge_config("estimator", channels=10**6), "EstimatorConfig.channels must be a whole number from 1 to 512, "
                                               "got 1000000"),
])
def test_a_config_asking_for_a_huge_network_is_refused_before_any_module_is_built(tmp_path, monkeypatch, config,
                                                                                   cause):
    path = tmp_path / "huge.pt"
    checkpoint.save(path, {**resumable_state(RunConfig(GeneratorConfig(channels=4, residual_blocks=1))),
                           "config": config})

    def no_network(*args, **kwargs):
        raise AssertionError("a network was built")

    for network in ("Generator", "Discriminator"):
        monkeypatch.setattr(checkpoint, network, no_network)
    message = f"^'{re.escape(str(path))}' holds an unusable config: {re.escape(cause)}$"
    for load in (checkpoint.load_generator, lambda p: load_warm_start(p, GeneratorConfig(channels=4)),
                 lambda p: checkpoint.load_for_resume(p, RunConfig(), DATA)):
        with pytest.raises(CheckpointError, match=message):
            load(path)


def test_resume_refuses_weights_that_do_not_fit_their_config(tmp_path):
    config = RunConfig(GeneratorConfig(channels=4), train=TrainConfig(epochs=2, hr_size=(20, 24)))
    path = tmp_path / "last.pt"
    wider = Generator(GeneratorConfig(channels=8)).state_dict()
    checkpoint.save(path, {**resumable_state(config), "generator": wider})
    with pytest.raises(CheckpointError, match=r"holds generator weights that do not fit its config: size mismatch"):
        checkpoint.load_for_resume(path, config, DATA)
    other_discriminator = Discriminator(DiscriminatorConfig(base_channels=8)).state_dict()
    checkpoint.save(path, {**resumable_state(config), "discriminator": other_discriminator})
    with pytest.raises(CheckpointError, match=r"holds discriminator weights that do not fit its config"):
        checkpoint.load_for_resume(path, config, DATA)
