"""The `camgw` commands, one module per group. `gateway.cli` parses the command line and
imports only the module of the command given, so that `camgw token list` does not load the
gateway, OpenCV, zeep or the camera simulator (docs/cli.md)."""
