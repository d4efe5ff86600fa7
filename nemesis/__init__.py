"""Fault plugins: partition, kill, pause, clock, slow network."""
