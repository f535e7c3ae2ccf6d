"""Aeron Cluster's consensus module: the sans-IO core (``core``) and, around it, the driver that owns I/O."""
