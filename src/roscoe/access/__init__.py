"""Who may use the execution service, and for what: scoped tokens and the callers they name.

`principal` holds the caller and its rules (no I/O); `tokens` the token file on the host
(create, list, revoke; only hashes are stored); `book` the service's view of that file,
re-read when it changes, which turns an Authorization header into a caller or a 401.
"""
