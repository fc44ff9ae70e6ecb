"""roscoe's execution service: the HTTP API inside the runner container.

The modules that decide things (validate, auth, scheduler, live, metrics, redact, api) touch
no sockets, so they test without a network; `app` maps them onto HTTP with FastAPI,
`protocol` and `server` serve it with uvicorn, and `main` wires them to the runner
container's environment.
"""
