"""The fine-tuning recipe behind the ground truth (recipe ft-v2, ``docs/ground_truth.md``).

* :mod:`.budget`    -- :class:`Budget` (every knob; the ``cpu`` and ``full`` presets), grids, seeds
* :mod:`.data`      -- seeded stratified train / val / test subsets, input size, prediction
* :mod:`.bn`        -- BatchNorm running statistics re-estimated on the training images
* :mod:`.probe`     -- the linear probe (LP-FT's head, and a second ground truth)
* :mod:`.trial`     -- one fine-tuning trial (warm-up + cosine, clipping, divergence detection)
* :mod:`.selection` -- lr selection without diverged trials, mean and SE over seeds, convergence

The science only: no Prefect, Zarr or MLflow (the flow is ``zoorank.orchestration.flows.ground_truth``).
"""
from .bn import batchnorm_layers, reestimate_bn, set_train_mode
from .budget import (CPU_GRID, CPU_LRS, CPU_LRS_UP, CPU_MAX_SEEDS, CPU_SEEDS, CPU_STEPS_FOR, CPU_TEST_PER_CLASS_FOR, FULL_GRID, FULL_LRS, FULL_WDS, RECIPE_VERSION, Budget,
                     TrialParams, cpu_budget_for, per_dataset_text, steps_text)
from .data import SplitData, accuracies, input_size_for, predict, prepare_splits
from .probe import ProbeResult, fit_probe, head_array, head_from_array, linear_probe
from .selection import (SE_TARGET, binomial_se, choose_point, lr_to_extend, next_seeds, pair_ground_truth,
                        select_best, unstable_points, val_change_last20)
from .trial import Classifier, TrialResult, eval_points, lr_factor, prepare_backbone, run_trial, stale_divergence

__all__ = ["Budget", "TrialParams", "RECIPE_VERSION", "FULL_GRID", "FULL_LRS", "FULL_WDS", "CPU_GRID", "CPU_LRS", "CPU_LRS_UP",
           "CPU_SEEDS", "CPU_MAX_SEEDS", "CPU_STEPS_FOR", "CPU_TEST_PER_CLASS_FOR", "cpu_budget_for", "per_dataset_text", "steps_text", "SplitData", "prepare_splits", "input_size_for", "predict", "accuracies",
           "reestimate_bn", "batchnorm_layers", "set_train_mode", "ProbeResult", "fit_probe", "head_array", "head_from_array", "linear_probe",
           "Classifier", "TrialResult", "run_trial", "stale_divergence", "prepare_backbone", "lr_factor", "eval_points",
           "select_best", "choose_point", "lr_to_extend", "next_seeds", "unstable_points", "SE_TARGET", "pair_ground_truth", "binomial_se", "val_change_last20"]
