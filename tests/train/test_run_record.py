"""The run record (results.json): one schema, versioned, read back the same by every reader."""

import json

import pytest

from plstm_geometric.train.record import (
    SCHEMA,
    SCHEMA_VERSION,
    RecordError,
    config_mismatch,
    make_record,
    read_record,
    run_state,
    write_record,
)


def test_a_written_record_reads_back_with_its_version(tmp_path):
    record = make_record("graph", {"lr": 1e-3, "hidden": 8}, finished=True, metrics={"test": 0.5}, best_epoch=2)
    write_record(tmp_path, record)
    back = read_record(tmp_path)
    assert back == record
    assert back["schema"] == SCHEMA and back["schema_version"] == SCHEMA_VERSION and back["kind"] == "graph"


def test_non_finite_metrics_are_written_as_null(tmp_path):
    write_record(tmp_path, make_record("graph", {}, finished=False, metrics={"valid": float("nan")}))
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == {"valid": None}


@pytest.fixture
def v1(tmp_path):
    # the graph trainer's record before the schema had a name: no schema, schema_version or kind
    old = {"config": {"lr": 0.001}, "dataset": "MUTAG", "model": "gin", "finished": True, "metrics": {"test": 0.8}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    return tmp_path


def test_version_1_reads_as_the_current_version(v1):
    record = read_record(v1)
    assert record["schema_version"] == SCHEMA_VERSION and record["kind"] == "graph" and record["finished"]
    assert run_state(v1, {"lr": 0.001}) == ("done", None)


def test_a_plstm_run_recorded_before_the_first_sweep_was_a_choice_swept_forward_first(tmp_path):
    config = {"model": "plstm", "hidden": 8}
    write_record(tmp_path, make_record("graph", config, finished=True, metrics={"test": 0.5}))
    assert read_record(tmp_path)["config"]["first_sweep"] == "forward"
    assert run_state(tmp_path, {"first_sweep": "forward"}) == ("done", None)
    assert run_state(tmp_path, {"first_sweep": "reverse"})[0] == "stale"
    # a baseline gets no such field, and a recorded direction is kept
    write_record(tmp_path, make_record("graph", {"model": "gin"}, finished=True, metrics={}))
    assert "first_sweep" not in read_record(tmp_path)["config"]
    write_record(tmp_path, make_record("graph", {**config, "first_sweep": "reverse"}, finished=True, metrics={}))
    assert read_record(tmp_path)["config"]["first_sweep"] == "reverse"


@pytest.mark.parametrize(
    "content, match",
    [
        ("{", "not a readable JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"config": {}, "finished": "yes"}), "'finished'"),
        (json.dumps({"config": [], "finished": True}), "'config'"),
        (json.dumps({"config": {}, "finished": True, "metrics": {"test": "high"}}), "'metrics'"),
        (json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION + 1, "config": {}}), "upgrade"),
        (
            json.dumps({"schema": "other", "schema_version": 2, "kind": "graph", "config": {}, "finished": True}),
            "'schema'",
        ),
    ],
)
def test_a_foreign_or_damaged_record_is_a_record_error_naming_the_file(tmp_path, content, match):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(RecordError, match=match) as info:
        read_record(tmp_path)
    assert str(tmp_path / "results.json") in str(info.value)
    state, detail = run_state(tmp_path, {})
    assert state == "stale" and str(tmp_path) in detail


def test_make_record_refuses_unknown_fields_and_wrong_types():
    with pytest.raises(ValueError, match="fields"):
        make_record("graph", {}, finished=True, accuracy=1.0)
    with pytest.raises(ValueError, match="'best_epoch'"):
        make_record("graph", {}, finished=True, best_epoch="2")
    with pytest.raises(ValueError, match="'kind'"):
        make_record("images", {}, finished=True)


def test_run_state_of_each_kind_of_folder(tmp_path):
    assert run_state(tmp_path, {"lr": 1}) == ("new", None)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert run_state(tmp_path, {"lr": 1}) == ("resume", None)
    write_record(tmp_path, make_record("graph", {"lr": 1, "threads": 4}, finished=False))
    assert run_state(tmp_path, {"lr": 1}) == ("resume", None)
    write_record(tmp_path, make_record("graph", {"lr": 1}, finished=True))
    assert run_state(tmp_path, {"lr": 1.0}) == ("done", None)
    state, detail = run_state(tmp_path, {"lr": 2})
    assert state == "stale" and "lr" in detail
    assert config_mismatch({"config": {}}, {"hidden": 8}) == ("hidden", "<absent>", 8)
