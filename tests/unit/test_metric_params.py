"""`zoorank rank --param METRIC.KEY=VALUE` and the checks on metric parameters: a typo in a metric
or a parameter name is an error naming it, before anything is computed."""
from __future__ import annotations

import pytest

from zoorank.cli import _metric_params
from zoorank.pipeline.upstream import plan_metrics


def test_param_flags_parse_as_yaml_values():
    got = _metric_params(["lead.ntk=head", "lead.eta_t=1e-4", "lead.head_widths=[16, 32]", "knn.k=5"])
    assert got == {"lead": {"ntk": "head", "eta_t": 1e-4, "head_widths": [16, 32]}, "knn": {"k": 5}}
    assert _metric_params(None) == {}


@pytest.mark.parametrize("bad", ["leadntk=head", "lead.ntk", ".ntk=head", "lead.=head"])
def test_malformed_param_is_named(bad):
    with pytest.raises(ValueError, match=r"expected METRIC\.KEY=VALUE"):
        _metric_params([bad])


def test_unknown_metric_or_parameter_is_named():
    with pytest.raises(ValueError, match=r"'leda' that this ranking does not compute \(metrics: lead\)"):
        plan_metrics(["lead"], {"leda": {"ntk": "head"}})
    with pytest.raises(ValueError, match=r"metric 'lead' has no parameter 'ntkk'; it takes: .*eta_t.*ntk,"):
        plan_metrics(["lead"], {"lead": {"ntkk": "head"}})
    with pytest.raises(ValueError, match=r"ntk='hed'; choose from \['head', 'network'\]"):
        plan_metrics(["lead"], {"lead": {"ntk": "hed"}})
    # every routed keyword and selector is accepted
    (plan,) = plan_metrics(["lead"], {"lead": {"ntk": "head", "ntk_feature_norm": "l2", "cross_fit": 0}})
    assert [s.stage.name for s in plan.stages] == ["svm_logits", "ntk_eigenvalues"]
