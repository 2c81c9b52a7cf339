"""The parts of the ft-v2 recipe, each against a hand computation or an independent formulation:
BatchNorm re-estimation, the schedule, divergence detection, selection / SE / convergence, the
linear probe's head packing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from zoorank.compute.finetune import (Budget, TrialParams, binomial_se, choose_point, lr_to_extend, next_seeds, unstable_points, eval_points, fit_probe, head_array,
                              head_from_array, lr_factor, pair_ground_truth, reestimate_bn, select_best,
                              val_change_last20)
from zoorank.compute.finetune.trial import blew_up


# ------------------------------------------------------------------ BatchNorm re-estimation
def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 5, 3),
                        nn.BatchNorm2d(5), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():   # pretrained-looking running statistics, far from this data's
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(7.0)
                m.num_batches_tracked.fill_(1000)
    return net


def _images(n=24, side=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_bn_reestimation_changes_running_statistics_and_nothing_else():
    from zoorank.compute.finetune.data import to_input

    net, x = _bn_net(), _images()
    params = {k: v.clone() for k, v in net.named_parameters()}
    momenta = [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    bn0 = net[1]
    acts = []
    hook = bn0.register_forward_hook(lambda m, i, o: acts.append(i[0].detach().clone()))
    net.eval()
    with torch.no_grad():
        net(to_input(x, (10, 10), "cpu"))          # the first BN's input does not depend on any BN
    hook.remove()
    assert reestimate_bn(net, x, (10, 10), "cpu", batch_size=8) == 2
    for k, v in net.named_parameters():
        assert torch.equal(v, params[k]), k        # parameters bit-identical
    assert [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    assert not net.training and all(not m.training for m in net.modules())
    # cumulative average of per-batch statistics (3 equal batches of 8): the mean of the batch means
    # (= the overall mean) and the mean of the unbiased batch variances
    a = acts[0]
    batches = a.split(8)
    want_mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    want_var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn0.running_mean, want_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn0.running_mean, a.mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn0.running_var, want_var, rtol=1e-5, atol=1e-5)
    assert int(bn0.num_batches_tracked) == 3
    assert not torch.allclose(net[5].running_mean, torch.full((5,), 3.0))   # the deeper one changed too


def test_bn_reestimation_is_a_no_op_without_batchnorm():
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert reestimate_bn(net, _images(4), (10, 10), "cpu") == 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


# ------------------------------------------------------------------ schedule
def test_warmup_then_cosine_by_hand():
    # 10 steps, warm-up ceil(0.2 * 10) = 2 steps: 1/2, 2/2, then cos over the remaining 8
    f = [lr_factor(s, 10, 0.2) for s in range(10)]
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0)
    assert f[2] == pytest.approx(1.0)
    assert f[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))      # = 0.5
    assert lr_factor(10, 10, 0.2) == pytest.approx(0.0)
    assert [lr_factor(s, 4, 0.0) for s in range(4)] == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)])


def test_eval_points_include_80_percent_and_end():
    assert eval_points(Budget(steps=80, eval_every=40)) == [40, 64, 80]
    assert eval_points(Budget(steps=10)) == [8, 10]
    assert eval_points(Budget(steps=1)) == [1]


def test_blow_up_rule():
    k = 10
    assert not blew_up([0.3] * 10 + [30.0], k, 1.5)                   # one spike: mean 3.27 < 3.45
    assert blew_up([0.3] * 10 + [30.0], k, 1.5, window=1)
    assert not blew_up([100.0], k, 1.5, window=1)                      # no loss after the first yet
    assert not blew_up([0.3] * 20, k, 1.5)
    assert not blew_up([0.3] + [1.4 * math.log(k)] * 10, k, 1.5)      # below 1.5 ln K
    assert blew_up([0.3] + [1.6 * math.log(k)] * 10, k, 1.5)
    assert not blew_up([5.0] + [7.0] * 10, k, 1.5)                    # a high first loss raises the bar
    # spikes of a stochastic train-mode forward (lite1 / mnist5k, lr 1e-5): mean 6.3 > 3.45, median 0.69
    spiky = [0.36, 0.54, 0.43, 0.32, 0.96, 11.24, 0.47, 0.32, 0.42, 11.03, 2.16, 0.44, 0.72, 0.66, 35.84]
    assert np.mean(spiky[-10:]) > 1.5 * math.log(k) and not blew_up(spiky, k, 1.5)
    assert blew_up(spiky[:5] + [5.0] * 10, k, 1.5)                     # a sustained rise still fires


@pytest.mark.parametrize("seed", range(20))
def test_blow_up_rule_fires_only_where_the_mean_rule_fired(seed):
    """The median only adds a condition: a trial the mean-only rule let finish is unchanged."""
    rng = np.random.default_rng(seed)
    losses = list(rng.lognormal(0.0, 1.5, size=60))
    bar = 1.5 * max(math.log(10), losses[0])
    for i in range(11, 61):
        if blew_up(losses[:i], 10, 1.5):
            assert np.mean(losses[i - 10:i]) > bar


def test_stale_divergence_only_for_a_blow_up_the_rule_no_longer_sees():
    from zoorank.compute.finetune import stale_divergence

    b = Budget(steps=80)
    spiky = [0.36, 0.54, 0.43, 0.32, 0.96, 11.24, 0.47, 0.32, 0.42, 11.03, 2.16, 0.44, 0.72, 0.66, 35.84]
    rec = {"diverged": True, "diverged_reason": "loss blow-up at step 15 (mean of last 10 6.33 > ...)",
           "n_classes": 10, "train_loss": [[i + 1, v] for i, v in enumerate(spiky)]}
    assert stale_divergence(rec, b)
    rising = spiky[:5] + [6.0] * 10
    assert not stale_divergence(rec | {"train_loss": [[i + 1, v] for i, v in enumerate(rising)]}, b)
    assert not stale_divergence(rec | {"diverged_reason": "non-finite loss at step 3"}, b)
    assert not stale_divergence(rec | {"diverged": False, "diverged_reason": ""}, b)


def test_blow_up_window_shrinks_for_short_runs():
    from zoorank.compute.finetune.trial import blowup_window

    assert [blowup_window(s) for s in (1, 3, 8, 20, 80)] == [1, 1, 4, 10, 10]


def test_budget_rejects_bad_knobs():
    with pytest.raises(ValueError, match="bn"):
        Budget(bn="sometimes")
    with pytest.raises(ValueError, match="head_init"):
        Budget(head_init="zeros")
    with pytest.raises(ValueError, match="warmup_frac"):
        Budget(warmup_frac=1.0)
    assert Budget.from_dict(Budget.cpu().as_dict()) == Budget.cpu()


# ------------------------------------------------------------------ selection, SE, convergence
def _t(seed, lr, val, test, *, diverged=False, curve=None, n_val=100, n_test=400, wd=0.0):
    return dict(seed=seed, lr=lr, wd=wd, val_top1=float("nan") if diverged else val, val_mean_class=val,
                test_top1=float("nan") if diverged else test, test_mean_class=test, diverged=diverged,
                diverged_reason="non-finite loss at step 3" if diverged else "",
                val_curve=curve if curve is not None else [(8, val), (10, val)], n_val=n_val, n_test=n_test)


def test_diverged_trials_are_excluded_never_scored_zero():
    trials = [_t(0, 1e-2, 0.9, 0.5, diverged=True), _t(0, 3e-3, 0.6, 0.7), _t(0, 1e-3, 0.7, 0.65)]
    assert select_best(trials)["lr"] == 1e-3
    assert choose_point(trials) == (1e-3, 0.0)
    gt = pair_ground_truth(trials + [_t(1, 1e-3, 0.72, 0.69), _t(2, 1e-3, 0.7, 0.71, diverged=True)])
    assert gt["n_diverged"] == 2 and gt["n_seeds"] == 2 and gt["best_lr"] == 1e-3
    assert gt["seeds_run"] == 3          # seed 2 ran at the chosen lr and diverged: counted, not averaged
    assert gt["test_top1"] == pytest.approx((0.65 + 0.69) / 2)
    everything = pair_ground_truth([_t(0, 1e-2, 0, 0, diverged=True), _t(0, 1e-3, 0, 0, diverged=True)])
    assert math.isnan(everything["test_top1"]) and everything["n_seeds"] == 0 and everything["n_diverged"] == 2
    assert everything["seeds_run"] == 0
    with pytest.raises(ValueError, match="all diverged"):
        select_best([_t(0, 1e-2, 0, 0, diverged=True)])


def test_lr_chosen_at_first_seed_ties_to_smaller_lr_and_se_by_hand():
    trials = [_t(0, 1e-2, 0.8, 0.8), _t(0, 1e-3, 0.8, 0.7), _t(1, 1e-3, 0.5, 0.8), _t(2, 1e-3, 0.5, 0.75),
              _t(1, 1e-2, 0.99, 0.99)]          # seed 1 at another lr is never used
    gt = pair_ground_truth(trials)
    assert gt["best_lr"] == 1e-3 and gt["seeds"] == [0, 1, 2]
    accs = np.array([0.7, 0.8, 0.75])
    p = accs.mean()
    se_seeds = accs.std(ddof=1) / math.sqrt(3)
    se_test = math.sqrt(p * (1 - p) / 400)
    assert gt["test_top1"] == pytest.approx(0.75)
    assert gt["se_seeds"] == pytest.approx(se_seeds) and gt["se_test"] == pytest.approx(se_test)
    assert gt["se"] == pytest.approx(math.sqrt(se_seeds ** 2 + se_test ** 2))
    assert binomial_se(1.0, 100) == pytest.approx(math.sqrt(1 / 100 / 100))   # floored, never 0


def test_grid_extends_upward_only_while_its_largest_lr_wins():
    up = (3e-2, 1e-1)
    top_wins = [_t(0, 1e-3, 0.6, 0.6), _t(0, 1e-2, 0.8, 0.8)]
    assert lr_to_extend(top_wins, up) == (3e-2, 0.0)
    assert lr_to_extend(top_wins + [_t(0, 3e-2, 0.7, 0.7)], up) is None          # the extension lost
    assert lr_to_extend(top_wins + [_t(0, 3e-2, 0.9, 0.9)], up) == (1e-1, 0.0)   # won: the next one
    assert lr_to_extend(top_wins + [_t(0, 3e-2, 0.9, 0.9), _t(0, 1e-1, 0.95, 0.9)], up) is None  # none left
    assert lr_to_extend(top_wins + [_t(0, 3e-2, 0, 0, diverged=True)], up) is None     # diverged: 1e-2 stays
    assert lr_to_extend([_t(0, 1e-3, 0.8, 0.8), _t(0, 1e-2, 0.7, 0.7)], up) is None     # a smaller lr won
    assert lr_to_extend([_t(0, 1e-3, 0.8, 0.8), _t(0, 1e-2, 0.8, 0.7)], up) is None     # tie: smaller lr
    assert lr_to_extend(top_wins, (1e-2, 5e-3)) is None                # nothing above the grid
    assert lr_to_extend(top_wins, ()) is None
    assert lr_to_extend([_t(0, 1e-3, 0, 0, diverged=True)], up) is None
    # only the first seed's grid counts: seed 1 at a larger lr is not part of it
    assert lr_to_extend(top_wins + [_t(1, 3e-2, 0.99, 0.99)], up) == (3e-2, 0.0)
    assert lr_to_extend([_t(0, 1e-2, 0.8, 0.8, wd=1e-4), _t(0, 1e-2, 0.7, 0.7)], up) == (3e-2, 1e-4)


def test_an_lr_where_most_seeds_diverge_is_dropped_and_the_planned_seeds_run_at_the_next():
    grid = [_t(0, 1e-3, 0.7, 0.7), _t(0, 1e-2, 0.8, 0.8), _t(0, 3e-2, 0.9, 0.9)]
    assert choose_point(grid) == (3e-2, 0.0) and next_seeds(grid, [0, 1, 2]) == [1, 2]
    one_lost = grid + [_t(1, 3e-2, 0.9, 0.9), _t(2, 3e-2, 0, 0, diverged=True)]
    assert unstable_points(one_lost) == set() and choose_point(one_lost) == (3e-2, 0.0)   # 1 of 3: kept
    two_lost = grid + [_t(1, 3e-2, 0, 0, diverged=True), _t(2, 3e-2, 0, 0, diverged=True)]
    assert unstable_points(two_lost) == {(3e-2, 0.0)}
    assert choose_point(two_lost) == (1e-2, 0.0)                  # the next best on val at seed 0
    assert lr_to_extend(two_lost, (3e-2,)) is None                # ... and 3e-2 is not tried again
    assert next_seeds(two_lost, [0, 1, 2]) == [1, 2]              # planned seeds at the new point
    moved = two_lost + [_t(1, 1e-2, 0.8, 0.81), _t(2, 1e-2, 0.8, 0.79)]
    gt = pair_ground_truth(moved)
    assert gt["best_lr"] == 1e-2 and gt["seeds"] == [0, 1, 2] and gt["test_top1"] == pytest.approx(0.8)
    assert next_seeds(moved, [0, 1, 2]) == []
    # a tie (1 of 2 diverged) is not a majority; a repeated seed counts once (its first record)
    assert unstable_points([_t(0, 1e-2, 0.8, 0.8), _t(1, 1e-2, 0, 0, diverged=True)]) == set()
    assert unstable_points([_t(0, 1e-2, 0.8, 0.8), _t(1, 1e-2, 0, 0, diverged=True),
                            _t(1, 1e-2, 0, 0, diverged=True)]) == set()


def test_more_seeds_only_while_they_can_bring_the_se_under_target():
    base = [_t(0, 1e-3, 0.6, 0.6), _t(0, 1e-2, 0.8, 0.8)]
    planned = [0, 1, 2]
    # seed spread over target, test term under it: 0.8 +- 0.05 over 3 seeds, n_test 4000 (se_test 0.6 pt)
    spread = base + [_t(1, 1e-2, 0.8, 0.75, n_test=4000), _t(2, 1e-2, 0.8, 0.85, n_test=4000)]
    spread[1] = _t(0, 1e-2, 0.8, 0.8, n_test=4000)
    gt = pair_ground_truth(spread)
    assert gt["se_seeds"] == pytest.approx(0.05 / math.sqrt(3)) and gt["se"] > 0.02 > gt["se_test"]
    assert next_seeds(spread, planned, max_seeds=5) == [3]
    assert next_seeds(spread, planned) == [] and next_seeds(spread, planned, max_seeds=3) == []
    four = spread + [_t(3, 1e-2, 0.8, 0.8, n_test=4000)]
    assert next_seeds(four, planned, max_seeds=5) == [4] and next_seeds(four, planned, max_seeds=4) == []
    # the test term alone is over target (n_test 400 at p = 0.8: 2.0 pts): more seeds cannot help
    test_bound = base + [_t(1, 1e-2, 0.8, 0.75), _t(2, 1e-2, 0.8, 0.85)]
    assert pair_ground_truth(test_bound)["se_test"] == pytest.approx(0.02) and \
        next_seeds(test_bound, planned, max_seeds=5, se_target=0.0199) == []
    # under target: nothing more
    tight = base + [_t(1, 1e-2, 0.8, 0.8, n_test=4000), _t(2, 1e-2, 0.8, 0.8, n_test=4000)]
    tight[1] = _t(0, 1e-2, 0.8, 0.8, n_test=4000)
    assert next_seeds(tight, planned, max_seeds=5) == []
    # a diverged seed (1 of 3, the point kept) is replaced by the next seed, up to max_seeds
    lost = tight + [_t(2, 1e-2, 0, 0, diverged=True)]
    lost = [t for i, t in enumerate(lost) if i != 3]           # seed 2's only record: diverged
    assert pair_ground_truth(lost)["n_seeds"] == 2 and next_seeds(lost, planned, max_seeds=5) == [3]
    assert next_seeds(lost, planned, max_seeds=3) == []
    assert next_seeds([_t(0, 1e-2, 0, 0, diverged=True)], planned, max_seeds=5) == []   # no point


def test_convergence_flag_compares_last_20_percent_with_val_se():
    still = _t(0, 1e-3, 0.80, 0.8, curve=[(5, 0.5), (8, 0.79), (10, 0.80)])
    moving = _t(0, 1e-3, 0.80, 0.8, curve=[(5, 0.5), (8, 0.60), (10, 0.80)])
    assert val_change_last20(still) == pytest.approx(0.01)
    assert pair_ground_truth([still])["converged"] is True        # 0.01 < sqrt(.8 * .2 / 100) = 0.04
    gt = pair_ground_truth([moving])
    assert gt["converged"] is False and gt["val_change_last20"] == pytest.approx(0.2)


# ------------------------------------------------------------------ linear probe
def test_probe_head_packing_round_trips():
    rng = np.random.default_rng(1)
    head = {"mean": rng.normal(size=6).tolist(), "scale": rng.uniform(1, 2, 6).tolist(),
            "weight": rng.normal(size=(3, 6)).tolist(), "bias": rng.normal(size=3).tolist()}
    back = head_from_array(head_array(head))
    for k in head:
        np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(head[k]))


def test_probe_binary_and_absent_classes_give_a_k_class_head():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 2], 20)                      # class 1 absent from training
    z = rng.normal(size=(40, 5)) + 3.0 * (y == 2)[:, None]
    c, w, b, by_c = fit_probe(z, y, z, y, 3, cs=(0.1, 1.0))
    assert w.shape == (3, 5) and b.shape == (3,) and set(by_c) == {"0.1", "1.0"}
    pred = np.argmax(z @ w.T + b, axis=1)
    assert set(np.unique(pred)) <= {0, 2} and np.mean(pred == y) > 0.95
    from sklearn.linear_model import LogisticRegression   # binary: the same decision as sklearn's
    ref = LogisticRegression(C=c, max_iter=300, tol=1e-4).fit(z, y)
    np.testing.assert_array_equal(np.where(pred == 2, 2, 0), ref.predict(z))


def test_trial_params_are_plain_data():
    assert TrialParams(1e-3, 0.0, 2).as_dict() == {"lr": 1e-3, "wd": 0.0, "seed": 2}
