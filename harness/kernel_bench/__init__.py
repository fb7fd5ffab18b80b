"""Kernel micro-benchmark: single-layer models, every weight format, measured layer by layer on a board.

    from harness.kernel_bench.run import make_plan, run_kernel_bench
    plan = make_plan(["fc-256x256"], ["0", "0.9", "2:4"], ["dense", "csr"], "mps2_an386")
    files = run_kernel_bench(plan, Path("results/kernels"))

For each shape and pruning (shapes.py), one int8 model of that one layer
(models.py) is compiled in every format and measured through the sweep's
path (run.py); the tidy table with ratios over dense and the break-even
sparsities (table.py) and a figure (plot.py) go to the out directory.
`harness kernels` is the command line; `harness cost-model` (cost_curves.py)
runs it to fit the pruning cost model. This package imports nothing, so
the command line can read the defaults from shapes.py cheaply.
"""
