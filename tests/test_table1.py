"""capsnet_lib.table1 on a tiny CPU budget: five rows, several seeds, test evaluated once."""
import csv
import json

import pytest

from capsnet_lib import BaselineCNN, load_checkpoint
from capsnet_lib.training.checkpoint import save_checkpoint
from capsnet_lib.experiments.table1 import ROWS
from capsnet_lib.table1 import main as table1_main

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
    monkeypatch.setattr("capsnet_lib.experiments.table1.predict", lambda *a, **k: pytest.fail("test set evaluated again"))
    assert table1_main(QUICK + ["--out", str(table)]) == 0          # everything finished: only reads
    assert (table / "routing3_recon" / "seed0" / "test.json").read_text() == stored
    assert "finished earlier, skipped" in capsys.readouterr().err


def test_the_routing_table_trains_each_variant_as_it_names(tmp_path, mnist_root):
    from capsnet_lib.experiments.table1 import ROUTING_ROWS
    out = tmp_path / "routing"
    quick = ["--seeds", "1", "--epochs", "1", "--batch-size", "16", "--train-limit", "32", "--val-limit", "16",
             "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download", "--parallel", "1"]
    assert table1_main(quick + ["--table", "routing", "--out", str(out)]) == 0
    summary = {line["row"]: line for line in csv.DictReader(open(out / "summary.csv"))}
    assert list(summary) == list(ROUTING_ROWS)
    assert summary["authors_code"]["paper_mean"] == "" and summary["routing3_recon"]["paper_mean"] == "0.25"
    authors = load_checkpoint(out / "authors_code" / "seed0" / "best.pt")
    assert authors.config["routing_detach"] is False and authors.config["routing_bias"] is True
    assert authors.extra["train_config"]["reconstruction_weight"] == 0.01
    plain = load_checkpoint(out / "routing3_recon" / "seed0" / "best.pt")
    assert plain.config["routing_detach"] is True and plain.extra["train_config"]["reconstruction_weight"] == 0.0005
    assert load_checkpoint(out / "no_detach" / "seed0" / "best.pt").config["routing_bias"] is False


def test_a_row_of_another_table_is_refused_in_one_line(tmp_path, capsys):
    assert table1_main(["--table", "routing", "--rows", "baseline", "--out", str(tmp_path)]) == 2
    assert "rows baseline are not in --table routing" in capsys.readouterr().err


def test_an_ensemble_table_with_a_time_budget_plans_trains_and_reports(tmp_path, mnist_root):
    quick = ["--seeds", "2", "--epochs", "3", "--batch-size", "16", "--train-limit", "32", "--val-limit", "16",
             "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download", "--parallel", "1"]
    rows = ["--rows", "routing1", "routing1_recon"]
    assert table1_main(quick + rows + ["--ensemble", "--time-budget", "600", "--out", str(tmp_path)]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["epochs"] == 3 and len(plan["jobs"]) == 1 and len(plan["jobs"][0]["runs"]) == 4   # one ensemble
    member = load_checkpoint(tmp_path / "routing1" / "seed1" / "best.pt")
    assert member.extra["ensemble_size"] == 4 and member.config["reconstruction"] is False
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert {(r["row"], r["seed"], r["epochs"], r["ensemble_size"]) for r in runs} == {
        (row, str(s), "3", "4") for row in ("routing1", "routing1_recon") for s in (0, 1)}
    # another row later: the CSVs keep the first rows' results
    assert table1_main(quick[:3] + ["1"] + quick[4:] + ["--rows", "routing3", "--out", str(tmp_path)]) == 0
    assert {r["row"] for r in csv.DictReader(open(tmp_path / "runs.csv"))} == {"routing1", "routing1_recon", "routing3"}


def test_an_ensemble_table_killed_inside_its_per_member_saves_heals_on_the_next_call(tmp_path, mnist_root,
                                                                                      monkeypatch, capsys):
    """Killed in epoch 2's saves after member seed0's last.pt, before its metrics.csv: seed0 stands
    at epoch 2 and seed1 at epoch 1, and the next call finishes and reports both."""
    import capsnet_lib.training.loop as loop
    argv = ["--seeds", "2", "--epochs", "2", "--batch-size", "16", "--train-limit", "32", "--val-limit", "16",
            "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download", "--rows", "routing1",
            "--ensemble", "--out", str(tmp_path)]
    real_write = loop.atomic_write_csv
    def killed_in_epoch_two(path, columns, rows):
        if "seed0" in str(path) and len(rows) == 2:
            raise KeyboardInterrupt
        real_write(path, columns, rows)
    monkeypatch.setattr(loop, "atomic_write_csv", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        table1_main(argv)
    assert load_checkpoint(tmp_path / "routing1" / "seed0" / "last.pt").extra["epoch"] == 2
    assert load_checkpoint(tmp_path / "routing1" / "seed1" / "last.pt").extra["epoch"] == 1
    monkeypatch.setattr(loop, "atomic_write_csv", real_write)
    assert table1_main(argv) == 0
    assert "stand at epochs 1 (1), 2 (1)" in capsys.readouterr().err
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert sorted((r["seed"], r["epochs"]) for r in runs) == [("0", "2"), ("1", "2")]
    for seed in (0, 1):
        rows = list(csv.DictReader(open(tmp_path / "routing1" / f"seed{seed}" / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["1", "2"]


def test_each_run_is_tested_as_it_finishes_so_a_kill_in_the_next_one_loses_nothing(tmp_path, mnist_root, monkeypatch):
    import capsnet_lib.experiments.sweep as sweep
    real_training = sweep.run_training
    def killed_in_seed1(config):
        if config.seed == 1:
            raise KeyboardInterrupt
        return real_training(config)
    monkeypatch.setattr(sweep, "run_training", killed_in_seed1)
    with pytest.raises(KeyboardInterrupt):
        table1_main(["--seeds", "2", "--epochs", "1", "--batch-size", "16", "--train-limit", "16", "--val-limit", "16",
                     "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download", "--parallel", "1",
                     "--rows", "routing1", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "routing1" / "seed0" / "test.json").read_text())["test_images"] == 20


def test_a_stored_test_result_is_measured_again_when_its_checkpoint_changed(tmp_path, mnist_root):
    def table(epochs, test_limit=20):
        return table1_main(["--seeds", "1", "--batch-size", "16", "--train-limit", "32", "--val-limit", "16",
                            "--test-limit", str(test_limit), "--device", "cpu", "--precision", "fp32", "--no-download",
                            "--rows", "routing1", "--epochs", str(epochs), "--out", str(tmp_path)])
    stored = lambda: json.loads((tmp_path / "routing1" / "seed0" / "test.json").read_text())
    assert table(1) == 0
    first = stored()
    assert table(2) == 0                      # trained on: the stored result described epoch 1's checkpoint
    second = stored()
    assert (first["epochs"], second["epochs"]) == (1, 2)
    assert next(csv.DictReader(open(tmp_path / "runs.csv")))["epochs"] == "2"
    assert table(2, test_limit=30) == 0       # another test set size: measured again
    assert stored()["test_images"] == 30


@pytest.mark.parametrize("edit, message", [
    (lambda text: text[:20], "is damaged"),
    (lambda text: text.replace('"test_error_percent": ', '"test_error_percent": 0.0001 + '), "is damaged"),
    (lambda text: json.dumps({**json.loads(text), "test_error_percent": 0.0}) if json.loads(text)["test_errors"]
     else json.dumps({**json.loads(text), "test_error_percent": 50.0}), "contradicts itself"),
])
def test_a_damaged_or_edited_test_json_is_named_in_one_line(table, capsys, edit, message):
    path = table / "routing1" / "seed0" / "test.json"
    good = path.read_text()
    path.write_text(edit(good))
    try:
        assert table1_main(QUICK + ["--out", str(table)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and "Traceback" not in err
    finally:
        path.write_text(good)


@pytest.mark.parametrize("option, message", [(["--test-limit", "-5"], "--test-limit must be >= 1"),
                                             (["--test-limit", "0"], "--test-limit must be >= 1"),
                                             (["--test-limit", "10001"], "at most the 10000"),
                                             (["--seeds", "0"], "--seeds must be >= 1"),
                                             (["--time-budget", "-1"], "--time-budget must be")])
def test_bad_options_are_refused_before_any_training(tmp_path, capsys, option, message):
    assert table1_main(["--rows", "routing1", "--ensemble", "--out", str(tmp_path / "t")] + option) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t" / "routing1").exists()


def test_a_run_folder_is_reported_only_for_the_settings_and_model_it_holds(tmp_path, mnist_root, monkeypatch, capsys):
    """A finished run is reused only with the table's settings; its best.pt must be its own model; a
    folder as committed (no checkpoints) is read, not trained or tested again."""
    quick = ["--seeds", "1", "--rows", "routing1", "--epochs", "1", "--batch-size", "16", "--train-limit", "32",
             "--val-limit", "16", "--test-limit", "20", "--device", "cpu", "--precision", "fp32", "--no-download",
             "--out", str(tmp_path)]
    run = tmp_path / "routing1" / "seed0"
    assert table1_main(quick) == 0
    stored = (run / "test.json").read_text()
    assert json.loads((run / "config.json").read_text())["routing_iterations"] == 1
    capsys.readouterr()

    def refused(argv, *messages):
        assert table1_main(argv) == 2
        err = capsys.readouterr().err
        assert all(m in err for m in messages) and "Traceback" not in err and "--overwrite" not in err, err
        assert (run / "test.json").read_text() == stored

    refused(quick + ["--lr", "0.01"], str(run), "other settings", "lr was 0.001, now 0.01")
    best = load_checkpoint(run / "best.pt")
    good_best = (run / "best.pt").read_bytes()
    other_row = {**best.extra, "train_config": {**best.extra["train_config"], "reconstruction": True}}
    save_checkpoint(run / "best.pt", best.model, **other_row)
    refused(quick, "best.pt is not this run's model", "reconstruction was True, now False")
    (run / "best.pt").write_bytes(good_best)

    for name in ("best.pt", "last.pt"):         # the folder as a fresh clone has it
        (run / name).unlink()
    monkeypatch.setattr("capsnet_lib.experiments.table1.predict", lambda *a, **k: pytest.fail("tested again"))
    assert table1_main(quick) == 0
    assert "(its results are stored), skipped" in capsys.readouterr().err
    assert next(csv.DictReader(open(tmp_path / "runs.csv")))["test_errors"] == str(json.loads(stored)["test_errors"])
    refused(quick + ["--ema", "0.99"], "other settings", "ema was None, now 0.99", "no checkpoint to continue")
    refused(quick[:5] + ["2"] + quick[6:], "epochs was 1, now 2")


def test_the_committed_table_is_what_its_runs_give(tmp_path):
    """results/table1 as committed: every run folder holds the fast recipe's settings of its row and
    seed, and runs.csv and summary.csv are what `--report-only` rebuilds from the test.json files."""
    import shutil
    from pathlib import Path
    from capsnet_lib.table1 import build_table1_parser, run_configs
    from capsnet_lib.training.run_folder import setting_differences
    committed = Path(__file__).parent.parent / "results" / "table1"
    args = build_table1_parser().parse_args(["--recipe", "fast", "--out", str(committed)])
    runs = [config for config in run_configs(args, list(ROWS)).values() if (Path(config.out) / "test.json").is_file()]
    assert runs, "no committed Table 1 runs"
    for config in runs:
        saved = json.loads((Path(config.out) / "config.json").read_text())
        assert setting_differences(saved, config) == [], config.out
        assert json.loads((Path(config.out) / "test.json").read_text())["epochs"] == config.epochs == 6
    copy = tmp_path / "table1"
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("*.pt", ".lock"))
    assert table1_main(["--report-only", "--out", str(copy)]) == 0
    for name in ("runs.csv", "summary.csv"):
        assert (copy / name).read_text() == (committed / name).read_text(), f"{name} is not what the runs give"


def test_the_readme_table_is_the_committed_summary():
    """The README's 'Table 1 so far' has one line per row with the runs and mean ± std of
    results/table1/summary.csv ('no run yet' for a row without runs) and the paper's numbers."""
    from pathlib import Path
    root = Path(__file__).parent.parent
    with open(root / "results" / "table1" / "summary.csv") as f:
        summary = {line["row"]: line for line in csv.DictReader(f)}
    readme = {line.split("|")[1].strip(" `"): [cell.strip() for cell in line.split("|")[3:6]]
              for line in (root / "README.md").read_text().splitlines() if line.startswith("| `")}
    for row, (_, _, (paper_mean, paper_std)) in ROWS.items():
        ours = summary.get(row)
        expected = ["0", "no run yet"] if ours is None else [ours["runs"], f"{float(ours['test_error_mean']):.3f}" + (
            f" ± {float(ours['test_error_std']):.3f}" if ours["test_error_std"] else "")]
        expected.append(f"{paper_mean:.2f}" + (f" ± {paper_std:.3f}" if paper_std is not None else ""))
        assert readme.get(row) == expected, f"README, Table 1, {row}: {readme.get(row)}; summary.csv: {expected}"
