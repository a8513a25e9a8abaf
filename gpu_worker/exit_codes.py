"""Process exit codes; the control plane's executors read them (docs/worker-contract.md)."""

SUCCESS = 0
UNKNOWN_ERROR = 1
USER_ERROR = 2
INFRASTRUCTURE_ERROR = 3
INTERRUPTED = 4
STOPPED_BY_CONTROL_PLANE = 5
