"""Autotune: measure the bath with a relay experiment, then compute gains."""
