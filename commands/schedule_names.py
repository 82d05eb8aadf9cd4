"""The names of the scheduled jobs, light enough for the CLI's argument parser to import."""

JOBS = ("health-check", "stale-ticket-review", "knowledge-update", "resume-deliveries")
