"""Orchestration layer: every Prefect task and flow, task runners, servers, schedules (the only Prefect code)."""
