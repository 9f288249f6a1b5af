"""The measured tables of the docs are rendered from their source files: the committed docs agree
with the committed sources, and a changed source changes exactly its tables."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from enhance_edge.benchmarks import docs
from enhance_edge.errors import DocsError

REPO = Path(__file__).resolve().parents[2]
CONDITIONS = ("clean", "jpeg75", "noise3", "blur", "camera")


def test_committed_docs_agree_with_their_sources():
    stale = docs.refresh(REPO, write=False)
    assert stale == [], ("tables differ from their sources; regenerate them with "
                         f"`python -m enhance_edge.benchmarks.docs`: {stale}")


def evaluation(model_psnr: dict[str, float], lanczos_psnr: float = 30.0) -> dict:
    """What `evaluate --split test --condition all --json` prints, with the model's PSNR per condition."""
    def scores(psnr):
        return {"psnr": psnr, "ssim": 0.9}
    return {condition: {"test": {"images": 2, "model": scores(psnr), "bicubic": scores(lanczos_psnr - 0.5),
                                 "lanczos": scores(lanczos_psnr), "skimage-order3": scores(lanczos_psnr - 0.25)}}
            for condition, psnr in model_psnr.items()}


@pytest.fixture
def root(tmp_path):
    """A repository of the docs' sources: made-up evaluations, the real bench run and RESULTS.md as
    that run wrote it, a README with one marked table (out of date), and docs/evaluation.md and
    MODEL_CARD.md with none."""
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    # default misses release 0.1's clean score; fast the jpeg75 gain (+0.1 against +0.35).
    for model, psnr in {"default": (40.5, 31.0, 31.0, 32.0, 31.0), "fast": (39.5, 30.1, 30.4, 30.4, 30.4),
                        "release-0.1-default": (40.6, 30.5, 30.5, 31.0, 30.5),
                        "release-0.1-fast": (39.0, 30.0, 30.0, 30.0, 30.0)}.items():
        (results / f"evaluate-{model}.json").write_text(json.dumps(evaluation(dict(zip(CONDITIONS, psnr)))))
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(REPO / "benchmarks" / "results.json", tmp_path / "benchmarks" / "results.json")
    bench = json.loads((REPO / "benchmarks" / "results.json").read_text())
    (tmp_path / "benchmarks" / "RESULTS.md").write_text(
        docs.report.markdown(bench, None) + f"\n{docs.report.KEPT_MARKER}\nBy hand.\n")
    (tmp_path / "README.md").write_text("# Title\n\nBefore.\n\n<!-- generated: results-by-condition -->\n\n"
                                        "| old | table |\n|---|---|\n\n<!-- /generated -->\n\nAfter.\n")
    (tmp_path / "MODEL_CARD.md").write_text("# Model card\n")
    (tmp_path / "docs" / "evaluation.md").write_text("# Evaluation protocol\n")
    return tmp_path


def test_a_marked_table_is_rendered_from_its_sources_and_nothing_else_changes(root):
    assert docs.refresh(root, write=False) == ["README.md: results-by-condition"]
    assert "| old | table |" in (root / "README.md").read_text()  # a check writes nothing

    assert docs.refresh(root, write=True) == ["README.md: results-by-condition"]
    readme = (root / "README.md").read_text()
    assert readme.startswith("# Title\n\nBefore.\n\n<!-- generated: results-by-condition -->\n\n| condition |")
    assert readme.endswith("|\n\n<!-- /generated -->\n\nAfter.\n")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `clean` | 30.00 | **40.50 (+10.50)** | 40.60 (+10.60) | **39.50 (+9.50)** | 39.00 (+9.00) "
        "| ≥ 0.1's: not met by `default` |",
        "| `jpeg75` | 30.00 | **31.00 (+1.00)** | 30.50 (+0.50) | **30.10 (+0.10)** | 30.00 (±0.00) "
        "| ≥ 0.1's; `fast` ≥ +0.35: not met by `fast` |",
        "| `noise3` | 30.00 | **31.00 (+1.00)** | 30.50 (+0.50) | **30.40 (+0.40)** | 30.00 (±0.00) "
        "| ≥ 0.1's; `fast` ≥ +0.35: met |",
        "| `blur` | 30.00 | **32.00 (+2.00)** | 31.00 (+1.00) | **30.40 (+0.40)** | 30.00 (±0.00) "
        "| ≥ 0.1's; `fast` ≥ +0.35: met |",
        "| `camera` | 30.00 | **31.00 (+1.00)** | 30.50 (+0.50) | **30.40 (+0.40)** | 30.00 (±0.00) "
        "| ≥ 0.1's; `fast` ≥ +0.35: met |"]
    assert docs.refresh(root, write=False) == []


def test_a_rerun_that_changes_a_score_makes_its_tables_stale(root):
    docs.refresh(root, write=True)
    path = root / "docs" / "results" / "evaluate-default.json"
    rerun = json.loads(path.read_text())
    rerun["clean"]["test"]["model"]["psnr"] = 39.9
    path.write_text(json.dumps(rerun))
    assert docs.refresh(root, write=True) == ["README.md: results-by-condition"]
    assert ("| **39.90 (+9.90)** | 40.60 (+10.60) | **39.50 (+9.50)** | 39.00 (+9.00) "
            "| ≥ 0.1's: not met by `default` |") in (root / "README.md").read_text()


def test_results_md_is_the_report_of_results_json_with_its_hand_written_part_kept(root):
    results_path, results_md = root / "benchmarks" / "results.json", root / "benchmarks" / "RESULTS.md"
    results = json.loads(results_path.read_text())
    results["quality"]["scores"]["fsrcnn"]["psnr"] = 12.3456
    results_path.write_text(json.dumps(results))

    stale = docs.refresh(root, write=True)
    assert "benchmarks/RESULTS.md: report.markdown of benchmarks/results.json" in stale
    text = results_md.read_text()
    assert "| fsrcnn | 12.35 |" in text and text.endswith(f"\n\n{docs.report.KEPT_MARKER}\nBy hand.\n")


def test_every_published_bench_run_has_its_results_md_checked(root):
    avx2 = root / "benchmarks" / "avx2"
    avx2.mkdir()
    results = json.loads((root / "benchmarks" / "results.json").read_text())
    results["machine"] = {**results["machine"], "int8_instructions": [], "int8_pair_sums": True}
    (avx2 / "results.json").write_text(json.dumps(results))
    (avx2 / "RESULTS.md").write_text(f"# out of date\n\n{docs.report.KEPT_MARKER}\nBy hand.\n")
    docs.refresh(root, write=True)
    assert (avx2 / "RESULTS.md").read_text() == (docs.report.markdown(results, None)
                                                  + f"\n{docs.report.KEPT_MARKER}\nBy hand.\n")
    assert "not a goal here" in (avx2 / "RESULTS.md").read_text()
    assert docs.refresh(root, write=False) == []


@pytest.mark.parametrize("readme, message", [
    ("<!-- generated: results-by-condition -->\n| a |\n", "1 '<!-- generated: NAME -->' markers but 0 tables"),
    ("<!-- generated: results-by-condition -->\n<!-- generated: clean-faces -->\n| a |\n<!-- /generated -->\n",
     "2 '<!-- generated: NAME -->' markers but 1 tables"),
    ("<!-- generated: no-such-table -->\n<!-- /generated -->\n", "unknown generated table 'no-such-table'"),
])
def test_markers_that_do_not_pair_up_or_name_no_table_are_refused(root, readme, message):
    (root / "README.md").write_text(readme)
    with pytest.raises(DocsError, match=f"README.md: {message}"):
        docs.refresh(root, write=True)


def test_a_missing_source_is_named(root):
    (root / "docs" / "results" / "evaluate-fast.json").unlink()
    with pytest.raises(DocsError, match="cannot read 'docs/results/evaluate-fast.json' under"):
        docs.refresh(root, write=False)


def test_x4_table_compares_with_the_x2_model_run_twice_and_checks_issue_17s_goals(root):
    x4 = evaluation({"clean": 33.5, "jpeg75": 30.0, "camera": 29.9})
    for condition, twice in (("clean", 32.7), ("jpeg75", 30.2), ("camera", 29.8)):
        x4[condition]["test"]["default x2^2"] = {"psnr": twice, "ssim": 0.8}
    (root / "docs" / "results" / "evaluate-default-x4.json").write_text(json.dumps(x4))
    assert docs.x4_by_condition(docs.Sources(root)).splitlines()[2:] == [
        "| `clean` | 30.00 | 32.70 | **33.50 (+0.80)** | ≥ 33.2 dB: met |",
        "| `jpeg75` | 30.00 | 30.20 | **30.00 (−0.20)** |  |",
        "| `camera` | 30.00 | 29.80 | **29.90 (+0.10)** | ≥ +0.3 over ×2 twice: not met |"]


def test_range_table_gives_both_models_gain_over_lanczos_under_each_chain(root):
    for model, psnr in (("default", (32.0, 31.5)), ("fast", (31.5, 30.5))):
        scores = evaluation(dict(zip(("noise=5>jpeg=50", "jpeg=50>noise=5"), psnr)), lanczos_psnr=31.0)
        (root / "docs" / "results" / f"evaluate-range-{model}.json").write_text(json.dumps(scores))
    assert docs.range_by_condition(docs.Sources(root)).splitlines() == [
        "| condition | Lanczos | `default` | `fast` |", "|---|---|---|---|",
        "| `noise=5>jpeg=50` | 31.00 | 32.00 (+1.00) | 31.50 (+0.50) |",
        "| `jpeg=50>noise=5` | 31.00 | 31.50 (+0.50) | 30.50 (−0.50) |"]


def test_command_checks_or_rewrites(root):
    check = CliRunner().invoke(docs.main, ["--root", str(root), "--check"])
    assert check.exit_code == 1 and check.output == "differs: README.md: results-by-condition\n"
    write = CliRunner().invoke(docs.main, ["--root", str(root)])
    assert write.exit_code == 0 and write.output == "rewrote: README.md: results-by-condition\n"
    assert CliRunner().invoke(docs.main, ["--root", str(root), "--check"]).output == ""
    (root / "README.md").unlink()
    missing = CliRunner().invoke(docs.main, ["--root", str(root)])
    assert missing.exit_code == 1 and "cannot read 'README.md'" in missing.output
