"""Test doubles and helpers shared by the suite, the benchmarks and `make demo`.

Nothing here ships in the wheel: stand-in servers (LLM APIs, MuninnDB, mitmweb
launchers) are test equipment, not product.
"""
