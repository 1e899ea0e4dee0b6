"""Integration-test harness: start the switch and real peers, capture and judge what they hear.

Modules: `switch` (the switch under test), `callback_app` (a scripted callback server),
`sipp`, `baresip` (peers), `capture` (tshark on lo), `audio` and `g711` (analysis),
`calls` (a SIPp call under capture, decoded), `fixtures` (pytest fixtures), `ports` and
`procs` (plumbing).
"""
