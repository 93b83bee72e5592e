"""Benchmark of the segmentation methods at equal compute: profile, protocol (training and evaluation
runs, one result file each), statistics, calibration and the report, one module each."""

from unisegdiff.benchmark.profile import BenchProfile
from unisegdiff.benchmark.protocol import Benchmark

__all__ = ["Benchmark", "BenchProfile"]
