"""Test doubles that ship with engram: `make demo` uses them as well as the test suite."""
