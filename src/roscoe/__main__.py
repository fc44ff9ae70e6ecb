from roscoe.cli.app import run

run()
