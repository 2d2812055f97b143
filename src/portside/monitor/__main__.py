"""`python -m portside.monitor CONFIG`; the client starts it without runpy, see client.py."""

from portside.monitor.main import main

main()
