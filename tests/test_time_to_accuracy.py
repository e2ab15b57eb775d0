"""benchmarks/time_to_accuracy.py: images and seconds to a validation accuracy, read from metrics."""
import importlib.util
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("time_to_accuracy", ROOT / "benchmarks" / "time_to_accuracy.py")
tta = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tta)


def write(path, accuracies, seconds=10.0):
    lines = ["epoch,step,train_loss,val_accuracy,lr,epoch_seconds,images_per_second,val_seconds"]
    lines += [f"{k + 1},{k + 1},0.1,{a},0.001,{seconds},1.0,1.0" for k, a in enumerate(accuracies)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_first_epoch_at_the_threshold_counts_with_the_time_spent_until_then(tmp_path):
    rows = tta.read_metrics(write(tmp_path / "m.csv", [0.985, 0.9931, 0.992, 0.9952]))
    assert tta.time_to(rows, 0.990, images_per_epoch=1000) == (2000, 22.0)
    assert tta.time_to(rows, 0.995, images_per_epoch=1000) == (4000, 44.0)      # not the dip at epoch 3
    assert tta.time_to(rows, 0.999) is None


def test_the_report_averages_only_where_every_seed_got_there(tmp_path, capsys):
    for seed, accuracies in enumerate([[0.991, 0.996], [0.991, 0.994]]):
        (tmp_path / f"s{seed}").mkdir()
        write(tmp_path / f"s{seed}" / "metrics.csv", accuracies)
    assert tta.main(["--runs", f"fast={tmp_path / 's0'}", f"fast={tmp_path / 's1'}"]) == 0
    mean_line = capsys.readouterr().out.splitlines()[-1]
    assert "mean of 2" in mean_line and "55,000" in mean_line and "1 of 2 runs" in mean_line


def test_bad_runs_get_one_line(tmp_path, capsys):
    assert tta.main(["--runs", str(tmp_path)]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert tta.main(["--runs", f"fast={tmp_path / 'missing'}"]) == 2
    assert "no metrics at" in capsys.readouterr().err


def test_it_trains_both_recipes_and_resumes_instead_of_retraining(tmp_path, mnist_root, capsys):
    argv = ["--seeds", "0", "--out", str(tmp_path), "--paper-epochs", "1", "--train-limit", "16",
            "--val-limit", "16", "--warmup-steps", "2", "--data-root", str(mnist_root), "--device", "cpu"]
    assert tta.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["paper", "fast", "paper", "fast"]
    fast_rows = tta.read_metrics(tmp_path / "fast" / "seed0")
    assert len(fast_rows) == 6 and fast_rows[-1]["lr"] == 0.0               # the fast recipe, annealed to 0
    before = (tmp_path / "fast" / "seed0" / "last.pt").stat().st_mtime_ns
    assert tta.main(argv) == 0
    assert (tmp_path / "fast" / "seed0" / "last.pt").stat().st_mtime_ns == before


def test_it_adds_the_averaged_candidate_trains_ensembles_and_tests_each_run_once(tmp_path, mnist_root, capsys):
    argv = ["--seeds", "0", "1", "--out", str(tmp_path), "--paper-epochs", "1", "--train-limit", "16",
            "--val-limit", "16", "--warmup-steps", "2", "--data-root", str(mnist_root), "--device", "cpu",
            "--ema", "0.9", "--test", "--test-limit", "20", "--ensemble"]
    assert tta.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["paper"] * 2 + ["fast"] * 2 + ["fast-ema"] * 2 + [
        "paper", "fast", "fast-ema"]
    assert "live_val_accuracy" in (tmp_path / "fast-ema" / "seed1" / "metrics.csv").read_text()
    for name in ("paper", "fast", "fast-ema"):
        test = tta.test_accuracy(tmp_path / name / "seed0")
        assert test is not None and f"{test:.2%}" in lines[1 + ["paper", "fast", "fast-ema"].index(name) * 2]
    tested = (tmp_path / "fast" / "seed0" / "test.json").stat().st_mtime_ns
    assert tta.main(argv) == 0                                  # finished runs are read, tested once
    assert (tmp_path / "fast" / "seed0" / "test.json").stat().st_mtime_ns == tested


def test_unreadable_metrics_get_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "no_val.csv").write_text("epoch,train_loss\n1,0.3\n")
    (tmp_path / "word.csv").write_text("epoch,val_accuracy\n1,high\n")
    for name, message in (("empty.csv", "it has no rows"), ("no_val.csv", "no val_accuracy"), ("word.csv", "not a number")):
        assert tta.main(["--runs", f"fast={tmp_path / name}"]) == 2
        err = capsys.readouterr().err
        assert name in err and message in err and "Traceback" not in err


def test_seeds_and_test_limits_are_checked_before_any_training(tmp_path, capsys):
    for extra, message in ((["--seeds", "0", "0"], "repeats a seed"),
                           (["--test", "--test-limit", "-5"], "must be in 1..10,000"),
                           (["--test", "--test-limit", "0"], "must be in 1..10,000"),
                           (["--test", "--test-limit", "20000"], "must be in 1..10,000"),
                           (["--test-limit", "50"], "goes with --test")):
        assert tta.main(["--out", str(tmp_path / "out"), "--device", "cpu"] + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    run = write(tmp_path / "m.csv", [0.99])
    assert tta.main(["--runs", f"fast={run}", f"fast={run}"]) == 2
    assert "names a run twice" in capsys.readouterr().err


def test_a_test_json_of_an_earlier_best_pt_is_not_shown_as_this_runs(tmp_path, capsys):
    import json
    import torch
    from capsnet_lib import CapsNet
    from capsnet_lib.training.checkpoint import save_checkpoint, tensor_checksum
    write(tmp_path / "metrics.csv", [0.99])
    torch.manual_seed(0)
    earlier = CapsNet(routing_iterations=1, reconstruction=False)
    (tmp_path / "test.json").write_text(json.dumps({"test_errors": 123, "test_images": 10000, "test_error_percent": 1.23,
                                                    "checkpoint_checksum": tensor_checksum(earlier.state_dict())}))
    save_checkpoint(tmp_path / "best.pt", earlier, epoch=1, val_accuracy=0.99)
    assert tta.test_accuracy(tmp_path) == 1 - 0.0123                       # it describes this best.pt
    save_checkpoint(tmp_path / "best.pt", CapsNet(routing_iterations=1, reconstruction=False), epoch=1, val_accuracy=0.99)
    assert tta.test_accuracy(tmp_path) is None
    assert tta.main(["--runs", f"fast={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "98.77%" not in out and "describes an earlier best.pt" in out
