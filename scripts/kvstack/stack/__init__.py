"""kvmesh's whole native stack under one supervisord per run folder (`./start.sh`): settings, the run folder,
configuration rendering, supervisord control, health checks, installing, the commands."""
