"""Hardware-in-the-loop benchmarking harness for pruned int8 models."""
