"""Benchmark of the segmentation methods at equal compute: profile, protocol (training and evaluation
runs, one result file each), statistics, calibration, the report and the ablation table, one module each."""

from unisegdiff.benchmark.ablations import write_ablations
from unisegdiff.benchmark.profile import BenchProfile
from unisegdiff.benchmark.protocol import Benchmark
from unisegdiff.benchmark.report import build_results, load_results, write_report

__all__ = ["Benchmark", "BenchProfile", "build_results", "load_results", "write_ablations", "write_report"]
