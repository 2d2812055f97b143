"""Side-by-side benchmarks of portside and the peer tools (run with `make bench`)."""
