"""One-shot runs: a script from Tools against one case, in a fresh, scoped container.

`spec` says what to run, `execute` runs it, `records` keeps what happened, `gc` sweeps
containers a killed roscoe left behind. None of it prints or exits: the CLI and the
execution service render the results.
"""
