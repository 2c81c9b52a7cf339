"""One fine-tuning trial: backbone + linear head, every parameter trained.

Steps (``docs/ground_truth.md``): a private copy of the pretrained backbone; BatchNorm running
statistics re-estimated on the training images at the trial's resolution (``bn="reestimate"``,
:mod:`.bn`) and then frozen; the head initialised by the linear probe on standardised features
(``head_init="probe"``, :mod:`.probe`; LP-FT, Kumar et al., ICLR 2022) or at random (nn.Linear's
init, the literature); SGD with Nesterov momentum 0.9, a linear warm-up over ``warmup_frac`` of
the steps then a cosine to 0 (per step), weight decay (``wd_mode``: ``coupled`` = PyTorch's L2 as
given, ``sfda`` = ``wd / lr`` as SFDA's public code passes it), global gradient-norm clipping.

Divergence: a non-finite loss or gradient norm, or a sustained blow-up -- both the mean and the
median of the last 10 losses (fewer in runs under 20 steps) above ``blowup_factor * max(ln K, first
loss)`` (chance-level cross-entropy is ln K; the LP head starts far below it) -- stops the trial; it is
reported as diverged with NaN accuracies, never as 0. The median makes single-batch spikes (train-mode
stochastic depth, e.g. EfficientNet-Lite's drop-connect) no divergence; the rule only ever fires where
the mean-only rule of earlier versions fired, so a trial that record says did not diverge is the same
trial under this rule, and a recorded blow-up the rule no longer sees is retrained
(:func:`stale_divergence`).

Devices: CUDA when asked for and available (autocast bfloat16, channels-last), else CPU float32.
Deterministic given the seed on CPU: head init, batch order and every draw come from seeded
generators.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .bn import reestimate_bn, set_train_mode
from .budget import Budget, TrialParams
from .data import SplitData, accuracies, input_size_for, predict, to_input
from .probe import ProbeResult, linear_probe

BLOWUP_WINDOW = 10


@dataclass
class TrialResult:
    """One trial: final validation/test accuracies, learning curves, wall time (``seconds``) and the
    CPU time of its thread (``cpu_seconds``: what a loaded machine does not inflate)."""

    lr: float
    wd: float
    seed: int
    val_top1: float
    val_mean_class: float
    test_top1: float
    test_mean_class: float
    train_loss: list = field(default_factory=list)      # (step, loss) per step
    val_curve: list = field(default_factory=list)       # (step, val_top1) at eval points
    grad_norm: list = field(default_factory=list)       # (step, pre-clipping global grad norm)
    seconds: float = 0.0
    device: str = "cpu"
    input_size: tuple = ()
    diverged: bool = False
    diverged_reason: str = ""
    steps_done: int = 0
    n_val: int = 0
    n_test: int = 0
    cpu_seconds: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


class Classifier(nn.Module):
    """``head((backbone(x) - mean) / scale)``: a linear head on standardised features (the
    standardisation is a fixed affine map, so this is a linear head on the raw features)."""

    def __init__(self, backbone: nn.Module, n_classes: int, generator: torch.Generator,
                 probe: ProbeResult | dict | None = None):
        super().__init__()
        self.backbone = backbone
        dim = int(backbone.config.feature_dim)
        self.head = nn.Linear(dim, n_classes)
        p = probe.as_dict() if isinstance(probe, ProbeResult) else probe
        mean = torch.tensor(p["mean"], dtype=torch.float32) if p else torch.zeros(dim)
        scale = torch.tensor(p["scale"], dtype=torch.float32) if p else torch.ones(dim)
        self.register_buffer("feat_mean", mean)
        self.register_buffer("feat_scale", scale)
        with torch.no_grad():
            if p:
                self.head.weight.copy_(torch.tensor(p["weight"], dtype=torch.float32))
                self.head.bias.copy_(torch.tensor(p["bias"], dtype=torch.float32))
            else:  # nn.Linear's default init, drawn from our generator (determinism)
                bound = 1.0 / math.sqrt(dim)
                self.head.weight.copy_(torch.rand(self.head.weight.shape, generator=generator) * 2 * bound - bound)
                self.head.bias.copy_(torch.rand(self.head.bias.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x):
        return self.head((self.backbone(x) - self.feat_mean) / self.feat_scale)


def lr_factor(step: int, steps: int, warmup_frac: float) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based): linear warm-up to 1 over
    ``ceil(warmup_frac * steps)`` steps, then a half cosine to 0 at ``steps``."""
    warm = math.ceil(warmup_frac * steps)
    if step < warm:
        return (step + 1) / warm
    rest = max(1, steps - warm)
    return 0.5 * (1 + math.cos(math.pi * min(step - warm, rest) / rest))


def eval_points(budget: Budget) -> list[int]:
    """Steps after which validation accuracy is measured: every ``eval_every``, at 80% of the run
    (the convergence check) and at the end."""
    steps = int(budget.steps)
    pts = {steps, max(1, math.ceil(0.8 * steps))}
    if budget.eval_every:
        pts |= set(range(int(budget.eval_every), steps, int(budget.eval_every)))
    return sorted(pts)


def blowup_window(steps: int) -> int:
    """Losses averaged by the blow-up rule: :data:`BLOWUP_WINDOW`, fewer for runs under 20 steps."""
    return min(BLOWUP_WINDOW, max(1, int(steps) // 2))


def blew_up(losses: list[float], n_classes: int, factor: float, window: int = BLOWUP_WINDOW) -> bool:
    """Mean and median of the last ``window`` losses (after the first) both above
    ``factor * max(ln K, first loss)``: a sustained rise, not one spiking batch."""
    if len(losses) < window + 1:
        return False
    bar = factor * max(math.log(n_classes), losses[0])
    last = losses[-window:]
    return float(np.mean(last)) > bar and float(np.median(last)) > bar


def stale_divergence(record: dict, budget: Budget) -> bool:
    """A stored trial that says "loss blow-up" although :func:`blew_up` fires at none of its recorded
    steps (judged by an earlier, mean-only rule): it must be trained again. Non-finite losses or
    gradients stay diverged."""
    if not record.get("diverged") or not str(record.get("diverged_reason", "")).startswith("loss blow-up"):
        return False
    losses = [float(v) for _, v in record.get("train_loss", [])]
    window = blowup_window(int(budget.steps))
    n_classes = int(record["n_classes"])
    return not any(blew_up(losses[:i], n_classes, budget.blowup_factor, window)
                   for i in range(window + 1, len(losses) + 1))


def prepare_backbone(backbone: nn.Module, data: SplitData, budget: Budget, device) -> nn.Module:
    """The backbone on ``device`` with BatchNorm re-estimated when ``budget.bn == "reestimate"``."""
    dev = torch.device(device)
    backbone = backbone.to(dev)
    if budget.bn == "reestimate":
        reestimate_bn(backbone, data.train_x, input_size_for(backbone, budget), dev,
                      batch_size=budget.eval_batch_size)
    return backbone


def run_trial(load_backbone: Callable[[], nn.Module], data: SplitData, params: TrialParams,
              budget: Budget, *, device: str = "cpu", probe: ProbeResult | dict | None = None,
              prepared: bool = False, on_step: Callable[[int, float], None] | None = None) -> TrialResult:
    """Fine-tune a fresh copy of the backbone (``load_backbone()``) on ``data``.

    ``prepared``: the backbone is already BatchNorm-re-estimated (the flow shares one re-estimated
    copy per pair). ``probe``: the linear probe of that backbone (computed here when
    ``budget.head_init == "probe"`` and not given).
    """
    start, start_cpu = time.perf_counter(), time.thread_time()
    dev = torch.device(device if (device != "cuda" or torch.cuda.is_available()) else "cpu")
    use_cuda = dev.type == "cuda"
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    backbone = load_backbone()
    if not prepared:
        backbone = prepare_backbone(backbone, data, budget, dev)
    size = input_size_for(backbone, budget)
    if budget.head_init == "probe" and probe is None:
        probe = linear_probe(backbone.to(dev), data, size, dev, cs=budget.probe_cs, batch_size=budget.eval_batch_size)
    model = Classifier(backbone, data.n_classes, gen, probe if budget.head_init == "probe" else None).to(dev)
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    wd = params.wd / params.lr if budget.wd_mode == "sfda" else params.wd
    opt = torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9, nesterov=True, weight_decay=wd)
    steps = int(budget.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, budget.warmup_frac))
    loss_fn = nn.CrossEntropyLoss()
    n = len(data.train_y)
    bs = min(int(budget.batch_size), n)
    order, pos = rng.permutation(n), 0
    points = set(eval_points(budget))
    window = blowup_window(steps)
    train_loss, val_curve, grad_norms, losses = [], [], [], []
    reason = ""
    y_all = torch.from_numpy(np.array(data.train_y, dtype=np.int64))
    evaluate = dict(device=dev, batch_size=budget.eval_batch_size, amp=use_cuda, channels_last=use_cuda)
    step = 0
    for step in range(1, steps + 1):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos:pos + bs])
        pos += bs
        set_train_mode(model, budget.bn)
        x = to_input(data.train_x[idx], size, dev, use_cuda)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            loss = loss_fn(model(x).float(), y_all[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            reason = f"non-finite loss at step {step}"
            train_loss.append((step, float("nan")))
            break
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), budget.clip_norm or float("inf"))
        gnorm = float(gnorm)
        grad_norms.append((step, gnorm))
        if not math.isfinite(gnorm):
            reason = f"non-finite gradient norm at step {step}"
            train_loss.append((step, value))
            break
        opt.step()
        sched.step()
        train_loss.append((step, value))
        losses.append(value)
        if on_step:
            on_step(step, value)
        if blew_up(losses, data.n_classes, budget.blowup_factor, window):
            reason = (f"loss blow-up at step {step} (mean / median of last {window} "
                      f"{np.mean(losses[-window:]):.3g} / {np.median(losses[-window:]):.3g} > {budget.blowup_factor:g} x "
                      f"max(ln K, first loss {losses[0]:.3g}))")
            break
        if step in points and step < steps:
            val_curve.append((step, accuracies(predict(model, data.val_x, size, **evaluate), data.val_y,
                                               data.n_classes)[0]))
    nan = float("nan")
    if reason:
        v1 = vm = t1 = tm = nan
    else:
        v1, vm = accuracies(predict(model, data.val_x, size, **evaluate), data.val_y, data.n_classes)
        val_curve.append((steps, v1))
        t1, tm = accuracies(predict(model, data.test_x, size, **evaluate), data.test_y, data.n_classes)
    return TrialResult(params.lr, params.wd, params.seed, v1, vm, t1, tm, train_loss, val_curve, grad_norms,
                       time.perf_counter() - start, str(dev), tuple(size), bool(reason), reason, step,
                       len(data.val_y), len(data.test_y), time.thread_time() - start_cpu)
