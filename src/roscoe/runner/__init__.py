"""The long-lived runner container: start, stop, restart, status, logs (`roscoe server`)."""
