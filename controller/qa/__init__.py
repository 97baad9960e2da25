"""Quality evidence: benchmarks, the fault matrix, the soak, baselines and process helpers."""
