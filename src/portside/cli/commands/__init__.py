"""One module per verb or noun of the `portside` command."""
