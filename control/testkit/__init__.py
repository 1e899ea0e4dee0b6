"""Test tooling for voice apps built on voxswitch: a pytest plugin (`plugin`) with a switch
process (`switchproc`), a scripted callback server (`callbacks`) and a test phone
(`phone`, `rtp`, `listen`). Kept empty so that loading the plugin imports only what a test
uses."""
