from roscoe.cli.app import main

main()
