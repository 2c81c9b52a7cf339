"""zoorank: rank pretrained backbones by predicted fine-tuning performance (LEAD and baselines)."""
__version__ = "0.1.0"
