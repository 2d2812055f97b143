"""`python -m portside.cli`."""

from portside.cli.main import main

main()
