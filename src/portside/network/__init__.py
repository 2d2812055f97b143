"""Container networking: namespaces, CNI plugins, published ports, names.

The engine calls `portside.network.api` (setup_network / teardown_network); the
rest are the parts it is built from, each usable and testable on its own.
"""
