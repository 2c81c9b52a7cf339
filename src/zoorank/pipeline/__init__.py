"""Pipeline layer: cached stages (content-keyed, resumable) over compute, storage and metrics; no Prefect."""
