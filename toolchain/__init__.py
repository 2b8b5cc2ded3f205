"""Build tooling of the repository: provisioning the Solidity compiler and checking the contracts.

A package (not only a folder of scripts) so `python -m toolchain.slither_check` and the tests in
tests/toolchain import the same code; `provision_solc.py` is still run as a script by the Makefile.
"""
