"""Hard time limits of the tasks whose rows are claimed under a lease, in one
place: a lease must outlast its task's limit (a live worker never loses its job
to the sweeper), so the services derive their leases from these numbers."""

from __future__ import annotations

# request_draft_task: explanation and counterfactual search of one decision.
REQUEST_DRAFT_TIME_LIMIT_S = 330
# dataset_import_task: reading, checking and recording one upload.
DATASET_IMPORT_TIME_LIMIT_S = 600
# job_task: the longest job is an explainer fit (surrogate, glass-box, proxies).
JOB_TIME_LIMIT_S = 660
# What a lease adds to its task's limit: room for the worker to record the
# outcome after the limit kills the work.
LEASE_MARGIN_S = 60
