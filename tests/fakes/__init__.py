"""Fakes of outside services, run for real on loopback by the tests."""
