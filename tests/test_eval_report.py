"""``train report``: a real two-worker job (tiny), its rounds and per-worker numbers, plotted."""

from __future__ import annotations

import json

import pytest
import typer

from cli import _util
from cli.report import report
from nlpzk.errors import InvalidInputError, NotFoundError
from nlpzk.eval.report import build_report, job_history, pca_2d
from nlpzk.zk import paths, registry, versioned
from test_models_support import run_tiny_job


@pytest.fixture
def finished_job(cluster, config):
    return run_tiny_job(cluster, config)


def test_report_html_and_png_from_a_real_job(cluster, finished_job, tmp_path):
    history = job_history(cluster, "j1")
    assert [r["round"] for r in history["rounds"]] == [0, 1]
    assert all(r["words"] > 0 and r["loss_per_word"] > 0 and r["words_per_s"] > 0 for r in history["rounds"])
    workers = {row["worker"] for row in history["per_worker"]}
    assert len(workers) == 2
    # per-worker words of a round add up to the round's words
    for r in history["rounds"]:
        assert sum(w["words"] for w in history["per_worker"] if w["round"] == r["round"]) == r["words"]

    # the finished job registered its own vectors as model j1 (the job's name); they feed the word map
    out = build_report(cluster, "j1", str(tmp_path / "before.png"), words=["fire", "police", "nosuchword"])
    assert out["model"] == "j1@v1" and out["words"] == ["fire", "police"] and "map" in out["figures"]
    assert out["missing_words"] == ["nosuchword"]  # said (the CLI warns), not silently dropped
    # the job's own scores, without the OOV percentages and the count of analogy questions beside them
    assert set(out["scores"]) <= {"ws353", "simlex", "analogy"} and "ws353" in out["scores"]

    from nlpzk.eval import evaluate_model

    evaluate_model(cluster, "j1", benchmarks=("wordsim353",))

    html_out = build_report(cluster, "j1", str(tmp_path / "report.html"))
    assert html_out["model"] == "j1@v1" and html_out["rounds"] == 2 and len(html_out["workers"]) == 2
    assert html_out["figures"] == ["loss", "speed", "scores", "map"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == 4 and page.count("<tr><td>") >= 3 and "wordsim353" in page
    assert len(html_out["words"]) == 40  # default: frequent content words

    png = tmp_path / "report.png"
    build_report(cluster, "j1", str(png))
    from matplotlib import image

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.imread(str(png)).shape[0] > 500


def test_report_bad_input(cluster, tmp_path):
    with pytest.raises(NotFoundError, match=r"unknown training job 'nope' \(see: nlpzk train list\)"):  # as train status says
        build_report(cluster, "nope", str(tmp_path / "r.html"))
    with pytest.raises(InvalidInputError, match=r"\.html or \.png"):
        build_report(cluster, "nope", str(tmp_path / "r.pdf"))


def test_pca_2d_keeps_the_main_direction():
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.outer(np.linspace(-5, 5, 50), rng.normal(size=8)) + rng.normal(scale=0.01, size=(50, 8))
    xy = pca_2d(x)
    assert xy.shape == (50, 2)
    assert abs(np.corrcoef(xy[:, 0], np.linspace(-5, 5, 50))[0, 1]) > 0.999


def test_report_command_as_the_lead_will_mount_it(cluster, finished_job, cli_env, tmp_path):
    from typer.testing import CliRunner

    app = typer.Typer(cls=_util.NlpzkGroup)
    app.callback()(lambda: None)
    app.command("report")(report)
    res = CliRunner().invoke(app, ["report", "j1", "--out", str(tmp_path / "r.html"), "-w", "fire", "-w", "police", "--json"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["words"] == ["fire", "police"]
    res = CliRunner().invoke(app, ["report", "j1", "--out", str(tmp_path / "r.html"), "-w", "zzzz"], env=cli_env)
    assert res.exit_code == 0 and "warning: not in the vocabulary, left off the map: zzzz" in res.stderr
    res = CliRunner().invoke(app, ["report", "nope", "--out", str(tmp_path / "r.html")], env=cli_env)
    assert res.exit_code == NotFoundError.exit_code and "unknown training job" in res.stderr


def test_register_job_is_idempotent_and_keeps_the_job_spec(cluster, finished_job, cli):
    from nlpzk.models import Model, model_doc
    from nlpzk.train import final_vectors

    res = cli("model", "register", "j1", "--name", "lee", "--tag", "latest", "--tag", "candidate", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"name": "lee", "version": 1, "job": "j1"}
    again = cli("model", "register", "j1", "--name", "lee", "--json")
    assert json.loads(again.stdout)["version"] == 1
    doc = model_doc(cluster, "lee")
    assert doc["job"] == "j1" and doc["spec"]["dim"] == 16 and doc["spec"]["epochs"] == 1
    # what the job measured at its end travels with the version, until `model eval` stores its own
    final_scores = registry.get_json(cluster.zk, paths.job("j1"))[0]["final"]["scores"]
    assert doc["train_scores"] == {k: final_scores[k] for k in ("ws353", "simlex", "analogy") if final_scores.get(k) is not None}
    assert "at training: " in cli("model", "list").stdout and "at training (30,000 most frequent words)" in cli("model", "show", "lee").stdout
    assert doc["vocab"] == {"name": "lee", "version": finished_job.version, "sha256": finished_job.doc["sha256"]} and doc["tags"] == ["candidate", "latest"]
    again = cli("model", "register", "j1", "--name", "lee", "--tag", "prod", "--json")  # asked for: moved, no new version
    assert again.exit_code == 0 and json.loads(again.stdout)["version"] == 1
    assert model_doc(cluster, "lee")["tags"] == ["candidate", "latest", "prod"]
    assert versioned.versions(cluster.zk, paths.model("lee")) == [1]
    kv, _ = final_vectors(cluster, "j1")
    assert Model.open("lee", cluster=cluster).kv.index_to_key == kv.index_to_key
    res = cli("model", "register", "nope")
    assert res.exit_code == 4 and "unknown training job" in res.stderr


def test_report_of_a_job_with_no_merged_round_yet(cluster, tmp_path):
    from nlpzk.zk import rounds

    doc = {"spec": {"rounds": 4}, "state": "running", "round": 0, "words": 0}
    assert rounds.create_job(cluster.zk, "fresh", doc, {"round": 0, "params": "x", "words_before": 0}, ["s0"])
    history = job_history(cluster, "fresh")
    assert [(r["round"], r["words"], r["words_per_s"]) for r in history["rounds"]] == [(0, None, None)]
    out = build_report(cluster, "fresh", str(tmp_path / "fresh.html"))
    assert out["model"] is None and out["figures"] == ["loss", "speed"] and out["words"] == []
    assert (tmp_path / "fresh.html").read_text().count("<img") == 2


def test_report_skips_a_round_znode_whose_name_is_not_ascii_digits(cluster, cli, tmp_path):
    """Before: a znode under the job's rounds/ named '²' (made by hand) passed str.isdigit() and
    int('²') ended `train report` in a ValueError traceback; it is not a round: left out."""
    from nlpzk.zk import rounds

    doc = {"spec": {"rounds": 4}, "state": "running", "round": 0, "words": 0}
    assert rounds.create_job(cluster.zk, "fresh", doc, {"round": 0, "params": "x", "words_before": 0}, ["s0"])
    registry.create_json(cluster.zk, f"{paths.job_rounds('fresh')}/²", {"state": "merged"})
    res = cli("train", "report", "fresh", "--out", str(tmp_path / "fresh.html"))
    assert res.exit_code == 0, res.output
    assert [r["round"] for r in job_history(cluster, "fresh")["rounds"]] == [0]


def test_resume_or_rerun_of_a_finished_job_says_it_is_done(cluster, finished_job, cli):
    res = cli("train", "resume", "j1")
    assert res.exit_code == 0, res.output
    assert "job j1 is done (2 rounds): nothing to resume" in res.stderr and "resuming" not in res.stderr
    res = cli("train", "run", "j1", "--corpus", "lee", "--vocab", f"lee@v{finished_job.version}")
    assert res.exit_code == 0, res.output
    assert "job j1 exists and is done (2 rounds)" in res.stderr and "resuming" not in res.stderr
