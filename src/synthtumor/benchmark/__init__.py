"""Benchmarks of the method itself: ``synthtumor benchmark efficacy`` trains label-free and
real-tumor arms with one shared protocol and measures them on the same held-out real tumors."""
