"""Builders shared by tests and benchmarks (bench/ scripts run from the repository root and import
them from here); never shipped, never imported by the product."""
