"""What runs inside a worker process: clocks, phases, memory, correctness gates, the handlers of each kind, the machine
and its ceilings, and the commands that measure the machine itself (`kanbench fit`, `kanbench selfcheck`)."""
