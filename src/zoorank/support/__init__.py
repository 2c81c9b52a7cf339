"""Support: small helpers every layer may use (fault injection points, process identity, lazy exports,
interrupt handling); they import nothing else of zoorank."""
