"""``zoorank ground-truth`` arguments -> budget, grid, seeds; the table writer's rows and header."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from zoorank.cli import build_parser
from zoorank.compute.finetune import CPU_GRID, FULL_GRID, Budget
from zoorank.cli.ground_truth import budget_from_args, budget_groups, lrs_up_from_args, max_seeds_from_args, protocol_lines


def _args(*argv):
    return build_parser().parse_args(["ground-truth", *argv])


def test_presets_and_explicit_knobs():
    budget, grid, seeds = budget_from_args(_args("--preset", "cpu", "--dataset", "digits"))
    assert budget == Budget.cpu() and grid == list(CPU_GRID) and seeds == [0, 1, 2]
    budget, grid, seeds = budget_from_args(_args("--preset", "cpu", "--steps", "6", "--train-per-class", "4",
                                                 "--bn", "reestimate", "--lrs", "0.5"))
    assert budget.steps == 6 and budget.train_per_class == 4 and budget.bn == "reestimate"
    assert budget.head_init == "probe" and budget.test_per_class == 60           # the rest: the preset's
    assert grid == [(0.5, 0.0)]
    args = _args("--preset", "full", "--device", "cuda", "--dataset", "digits")
    budget, grid, seeds = budget_from_args(args)
    assert budget == Budget.full() and grid == list(FULL_GRID) and seeds == [0, 1, 2] and args.device == "cuda"
    budget, grid, seeds = budget_from_args(_args("--steps", "3", "--seeds", "4,5"))
    assert budget == Budget(steps=3) and seeds == [4, 5] and len(grid) == 20


def test_cpu_preset_trains_listed_datasets_longer_and_steps_for_overrides():
    from zoorank.compute.finetune import CPU_STEPS_FOR, cpu_budget_for

    args = _args("--preset", "cpu", "--dataset", "digits", "--dataset", "emoji", "--dataset", "mnist5k")
    budget, _, _ = budget_from_args(args)
    groups = budget_groups(args, budget, args.dataset)
    assert groups == {cpu_budget_for("digits"): ["digits"], cpu_budget_for("emoji"): ["emoji"],
                      Budget.cpu(): ["mnist5k"]}
    assert cpu_budget_for("digits").steps == CPU_STEPS_FOR["digits"] > Budget.cpu().steps
    assert cpu_budget_for("mnist5k") == Budget.cpu()
    # an explicit --steps is every dataset's; --steps-for sets one
    args = _args("--preset", "cpu", "--steps", "9", "--steps-for", "emoji=3", "--dataset", "digits", "--dataset", "emoji")
    budget, _, _ = budget_from_args(args)
    assert {b.steps: ds for b, ds in budget_groups(args, budget, args.dataset).items()} == {9: ["digits"], 3: ["emoji"]}
    for bad, match in ((["--steps-for", "emoji"], "DATASET=STEPS"), (["--steps-for", "emoji=0"], "positive"),
                       (["--steps-for", "cifar=5"], "cifar not among --dataset")):
        args = _args("--preset", "cpu", "--dataset", "emoji", *bad)
        with pytest.raises(ValueError, match=match):
            budget_groups(args, budget_from_args(args)[0], args.dataset)
    lines = protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml", {"digits": 160, "emoji": 80})
    assert "80 steps (digits: 160) of batch 16" in lines[1]


def test_cpu_preset_caps_listed_test_splits_higher_unless_test_per_class_is_given():
    from zoorank.compute.finetune import CPU_TEST_PER_CLASS_FOR, cpu_budget_for

    emoji = cpu_budget_for("emoji")
    assert emoji.test_per_class == CPU_TEST_PER_CLASS_FOR["emoji"] > Budget.cpu().test_per_class
    # only the test cap moves: train and validation (what a trial learns and selects on) are the preset's
    assert dataclasses.replace(emoji, test_per_class=Budget.cpu().test_per_class) == Budget.cpu()
    args = _args("--preset", "cpu", "--dataset", "emoji", "--dataset", "fashion_mnist")
    groups = budget_groups(args, budget_from_args(args)[0], args.dataset)
    assert {b.test_per_class: ds for b, ds in groups.items()} == {100: ["emoji"], 60: ["fashion_mnist"]}
    args = _args("--preset", "cpu", "--test-per-class", "30", "--dataset", "emoji", "--dataset", "fashion_mnist")
    groups = budget_groups(args, budget_from_args(args)[0], args.dataset)
    assert {b.test_per_class: ds for b, ds in groups.items()} == {30: ["emoji", "fashion_mnist"]}
    lines = protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml", None, (),
                           {"emoji": 100, "fashion_mnist": 60})
    assert "capped at 40/20/60 (emoji: 100) images per class (train/val/test)" in lines[1]


def test_the_seed_ceiling_is_the_presets_unless_given():
    from zoorank.compute.finetune import CPU_MAX_SEEDS

    assert max_seeds_from_args(_args("--preset", "cpu"), [0, 1, 2]) == CPU_MAX_SEEDS == 15
    assert max_seeds_from_args(_args("--preset", "cpu"), list(range(16))) is None   # already more seeds
    assert max_seeds_from_args(_args("--preset", "full"), [0, 1, 2]) is None
    assert max_seeds_from_args(_args("--preset", "cpu", "--max-seeds", "none"), [0, 1, 2]) is None
    assert max_seeds_from_args(_args("--max-seeds", "4"), [0, 1, 2]) == 4
    for bad in ("2", "x", "-1"):
        with pytest.raises(ValueError, match="--max-seeds"):
            max_seeds_from_args(_args("--max-seeds", bad), [0, 1, 2])
    lines = protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml", max_seeds=5)
    assert "more (up to 5) while fewer than 3 survive or seed spread keeps SE > 2 pts" in lines[1]
    assert "up to" not in protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml")[1]


def test_lr_grid_extension_is_the_presets_unless_given():
    from zoorank.compute.finetune import CPU_LRS_UP

    assert lrs_up_from_args(_args("--preset", "cpu")) == list(CPU_LRS_UP) == [3e-2]
    assert lrs_up_from_args(_args("--preset", "full")) == [] and lrs_up_from_args(_args()) == []
    assert lrs_up_from_args(_args("--preset", "cpu", "--lrs-up", "none")) == []
    assert lrs_up_from_args(_args("--preset", "full", "--lrs-up", "0.3,1")) == [0.3, 1.0]
    for bad in ("abc", "-0.1", ","):
        with pytest.raises(ValueError, match="--lrs-up"):
            lrs_up_from_args(_args("--lrs-up", bad))
    line = protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml", lrs_up=[3e-2])[1]
    assert "lr grid [0.001, 0.003, 0.01] at seed 0, extended by [0.03] while its largest lr wins on val" in line
    assert "extended" not in protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "z.yaml")[1]


def test_ground_truth_needs_something_to_do(capsys, tmp_path):
    from zoorank.cli import main

    assert main(["ground-truth", "--home", str(tmp_path / "zr")]) == 2
    assert "give --dataset" in capsys.readouterr().err


def _trial(seed, lr, val, test, diverged=False):
    meta = {"model": "m", "dataset": "d", "identity": "m@1", "data_fingerprint": "f", "split_seed": 0,
            "recipe": "ft-v2", "n_classes": 4, "budget": {"steps": 10}}
    nan = float("nan")
    return meta | dict(seed=seed, lr=lr, wd=0.0, val_top1=nan if diverged else val, val_mean_class=val,
                       test_top1=nan if diverged else test, test_mean_class=test, diverged=diverged,
                       diverged_reason="non-finite loss at step 2" if diverged else "",
                       val_curve=[(8, val), (10, val)], n_val=40, n_test=80, seconds=2.0, input_size=[16, 16])


def test_table_from_records_and_header(tmp_path):
    from zoorank.pipeline.ground_truth_records import ground_truth_table, write_table

    records = [("gt_trial/a", _trial(0, 1e-2, 0.3, 0.3, diverged=True)), ("gt_trial/b", _trial(0, 1e-3, 0.3, 0.27)),
               ("gt_trial/c", _trial(1, 1e-3, 0.3, 0.26)), ("gt_trial/d", _trial(2, 1e-3, 0.3, 0.28)),
               ("gt_probe/e", {**_trial(0, 0, 0, 0), "test_top1": 0.25, "test_mean_class": 0.25,
                               "val_top1": 0.3, "C": 1.0, "seconds": 1.5})]
    df = ground_truth_table(records, budget={"steps": 10})
    assert len(df) == 1
    row = df.iloc[0]
    assert row["test_top1"] == pytest.approx(0.27) and row["n_diverged"] == 1 and row["n_seeds"] == 3
    assert row["lp_test_top1"] == 0.25 and row["chance"] == 0.25 and row["trial_seconds"] == 8.0
    assert "within 1 SE of chance" in row["note"] and "non-finite loss" in row["note"]
    assert ground_truth_table(records, budget={"steps": 11}).empty
    out = tmp_path / "gt.csv"
    write_table(df, out, protocol_lines(Budget.cpu(), list(CPU_GRID), [0, 1, 2], "zoo.yaml"))
    text = out.read_text()
    assert text.startswith("# zoorank ground truth (recipe ft-v2") and "# Command: zoorank" in text
    assert "# Compute spent: 10 s" in text
    back = pd.read_csv(out, comment="#")
    assert back["test_top1"].iloc[0] == pytest.approx(0.27) and not math.isnan(back["se"].iloc[0])


def test_a_pair_above_the_se_target_says_why():
    from zoorank.pipeline.ground_truth_records import SE_TARGET, se_note

    # test-set noise: p = 0.45 on 507 images is sqrt(0.45 * 0.55 / 507) = 2.21 points by itself
    se_test = math.sqrt(0.45 * 0.55 / 507)
    gt = {"se": se_test, "se_test": se_test, "se_seeds": 0.001, "n_test": 507, "n_seeds": 3}
    assert se_test > SE_TARGET
    assert se_note(gt, 20, 60) == ("SE 2.21 pts > 2, mostly test-set noise (n_test 507, below the cap of 1200: every "
                                   "test image the dataset gives at this split)")
    assert se_note(gt, 5, 60) == "SE 2.21 pts > 2, mostly test-set noise (n_test 507)"          # the cap binds
    seeds = {"se": 0.0265, "se_test": 0.018, "se_seeds": 0.0194, "n_test": 600, "n_seeds": 2}
    assert se_note(seeds, 10, 60) == "SE 2.65 pts > 2, mostly seed spread (2 seeds, SE over seeds 1.9 pts)"
    assert se_note({"se": 0.0199, "se_test": 0.0199, "se_seeds": 0.0, "n_test": 620, "n_seeds": 3}, 2, 600) == ""
    assert se_note({"se": float("nan")}, 2, 60) == ""


def test_table_leaves_out_a_blow_up_the_current_rule_does_not_see():
    from zoorank.pipeline.ground_truth_records import ground_truth_table

    good = [("gt_trial/b", _trial(0, 1e-3, 0.3, 0.27)), ("gt_trial/c", _trial(1, 1e-3, 0.3, 0.26))]
    spiky = [0.3] * 4 + [30.0] + [0.3] * 6              # window 5 at 10 steps: mean 6.2 > 3 x 1.5, median 0.3
    stale = _trial(0, 1e-4, 0.3, 0.3, diverged=True) | {
        "diverged_reason": "loss blow-up at step 11 (...)", "train_loss": [[i + 1, v] for i, v in enumerate(spiky)]}
    rising = stale | {"train_loss": [[i + 1, v] for i, v in enumerate([0.3] * 4 + [9.0] * 7)]}
    base = ground_truth_table(good, budget={"steps": 10}).iloc[0]
    with_stale = ground_truth_table(good + [("gt_trial/s", stale)], budget={"steps": 10}).iloc[0]
    assert with_stale["n_trials"] == base["n_trials"] == 2 and with_stale["n_diverged"] == 0
    kept = ground_truth_table(good + [("gt_trial/r", rising)], budget={"steps": 10}).iloc[0]
    assert kept["n_trials"] == 3 and kept["n_diverged"] == 1


def test_rank_agreement_is_kendall_per_dataset_on_common_models():
    from zoorank.pipeline.ground_truth_records import rank_agreement

    a = pd.DataFrame({"dataset": ["d"] * 4 + ["e"] * 2, "model": list("abcd") + list("ab"),
                      "test_top1": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]})
    b = pd.DataFrame({"dataset": ["d"] * 3 + ["e"] * 2, "model": list("abc") + list("ab"),
                      "test_top1": [0.95, 0.7, 0.75, 0.1, 0.2]})
    out = rank_agreement(a, b).set_index("dataset")
    # d on a, b, c: pairs (a,b) concordant, (a,c) concordant, (b,c) discordant -> (2 - 1) / 3
    assert out.loc["d", "n_models"] == 3 and out.loc["d", "kendall"] == pytest.approx(1 / 3)
    assert out.loc["e", "kendall"] == pytest.approx(-1.0)


def test_compute_is_thread_cpu_time_where_recorded_else_wall_time():
    from zoorank.pipeline.ground_truth_records import record_seconds

    assert record_seconds({"seconds": 9.0, "cpu_seconds": 4.0}) == 4.0     # a loaded machine's wall time
    assert record_seconds({"seconds": 9.0}) == 9.0                         # records before cpu_seconds
    assert record_seconds({"seconds": 9.0, "cpu_seconds": 0.0}) == 9.0     # (a default, not a measurement)
    assert record_seconds(None) == 0.0
