"""LEAD ablations against the fine-tuning ground truth (issue 13): which reading of the paper
ranks the zoo best, with bootstrap confidence intervals.

Per (model, dataset) pair with a ground-truth accuracy (``results/ground_truth/trials.jsonl``,
read with ``zoorank.pipeline.ground_truth_records``; the complete ft-v2 table since 2026-12-02), at the ground truth's input sizes
(``results/ground_truth/zoo_80px.yaml``), directly (no Prefect):

1. the ranking's images: ``split="train"``, at most ``--per-class`` per class
   (``zoorank.pipeline.pairs.load_subset``), the backbone (``pairs.load_backbone``), its features
   (``zoorank.compute.extract.extract_features``);
2. the whole-network NTK ``network_ntk_parts(params="all")`` on ``--s-max`` images per class with
   raw features into the head (the paper) and on ``--s-standard`` images per class with the head
   input standardised per coordinate; per image, so every S up to those and every ``params``
   split (backbone / head) is read off one run;
3. the SVM decision values, out-of-fold (5 folds) and in-sample.

Everything is cached per pair as ``.npz`` under ``--cache`` (rerunning only reads them). Then
every variant is scored from the cached arrays (cheap): Eq. 7 with one absolute ``eta_t`` for
the zoo (``eigenvalue_scale="per_logit"``) or the per-model ``"mean"`` scale, each calibration,
head input, ``params``, S, and in-sample vs out-of-fold. For each variant: weighted Kendall tau
per dataset against the fine-tuned test accuracy, its mean, a 90% bootstrap CI over datasets
(``zoorank.metrics.evaluation.bootstrap_mean_ci``), a 90% CI from resampling the models within
each dataset, and the paired difference to the paper's reading.

    .venv/bin/python benchmarks/ablate_lead.py --out benchmarks/results/lead_ablation
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GT = REPO / "results/ground_truth/trials.jsonl"
DEFAULT_ZOO = REPO / "results/ground_truth/zoo_80px.yaml"
CALIBRATIONS = [("softmax", 1.0), ("softmax", 0.3), ("softmax", 0.1), ("softmax", 0.03),
                ("platt", None), ("temperature", None)]
ETA_GRID = [0.0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0, math.inf]


# ----------------------------------------------------------------------------- ground truth
def ground_truth(path, zoo_specs, min_models: int):
    """{dataset: {model: test_top1}} for the zoo's models at its input sizes."""
    from zoorank.pipeline.ground_truth_records import ground_truth_table, read_records, shipped_protocol_records

    table = ground_truth_table(shipped_protocol_records(read_records(path))).dropna(subset=["test_top1"])
    sizes = {}
    for spec in zoo_specs:
        sid = getattr(spec, "id", spec)
        sizes[sid] = spec
    out: dict[str, dict[str, float]] = {}
    for row in table.itertuples():
        if row.model in sizes:
            out.setdefault(row.dataset, {})[row.model] = float(row.test_top1)
    return {d: m for d, m in sorted(out.items()) if len(m) >= min_models}


# ----------------------------------------------------------------------------- per pair
def _pair_arrays(spec, dataset_id, args):
    """Features, labels, ids, per-image NTK parts (raw and standardised head input), decision values."""
    from zoorank.compute.extract import extract_features
    from zoorank.metrics.lead import network_ntk_parts, svm_decision_values
    from zoorank.pipeline import pairs, stages, upstream

    sub = pairs.load_subset(dataset_id, stages.SubsetSpec("train", per_class=args.per_class, seed=0))
    labels = np.asarray(sub.labels, dtype=np.int64)
    ids = np.asarray(sub.rows, dtype=np.int64)
    backbone = pairs.load_backbone(spec)
    size = backbone.config.input_size
    t0 = time.process_time()
    feats = np.asarray(extract_features(backbone, sub, batch_size=64, with_outputs=False).features,
                       dtype=np.float32)
    t_feat = time.process_time() - t0

    images = upstream.image_rows(sub, size)   # the pipeline's loader: any image size (openclipart)

    out = dict(features=feats, labels=labels, ids=ids, t_features=t_feat)
    f64 = feats.astype(np.float64)
    stats = (f64.mean(axis=0), f64.std(axis=0))
    for tag, norm, s, kw in (("raw", "none", args.s_max, {}),
                             ("std", "standard", args.s_standard, {"feature_stats": stats})):
        t0 = time.process_time()
        parts = network_ntk_parts(backbone, images, labels, params="all", samples_per_class=s,
                                  feature_norm=norm, sample_ids=ids, name=getattr(spec, "id", spec), **kw)
        out[f"t_ntk_{tag}"] = time.process_time() - t0
        out[f"idx_{tag}"] = parts.indices
        out[f"back_{tag}"] = parts.sample_backbone
        out[f"head_{tag}"] = parts.sample_head
    for cf in (5, 0):
        out[f"dec_cf{cf}"] = svm_decision_values(feats, labels, cross_fit=cf, sample_ids=ids)
    out["n_params"] = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    return out


def cached_pair(spec, dataset_id, args):
    """A cache file of the pair with at least the S asked for (the S-sample of a class is a
    prefix of a larger one's), or None."""
    mid = getattr(spec, "id", spec)
    for cached in sorted(Path(args.cache).glob(f"{dataset_id}__{mid}__pc{args.per_class}_s*_*[0-9].npz")):
        s_raw, s_std = (int(v) for v in cached.stem.rsplit("_s", 1)[1].split("_"))
        if s_raw >= args.s_max and s_std >= args.s_standard:
            return cached
    return None


def load_or_compute(spec, dataset_id, args):
    mid = getattr(spec, "id", spec)
    path = Path(args.cache) / f"{dataset_id}__{mid}__pc{args.per_class}_s{args.s_max}_{args.s_standard}.npz"
    cached = cached_pair(spec, dataset_id, args)
    if cached is not None:
        with np.load(cached) as z:
            return {k: z[k] for k in z.files}, True
    arrays = _pair_arrays(spec, dataset_id, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays, False


# ----------------------------------------------------------------------------- variants
def class_lambda(arr, tag, params, s):
    """Per-class mean of the chosen parameter share over the first ``s`` images of each class."""
    codes = arr["labels"][arr[f"idx_{tag}"]]
    per = {"all": arr[f"back_{tag}"] + arr[f"head_{tag}"], "backbone": arr[f"back_{tag}"],
           "head": arr[f"head_{tag}"]}[params]
    k = int(arr["labels"].max()) + 1
    rank = np.zeros_like(codes)
    for c in range(k):                          # rows are in (class, key) order: prefix = smaller S
        rows = np.flatnonzero(codes == c)
        rank[rows] = np.arange(rows.size)
    keep = rank < s
    lam = np.bincount(codes[keep], weights=per[keep], minlength=k) / np.bincount(codes[keep], minlength=k)
    return lam


def head_only_l2(arr, s):
    from zoorank.metrics.lead import class_ntk_eigenvalues

    return class_ntk_eigenvalues(arr["features"], arr["labels"], samples_per_class=s, feature_norm="l2",
                                 sample_ids=arr["ids"])


def log_init(arr, cross_fit, calibration, temperature):
    from zoorank.metrics.lead import calibrate

    k = int(arr["labels"].max()) + 1
    return calibrate(arr[f"dec_cf{cross_fit}"], arr["labels"], k, calibration,
                     1.0 if temperature is None else temperature)


def score(li, labels, lam, eta_t, scale):
    from zoorank.metrics.lead.evolution import _evolve, image_log_likelihoods

    return float(image_log_likelihoods(_evolve(li, labels, lam, eta_t, scale), labels).mean())


def variant_table(pairs_data, args):
    """{variant name: {dataset: {model: score}}} and the description of each variant."""
    base = dict(params="all", head="none", s=args.s_max, eta=args.eta_default, scale="per_logit",
                calibration=args.calibration, temperature=args.temperature, cross_fit=5)
    variants: dict[str, dict] = {}

    def add(name, **change):
        variants[name] = {**base, **change}

    add("paper reading (params=all, raw head input)")
    for eta in ETA_GRID:
        add(f"eta_t={eta:g}", eta=eta)
        add(f"head input standard, eta_t={eta:g}", head="standard", s=args.s_standard, eta=eta)
    for p in ("backbone", "head"):
        add(f"params={p}", params=p)
        add(f"params={p}, head input standard", params=p, head="standard", s=args.s_standard)
    add("params=head, head input l2 (old default kernel)", params="head", head="l2")
    add("head input standard", head="standard", s=args.s_standard)
    add(f"head input standard, its own typical eta_t={args.eta_standard:g}", head="standard",
        s=args.s_standard, eta=args.eta_standard)
    add(f"raw head input at S={args.s_standard}", s=args.s_standard)
    for s in (2, 8, 16, 32, 64):
        if s < args.s_max:
            add(f"S={s}", s=s)
        elif s == args.s_max:
            continue
    for cal, t in CALIBRATIONS:
        label = cal if t is None else f"{cal} T={t:g}"
        add(f"calibration {label}", calibration=cal, temperature=t)
        add(f"calibration {label}, eta_t=0 (SVM only)", calibration=cal, temperature=t, eta=0.0)
    add("in-sample SVM (cross_fit=0)", cross_fit=0)
    add("in-sample SVM, eta_t=0", cross_fit=0, eta=0.0)
    for eta in (0.3, 1.0, 3.0):
        add(f"per-model mean scale (old), eta_t={eta:g}", scale="mean", eta=eta)
    add("old default (head-only l2, mean scale, Platt)", params="head", head="l2", scale="mean", eta=1.0,
        calibration="platt", temperature=None)
    add("constant lambda (NTK removed), same mean keep", lam_const=True)
    # the two best single changes together (the fitted temperature is not the default: it scores a
    # separable class exactly 0, a tie at the top; docs/lead.md)
    add("head input standard, calibration temperature", head="standard", s=args.s_standard,
        calibration="temperature", temperature=None)
    add("params=head, head input standard, calibration temperature", params="head", head="standard",
        s=args.s_standard, calibration="temperature", temperature=None)

    scores: dict[str, dict[str, dict[str, float]]] = {v: {} for v in variants}
    for (dataset, model), arr in pairs_data.items():
        li_cache, lam_cache = {}, {}
        for name, v in variants.items():
            lk = (v["cross_fit"], v["calibration"], v["temperature"])
            if lk not in li_cache:
                li_cache[lk] = log_init(arr, *lk)
            key = (v["params"], v["head"], v["s"])
            if key not in lam_cache:
                if v["head"] == "l2":
                    lam_cache[key] = head_only_l2(arr, v["s"])
                else:
                    lam_cache[key] = class_lambda(arr, "raw" if v["head"] == "none" else "std", v["params"], v["s"])
            lam = lam_cache[key]
            if v.get("lam_const"):
                lam = np.full_like(lam, args.lambda_ref)
            scores[name].setdefault(dataset, {})[model] = score(li_cache[lk], arr["labels"], lam, v["eta"], v["scale"])
    return variants, scores


# ----------------------------------------------------------------------------- evaluation
def per_dataset_tau(scores_by_ds, gt):
    from zoorank.metrics.evaluation import weighted_tau

    out = {}
    for d, accs in gt.items():
        models = sorted(set(accs) & set(scores_by_ds.get(d, {})))
        tau = weighted_tau([scores_by_ds[d][m] for m in models], [accs[m] for m in models])
        out[d] = 0.0 if math.isnan(tau) else tau       # all scores tied: no ranking, counted as 0
    return out


def model_bootstrap(scores_by_ds, gt, n_boot, seed=0, level=0.9):
    """CI of the mean weighted tau from resampling the models of every dataset with replacement."""
    from scipy.stats import weightedtau

    rng = np.random.default_rng(seed)
    data = []
    for d, accs in gt.items():
        models = sorted(set(accs) & set(scores_by_ds.get(d, {})))
        data.append((np.array([scores_by_ds[d][m] for m in models]), np.array([accs[m] for m in models])))
    draws = []
    for _ in range(n_boot):
        taus = []
        for s, a in data:
            i = rng.integers(0, s.size, s.size)
            t = weightedtau(s[i], a[i]).statistic if np.unique(i).size > 2 else np.nan
            taus.append(0.0 if np.unique(s[i]).size == 1 else t)
        draws.append(np.nanmean(taus))
    q = (1 - level) / 2
    return float(np.nanquantile(draws, q)), float(np.nanquantile(draws, 1 - q))


def summarise(variants, scores, gt, ref_name, n_boot):
    from zoorank.metrics.evaluation import bootstrap_mean_ci, paired_bootstrap_difference

    datasets = list(gt)
    ref = per_dataset_tau(scores[ref_name], gt)
    rows = []
    for name in variants:
        taus = per_dataset_tau(scores[name], gt)
        vals = [taus[d] for d in datasets]
        ci = bootstrap_mean_ci(vals, n_boot=n_boot)
        mlo, mhi = model_bootstrap(scores[name], gt, n_boot=min(n_boot, 2000))
        diff = paired_bootstrap_difference(vals, [ref[d] for d in datasets], n_boot=n_boot)
        rows.append({"variant": name, "mean_tau": ci["mean"], "ci_datasets": [ci["lo"], ci["hi"]],
                     "ci_models": [mlo, mhi], "per_dataset": taus,
                     "diff_vs_paper": [diff["diff"], diff["lo"], diff["hi"]]})
    return rows


def keep_weights(pairs_data, args):
    """exp(-eta_t * lambda/K) of the mean class, per pair, for both head inputs at the default eta_t."""
    out = {}
    for (d, m), arr in pairs_data.items():
        k = int(arr["labels"].max()) + 1
        lam_raw = class_lambda(arr, "raw", "all", args.s_max).mean() / k
        lam_std = class_lambda(arr, "std", "all", args.s_standard).mean() / k
        share_raw = class_lambda(arr, "raw", "backbone", args.s_max).sum() / class_lambda(arr, "raw", "all", args.s_max).sum()
        share_std = class_lambda(arr, "std", "backbone", args.s_standard).sum() / class_lambda(arr, "std", "all", args.s_standard).sum()
        out[f"{d}/{m}"] = {"lambda_per_logit_raw": float(lam_raw), "lambda_per_logit_std": float(lam_std),
                           "backbone_share_raw": float(share_raw), "backbone_share_std": float(share_std),
                           "feature_norm_mean": float(np.linalg.norm(arr["features"], axis=1).mean()),
                           "dim": int(arr["features"].shape[1]), "n_params": int(arr["n_params"]),
                           "cpu_s": {"features": float(arr["t_features"]), "ntk_raw": float(arr["t_ntk_raw"]),
                                     "ntk_std": float(arr["t_ntk_std"])}}
    return out


# ----------------------------------------------------------------------------- seed study
def seed_study(zoo, args):
    """Spearman correlation of the per-class lambda across 3 head seeds, same images."""
    import scipy.stats
    import torch

    from zoorank.compute.extract import extract_features, to_model_input
    from zoorank.metrics.lead import network_ntk_parts
    from zoorank.pipeline import pairs, stages

    out = []
    sub = pairs.load_subset("digits", stages.SubsetSpec("train", per_class=args.per_class, seed=0))
    labels = np.asarray(sub.labels)
    ids = np.asarray(sub.rows)
    for mid in args.seed_models:
        bb = pairs.load_backbone(zoo[mid])
        size = bb.config.input_size
        feats = np.asarray(extract_features(bb, sub, with_outputs=False).features, dtype=np.float64)
        stats = (feats.mean(0), feats.std(0))

        def images(rows):
            return to_model_input(torch.from_numpy(np.asarray(sub.images(rows))), size)
        for norm in ("none", "standard"):
            kw = {"feature_stats": stats} if norm == "standard" else {}
            runs = [network_ntk_parts(bb, images, labels, samples_per_class=args.seed_s, feature_norm=norm,
                                      sample_ids=ids, head_random_state=s, **kw) for s in (0, 1, 2)]
            row = {"model": mid, "head_input": norm, "S": args.seed_s}
            for part in ("total", "backbone", "head"):
                row[part] = [float(scipy.stats.spearmanr(getattr(runs[a], part), getattr(runs[b], part)).statistic)
                             for a, b in ((0, 1), (0, 2), (1, 2))]
            backs = np.array([r.backbone for r in runs])              # (seeds, K)
            row["backbone_share"] = float(runs[0].backbone.sum() / runs[0].total.sum())
            row["class_cv_total"] = float(runs[0].total.std() / runs[0].total.mean())
            # head noise against the signal: the spread of a class's backbone part across seeds
            # (relative) and the spread of the seed-averaged part across classes
            row["seed_cv_backbone"] = float(np.mean(backs.std(axis=0, ddof=1) / backs.mean(axis=0)))
            row["class_cv_backbone"] = float(backs.mean(axis=0).std(ddof=1) / backs.mean())
            # the same images, S/2 per class (a prefix): does a larger S reduce the noise?
            half = []
            for r in runs:
                codes = labels[r.indices]
                rank = np.zeros_like(codes)
                for c in np.unique(codes):
                    rows = np.flatnonzero(codes == c)
                    rank[rows] = np.arange(rows.size)
                keep = rank < max(1, args.seed_s // 2)
                half.append(np.bincount(codes[keep], weights=(r.sample_backbone + r.sample_head)[keep])
                            / np.bincount(codes[keep]))
            row["total_half_S"] = [float(scipy.stats.spearmanr(half[a], half[b]).statistic)
                                   for a, b in ((0, 1), (0, 2), (1, 2))]
            out.append(row)
            print("seed study", row, flush=True)
    return out


# ----------------------------------------------------------------------------- report
def _fmt(x):
    return "nan" if x is None or not np.isfinite(x) else f"{x:.3f}"


def write_report(out, result):
    rows = result["rows"]
    datasets = result["datasets"]
    lines = ["# LEAD ablations against the fine-tuning ground truth (issue 13)", "",
             result["header"], "",
             "| variant | mean weighted tau | 90% CI (datasets) | 90% CI (models) | vs paper reading (90% CI) | "
             + " | ".join(datasets) + " |",
             "|---|---|---|---|---|" + "---|" * len(datasets)]
    for r in rows:
        d = r["diff_vs_paper"]
        lines.append(f"| {r['variant']} | **{_fmt(r['mean_tau'])}** | {_fmt(r['ci_datasets'][0])} .. "
                     f"{_fmt(r['ci_datasets'][1])} | {_fmt(r['ci_models'][0])} .. {_fmt(r['ci_models'][1])} | "
                     f"{d[0]:+.3f} ({d[1]:+.3f} .. {d[2]:+.3f}) | "
                     + " | ".join(_fmt(r["per_dataset"][x]) for x in datasets) + " |")
    lines += ["", "## Time scale and shares per pair", "",
              "| pair | lambda/K raw | lambda/K standard | backbone share raw | backbone share standard | mean ||f|| | D | CPU s features / NTK raw / NTK std |",
              "|---|---|---|---|---|---|---|---|"]
    for pair, v in result["pairs"].items():
        c = v["cpu_s"]
        lines.append(f"| {pair} | {v['lambda_per_logit_raw']:.3g} | {v['lambda_per_logit_std']:.3g} | "
                     f"{100 * v['backbone_share_raw']:.0f}% | {100 * v['backbone_share_std']:.0f}% | "
                     f"{v['feature_norm_mean']:.3g} | {v['dim']} | {c['features']:.1f} / {c['ntk_raw']:.1f} / {c['ntk_std']:.1f} |")
    if result.get("seed_study"):
        lines += ["", "## Per-class lambda across head seeds (digits, Spearman of seeds 0-1, 0-2, 1-2)", "",
                  "Seed CV: a class's backbone part across the 3 heads (std / mean, averaged over classes); "
                  "class CV: the seed-averaged backbone part across classes. Averaging H heads divides the "
                  "seed CV by sqrt(H).", "",
                  "| model | head input | S | whole lambda | whole lambda, S/2 | backbone part | head part | "
                  "backbone share | seed CV (backbone) | class CV (backbone) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["seed_study"]:
            f = lambda v: ", ".join(f"{x:.2f}" for x in v)  # noqa: E731
            lines.append(f"| {r['model']} | {r['head_input']} | {r['S']} | {f(r['total'])} | "
                         f"{f(r.get('total_half_S', []))} | {f(r['backbone'])} | "
                         f"{f(r['head'])} | {100 * r['backbone_share']:.0f}% | {r['seed_cv_backbone']:.3f} | "
                         f"{r.get('class_cv_backbone', float('nan')):.3f} |")
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    Path(out + ".json").write_text(json.dumps(result, indent=1, default=float))


def _shown(path) -> str:
    """``path`` relative to the repository when inside it (the report is committed)."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if REPO in p.parents else str(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gt", default=str(DEFAULT_GT))
    ap.add_argument("--zoo", default=str(DEFAULT_ZOO))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--s-max", type=int, default=16)
    ap.add_argument("--s-standard", type=int, default=8)
    ap.add_argument("--min-models", type=int, default=5)
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--cached-only", action="store_true",
                    help="score only the pairs already in the cache (the report names them)")
    ap.add_argument("--reverse", action="store_true",
                    help="fill the cache in reverse order (a second worker on the same datasets)")
    ap.add_argument("--eta-default", type=float, default=None,
                    help="eta_t of the paper reading; default: ln 2 / median lambda/K over the pairs")
    ap.add_argument("--calibration", default="softmax")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--lambda-ref", type=float, default=None)
    ap.add_argument("--n-boot", type=int, default=10000)
    ap.add_argument("--seed-models", nargs="*", default=["mobilenet_v2", "cnn_digitrec"])
    ap.add_argument("--seed-s", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/zoorank_lead_ablation")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/lead_ablation"))
    args = ap.parse_args(argv)

    import torch

    from zoorank.zoo import load_zoo

    torch.set_num_threads(args.threads)
    t_start, c_start = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()[0]
    specs = load_zoo(args.zoo)
    zoo = {getattr(s, "id", s): s for s in specs}
    gt = ground_truth(args.gt, specs, args.min_models)
    if args.datasets:
        gt = {d: v for d, v in gt.items() if d in args.datasets}
    if args.models:
        gt = {d: {m: a for m, a in v.items() if m in args.models} for d, v in gt.items()}
    pairs_data, computed, skipped = {}, 0, []
    for d, accs in gt.items():
        for m in sorted(accs, reverse=args.reverse):
            if args.models and m not in args.models:
                continue
            if args.cached_only and not cached_pair(zoo[m], d, args):
                skipped.append(f"{d}/{m}")
                continue
            arrays, hit = load_or_compute(zoo[m], d, args)
            computed += not hit
            pairs_data[(d, m)] = arrays
            print(f"{d}/{m}: {'cached' if hit else 'computed'} (CPU so far {time.process_time() - c_start:.0f} s)",
                  flush=True)
    gt = {d: {m: a for m, a in accs.items() if (d, m) in pairs_data} for d, accs in gt.items()}
    gt = {d: accs for d, accs in gt.items() if len(accs) >= args.min_models}
    per_logit = np.array([class_lambda(a, "raw", "all", args.s_max).mean() / (a["labels"].max() + 1)
                          for a in pairs_data.values()])
    median = float(np.median(per_logit))
    if args.eta_default is None:
        args.eta_default = float(f"{math.log(2) / median:.1g}")
    per_logit_std = np.array([class_lambda(a, "std", "all", args.s_standard).mean() / (a["labels"].max() + 1)
                              for a in pairs_data.values()])
    median_std = float(np.median(per_logit_std))
    args.eta_standard = float(f"{math.log(2) / median_std:.1g}")
    if args.lambda_ref is None:
        args.lambda_ref = median * float(np.median([a["labels"].max() + 1 for a in pairs_data.values()]))
    pair_cpu = sum(float(a["t_features"] + a["t_ntk_raw"] + a["t_ntk_std"]) for a in pairs_data.values())
    variants, scores = variant_table(pairs_data, args)
    ref_name = "paper reading (params=all, raw head input)"
    rows = summarise(variants, scores, gt, ref_name, args.n_boot)
    seed_cache = Path(args.cache) / f"seed_study_{'_'.join(args.seed_models)}_s{args.seed_s}_pc{args.per_class}.json"
    if seed_cache.exists():
        seeds = json.loads(seed_cache.read_text())
    else:
        seeds = seed_study(zoo, args) if args.seed_models else []
        seed_cache.write_text(json.dumps(seeds))
    header = (f"`benchmarks/ablate_lead.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} cores, {args.threads} torch threads, load average {load0:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end; {computed} of {len(pairs_data)} pairs computed, the rest "
              f"read from the cache; this process: CPU {time.process_time() - c_start:.0f} s, wall "
              f"{time.perf_counter() - t_start:.0f} s; the pairs' features + NTK took {pair_cpu:.0f} CPU s "
              f"in all (over the runs that filled the cache). Ground truth: {_shown(args.gt)} (recipe ft-v2, mean over seeds), "
              + ", ".join(f"{d} ({len(v)} models)" for d, v in gt.items())
              + (f"; pairs with a ground truth left out (not computed in the CPU budget): {', '.join(skipped)}"
                 if skipped else "")
              + f". Images: train split, at most {args.per_class} per class. NTK: S <= {args.s_max} per class "
              f"(raw head input), S <= {args.s_standard} (standardised head input). Paper reading: "
              f"params='all', raw features into the head, eta_t = {args.eta_default:g} for every model "
              f"(per-logit lambda/K; ln 2 / the median lambda/K = {median:.3g} over the pairs; with the "
              f"standardised head input the median is {median_std:.3g}, its own rule gives {args.eta_standard:g}), "
              f"calibration {args.calibration} T={args.temperature:g}, out-of-fold SVM. Each other row "
              "changes what it names. weighted tau = scipy weightedtau of the score against the fine-tuned "
              "test accuracy (a dataset where every score ties counts as 0). The CIs are 90% percentile bootstraps: over datasets (few: wide and coarse) "
              "and over the models of each dataset.")
    result = {"header": header, "datasets": list(gt), "rows": rows, "variants": variants,
              "scores": {v: {d: s for d, s in by_d.items()} for v, by_d in scores.items()},
              "ground_truth": gt, "skipped_pairs": skipped, "pairs": keep_weights(pairs_data, args), "seed_study": seeds,
              "eta_default": args.eta_default, "median_lambda_per_logit": median,
              "eta_standard": args.eta_standard, "median_lambda_per_logit_standard": median_std,
              "meta": {"host": platform.node(), "cpu_count": os.cpu_count(), "threads": args.threads,
                       "per_class": args.per_class, "s_max": args.s_max, "s_standard": args.s_standard,
                       "torch": torch.__version__}}
    write_report(args.out, result)
    for r in sorted(rows, key=lambda r: -r["mean_tau"])[:15]:
        print(f"{r['mean_tau']:.3f}  {r['variant']}")


if __name__ == "__main__":
    main()
