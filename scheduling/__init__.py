"""Scheduled jobs: APScheduler 3 over a job store in the configured store, each run recorded once.

- ``registry``: what a job is — an id, a trigger from the configuration and a function of
  (store, settings, run context) returning an outcome summary — and the registry of them;
- ``runs``: the ``job_runs`` records; a run's id is derived from (job id, scheduled fire time)
  and created before the job runs, so a second scheduler firing the same run gets a Conflict;
- ``jobstore``: APScheduler's ``BaseJobStore`` over ``scheduler_jobs`` documents (SQLite and
  Elasticsearch alike);
- ``scheduler``: the scheduler a process runs (``soc up`` roles all, engine, scheduler);
- ``alerting``: alerts raised by jobs, written as the detection engine writes them;
- ``jobs/``: retention, sensor silence, hunts, the analysts' digest;
- ``cli``: ``soc jobs list|runs|run``.

Imports soc_core, detections and playbooks, never soc_api: the API registers its own jobs
(audit anchoring, throttle purge) into the registry it builds (``soc_api.services.jobs``).
"""
