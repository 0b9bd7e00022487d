"""The camera-fleet simulator used by the tests, the demo and the benchmarks."""
