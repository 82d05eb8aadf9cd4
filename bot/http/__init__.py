"""The HTTP front door: Jira, alert and deploy webhooks (Starlette under uvicorn)."""
