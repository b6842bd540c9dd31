"""Smoke versions of the benchmarks (tiny sizes), so `bench/` cannot rot unnoticed."""
