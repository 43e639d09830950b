"""HTTP API and review UI (FastAPI), a thin shell over the service functions."""
