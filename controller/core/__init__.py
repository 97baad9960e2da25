"""The heater's own code: everything that can switch the relay, and nothing else.

It imports only the standard library, gpiozero and w1thermsensor (an import-linter
contract in pyproject.toml keeps it so)."""
