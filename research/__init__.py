"""The reference research kernel: snapshots, compiler, backtester, gates, registry."""

# Written into every RunSpec: a kernel change that can alter results must bump it, so run ids change too.
KERNEL_VERSION = "eam-research-2"
