"""The runtime: composition of source, intake, scheduler and executor, and the stop policy."""
