"""The report's figures from metrics.jsonl: this version's logs, the committed older ones, bad files."""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from enhance_edge.apps.cli import main
from enhance_edge.train import plots

DOCS_RUNS = Path(__file__).parents[2] / "docs" / "runs"
BASELINES = {"bicubic": {"psnr": 30.0, "ssim": 0.9}, "lanczos": {"psnr": 31.0, "ssim": 0.91}}
DISCRIMINATOR = {"d_loss": 1.3, "discriminator": {"accuracy": 0.5, "f1": 0.0}}


def record(epoch: int = 1, adversarial: bool = False, train: dict | None = None, validation: dict | None = None):
    return {"epoch": epoch, "adversarial": adversarial, "train": train or {"g_loss": 0.01, "content": 0.01},
            "validation": {"psnr": 30.0, "ssim": 0.9, **(validation or {"g_loss": 0.02, "content": 0.02})},
            "baselines": BASELINES}


@pytest.fixture
def good_metrics(tmp_path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps(record(epoch)) + "\n" for epoch in (1, 2)))
    return path


@pytest.mark.parametrize("text, message", [("", "logs no epoch"), ("\n\n", "logs no epoch"),
                                           ('{"epoch": 1, "tra', "not a readable metrics.jsonl")])
def test_an_empty_or_torn_metrics_file_is_refused_before_any_figure_is_written(tmp_path, good_metrics, text, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    out = tmp_path / "docs"
    result = CliRunner().invoke(main, ["plots", "--metrics", f"good={good_metrics}", "--metrics", f"bad={bad}",
                                       "--out", str(out)])
    assert result.exit_code == 1 and result.output.startswith(f"error: {bad}: {message}")
    assert "Traceback" not in result.output and not out.exists()


def test_an_unwritable_output_folder_is_one_clear_line(tmp_path, good_metrics):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "docs"
    result = CliRunner().invoke(main, ["plots", "--metrics", f"run={good_metrics}", "--out", str(out)])
    assert result.exit_code == 1 and result.output.startswith(f"error: {out / 'losses.png'}: cannot write")


@pytest.mark.parametrize("logged, expected", [
    # This version's logs: both sides sum the same terms into g_loss.
    (record(train={"g_loss": 0.3, "content": 0.1, "distill": 0.2},
            validation={"g_loss": 0.5, "content": 0.2, "distill": 0.3}), (0.3, 0.5)),
    # Older logs: validation g_loss was the content loss alone (no discriminator) ...
    (record(train={"g_loss": 0.3, "content": 0.1, "distill": 0.2}, validation={"g_loss": 0.2}), (0.1, 0.2)),
    # ... plus the adversarial term whenever a discriminator existed: like training in its epochs,
    (record(adversarial=True, train={"g_loss": 0.11, "content": 0.1, "d_loss": 1.0},
            validation={"g_loss": 0.22, **DISCRIMINATOR}), (0.11, 0.22)),
    # but in a warm-up epoch the untrained discriminator's, which training did not have.
    (record(train={"g_loss": 0.1, "content": 0.1}, validation={"g_loss": 0.9, **DISCRIMINATOR}), (0.1, math.nan)),
])
def test_losses_compare_the_same_sum_of_terms_on_both_sides(logged, expected):
    assert plots.generator_losses(logged) == pytest.approx(expected, nan_ok=True)


@pytest.mark.filterwarnings("ignore:Tight layout not applied")  # a legend of every run
def test_the_committed_logs_still_plot(tmp_path):
    runs = {path.name: path for path in sorted(DOCS_RUNS.rglob("*.metrics.jsonl"))}
    assert len(runs) > 10
    written = plots.draw_all(runs, tmp_path)
    assert [path.name for path in written] == ["losses.png", "psnr.png", "discriminator.png"]
    for name in ("report.metrics.jsonl", "mse-skip.metrics.jsonl"):  # docs/losses.png's two runs, whole
        assert all(map(math.isfinite, sum(map(plots.generator_losses, plots.read_metrics(runs[name])), ())))


def test_the_psnr_figure_names_no_subjects_of_one_particular_data_set(tmp_path, monkeypatch):
    titles, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: titles.append(fig.axes[0].get_title()) or save(fig, path))
    plots.plot_psnr({"run": [record()]}, tmp_path)
    assert titles == ["Validation PSNR per epoch"]
