"""Compute layer: torch work on one model (feature extraction, fine-tuning), no storage, no Prefect."""
