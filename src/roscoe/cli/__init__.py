"""The command line: thin adapters that parse, call the core, and render the result."""
