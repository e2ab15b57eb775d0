"""capsnet_lib.table1 on a tiny CPU budget: five rows, several seeds, test evaluated once."""
import csv
import json

import pytest

from capsnet_lib import BaselineCNN, load_checkpoint
from capsnet_lib.table1 import ROWS, main as table1_main

QUICK = ["--seeds", "2", "--epochs", "1", "--batch-size", "32", "--train-limit", "64", "--val-limit", "32",
         "--test-limit", "50", "--device", "cpu", "--precision", "fp32", "--no-download", "--parallel", "2"]


@pytest.fixture(scope="module")
def table(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("table1")
    assert table1_main(QUICK + ["--out", str(out)]) == 0
    return out


def test_every_row_is_trained_with_every_seed_and_summarised(table):
    runs = list(csv.DictReader(open(table / "runs.csv")))
    assert sorted((r["row"], r["seed"]) for r in runs) == sorted((row, str(s)) for row in ROWS for s in (0, 1))
    summary = {line["row"]: line for line in csv.DictReader(open(table / "summary.csv"))}
    assert list(summary) == list(ROWS)
    for row, line in summary.items():
        errors = [float(r["test_error_percent"]) for r in runs if r["row"] == row]
        assert float(line["test_error_mean"]) == pytest.approx(sum(errors) / 2, abs=1e-3)
        assert line["runs"] == "2" and line["epochs"] == "1" and "validation" in line["protocol"]
    assert summary["routing3_recon"]["paper_mean"] == "0.25"
    assert int(summary["baseline"]["parameters"]) == pytest.approx(35.4e6, abs=0.05e6)
    assert int(summary["routing3"]["parameters"]) < int(summary["routing3_recon"]["parameters"])


def test_each_row_trains_the_model_it_names(table):
    assert isinstance(load_checkpoint(table / "baseline" / "seed0" / "best.pt").model, BaselineCNN)
    caps = load_checkpoint(table / "routing1" / "seed1" / "best.pt")
    assert caps.config == {"routing_iterations": 1, "reconstruction": False, "routing_detach": True,
                           "routing_bias": False, "image_size": 28}
    assert caps.extra["train_config"]["seed"] == 1


def test_the_test_set_is_evaluated_once_per_run(table, monkeypatch, capsys):
    stored = (table / "routing3_recon" / "seed0" / "test.json").read_text()
    assert json.loads(stored)["test_images"] == 50
    monkeypatch.setattr("capsnet_lib.table1.predict", lambda *a, **k: pytest.fail("test set evaluated again"))
    assert table1_main(QUICK + ["--out", str(table)]) == 0          # everything finished: only reads
    assert (table / "routing3_recon" / "seed0" / "test.json").read_text() == stored
    assert "finished earlier, skipped" in capsys.readouterr().err


def test_the_routing_table_trains_each_variant_as_it_names(tmp_path, mnist_root):
    from capsnet_lib.table1 import ROUTING_ROWS
    out = tmp_path / "routing"
    quick = ["--seeds", "1", "--epochs", "1", "--batch-size", "16", "--train-limit", "32", "--val-limit", "16",
             "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download", "--parallel", "1"]
    assert table1_main(quick + ["--table", "routing", "--out", str(out)]) == 0
    summary = {line["row"]: line for line in csv.DictReader(open(out / "summary.csv"))}
    assert list(summary) == list(ROUTING_ROWS)
    assert summary["authors_code"]["paper_mean"] == "" and summary["routing3_recon"]["paper_mean"] == "0.25"
    authors = load_checkpoint(out / "authors_code" / "seed0" / "best.pt")
    assert authors.config["routing_detach"] is False and authors.config["routing_bias"] is True
    assert authors.extra["train_config"]["reconstruction_weight"] == 0.001
    plain = load_checkpoint(out / "routing3_recon" / "seed0" / "best.pt")
    assert plain.config["routing_detach"] is True and plain.extra["train_config"]["reconstruction_weight"] == 0.0005
    assert load_checkpoint(out / "no_detach" / "seed0" / "best.pt").config["routing_bias"] is False


def test_a_row_of_another_table_is_refused_in_one_line(tmp_path, capsys):
    assert table1_main(["--table", "routing", "--rows", "baseline", "--out", str(tmp_path)]) == 2
    assert "rows baseline are not in --table routing" in capsys.readouterr().err
