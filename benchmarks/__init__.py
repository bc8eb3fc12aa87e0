"""Speed, memory and stability benchmarks of plstm_geometric; run each from the repository root as
``python -m benchmarks.<name>`` (docs/benchmarks.md lists the commands and their results)."""
