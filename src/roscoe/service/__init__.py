"""roscoe's execution service: the HTTP API inside the runner container.

The modules that decide things (validate, auth, limiter, redact, api) touch no sockets, so
they test without a network; `httpd` is the thin layer that serves them over HTTP, and
`__main__` wires them to the runner container's environment.
"""
