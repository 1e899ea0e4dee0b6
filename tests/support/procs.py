"""Child processes with a bounded life: `control.testkit.procs`, the one implementation,
which the pytest plugin shipped with the package uses to run the switch too."""

from control.testkit.procs import LineTap, ManagedProcess, run_process, start_process

__all__ = ["LineTap", "ManagedProcess", "run_process", "start_process"]
