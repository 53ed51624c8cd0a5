"""A finished job registers its vectors once: `train run` / `train resume` of it again do not bring
back a model version the user deleted (the job's node remembers the registration, written in the
registering transaction); a job whose publisher died before registering is still registered by
them; `model register JOB` registers the vectors again on request. Real ZooKeeper, real workers."""

from __future__ import annotations

import json

import pytest

from nlpzk import models
from nlpzk.store import naming
from nlpzk.zk import paths, registry, versioned

from test_models_support import run_tiny_job

pytestmark = pytest.mark.timeout(240)


def _versions(cluster, model="j1"):
    return versioned.versions(cluster.zk, paths.model(model)) if cluster.zk.exists(paths.model(model)) else []


def test_a_finished_job_run_again_does_not_bring_back_a_model_version_the_user_deleted(cluster, config, cli):
    run_tiny_job(cluster, config)  # registered as j1@v1 by its last publisher
    assert cli("model", "delete", "j1@v1", "--yes").exit_code == 0
    res = cli("train", "resume", "j1", "--workers", "0")
    assert res.exit_code == 0, res.output
    assert _versions(cluster) == []  # before the fix: [2], the deleted vectors registered again
    assert "job 'j1' already finished; its vectors were registered as model j1@v1 (since deleted): not registered again" in res.stdout
    assert "nlpzk model register j1" in res.stdout
    res = cli("train", "run", "j1", "--json")
    got = json.loads(res.stdout)
    assert res.exit_code == 0 and got["model_version"] is None and got["deleted_model_version"] == 1, res.output
    assert cli("model", "delete", "j1", "--yes").exit_code == 0  # the whole model, too
    assert cli("train", "resume", "j1", "--workers", "0").exit_code == 0 and _versions(cluster) == []
    # asked for: registered again, and remembered as such
    again = cli("model", "register", "j1", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["version"] == 1, again.output
    assert registry.maybe_json(cluster.zk, paths.job("j1"))["registered"] == {"j1": 1}
    res = cli("train", "resume", "j1", "--workers", "0")
    assert res.exit_code == 0 and "registered as model j1@v1\n" in res.stdout and _versions(cluster) == [1], res.output


def test_a_finished_job_whose_publisher_died_before_registering_is_registered_by_resume(cluster, config, cli):
    run_tiny_job(cluster, config)
    # the version and the job's record of it come in one transaction: a publisher killed before
    # registering leaves neither
    assert registry.maybe_json(cluster.zk, paths.job("j1"))["registered"] == {"j1": 1}
    models.delete_model(cluster, "j1", 1)
    doc, stat = registry.get_json(cluster.zk, paths.job("j1"))
    del doc["registered"]
    cluster.zk.set(paths.job("j1"), registry.dumps(doc), version=stat.version)
    res = cli("train", "resume", "j1", "--workers", "0")
    assert res.exit_code == 0 and "registered as model j1@v2" in res.stdout, res.output
    assert _versions(cluster) == [2] and registry.maybe_json(cluster.zk, paths.job("j1"))["registered"] == {"j1": 2}


def test_the_library_refuses_to_register_a_deleted_registration_again_unless_asked(cluster, config):
    run_tiny_job(cluster, config)
    models.delete_model(cluster, "j1", 1)
    with pytest.raises(models.RegistrationDeleted, match=r"registered as model j1@v1 \(since deleted\)") as info:
        models.register_job(cluster, "j1")
    assert (info.value.name, info.value.number) == ("j1", 1) and "nlpzk model register j1" in info.value.line()
    assert models.register_job(cluster, "j1", again=True) == ("j1", 2)
    assert models.register_job(cluster, "j1") == ("j1", 2)  # found, not registered once more
    # into another model: remembered per model
    assert models.register_job(cluster, "j1", "other") == ("other", 1)
    assert registry.maybe_json(cluster.zk, paths.job("j1"))["registered"] == {"j1": 2, "other": 1}


def test_a_registration_and_a_delete_between_the_look_and_the_publish_are_not_undone(cluster, config, monkeypatch):
    """`train run`'s register_job looks at the job node (nothing registered yet), then loads the
    vectors and writes the model file; the job's last publisher registers them meanwhile and the
    user deletes that version. Its publish must not bring the deleted vectors back: the job node,
    read again in the publishing transaction, says they were registered."""
    from nlpzk import testing, train

    run_tiny_job(cluster, config)
    models.delete_model(cluster, "j1", 1)
    doc, stat = registry.get_json(cluster.zk, paths.job("j1"))
    del doc["registered"]  # as a publisher killed before registering leaves it
    cluster.zk.set(paths.job("j1"), registry.dumps(doc), version=stat.version)

    real = train.final_vectors

    def meanwhile(c, job):
        monkeypatch.setattr(train, "final_vectors", real)  # (the publisher's own call is the real one)
        out = real(c, job)
        other = testing.Cluster.connect(config)  # the publisher, in another process
        try:
            assert models.register_job(other, "j1") == ("j1", 2)
        finally:
            other.close()
        models.delete_model(cluster, "j1", 2)  # and the user deletes it
        return out

    monkeypatch.setattr(train, "final_vectors", meanwhile)
    with pytest.raises(models.RegistrationDeleted, match=r"registered as model j1@v2 \(since deleted\)"):
        models.register_job(cluster, "j1")
    assert _versions(cluster) == []  # before the fix: [3], the deleted vectors registered again
    assert registry.maybe_json(cluster.zk, paths.job("j1"))["registered"] == {"j1": 2}
    assert cluster.store.list(naming.model_dir("j1")) == []  # the file it wrote went with the refusal
