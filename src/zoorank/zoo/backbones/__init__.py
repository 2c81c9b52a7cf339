"""One small module per backbone family; each exposes ``build(config, ...) -> Backbone``.

The registry (``zoorank.zoo.registry``) maps model ids to these builders and their static
configs; nothing here is imported until a model of that family is loaded.
"""
