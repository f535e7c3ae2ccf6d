"""Home of the simulator's checkers."""
