"""Benchmark of the segmentation methods: protocol (training and evaluation runs), statistics
(paired tests, calibration, uncertainty) and report writing, one module each."""

from unisegdiff.benchmark.protocol import BenchProfile, MethodResult, evaluate, run_benchmark

__all__ = ["BenchProfile", "MethodResult", "evaluate", "run_benchmark"]
