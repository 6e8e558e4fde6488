"""The local stack (``jamey stack``, `make run`): ``core`` builds and runs it, ``supervisor`` keeps
its processes running, ``state`` is the state file ``jamey stack status`` reads, and
``selfsigned`` makes the certificate of its TLS front."""

from jamey_engine.stack.core import Stack, StackPorts, check_ports
from jamey_engine.stack.supervisor import Component, RestartPolicy, Supervisor

__all__ = ["Component", "RestartPolicy", "Stack", "StackPorts", "Supervisor", "check_ports"]
