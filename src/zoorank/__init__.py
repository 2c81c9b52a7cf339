"""zoorank: rank pretrained backbones by predicted fine-tuning performance (LEAD and baselines)."""
__version__ = "0.1.0"


def rank(*args, **kwargs):
    """Rank a zoo on a dataset: see :func:`zoorank.api.rank` (returns a pandas DataFrame)."""
    from zoorank.api import rank as _rank

    return _rank(*args, **kwargs)
