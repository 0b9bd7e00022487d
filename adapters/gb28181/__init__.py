"""GB/T 28181: camgw as a superior platform (docs/gb28181.md)."""
