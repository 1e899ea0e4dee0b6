"""announce_on_join: the others hear a 1000 Hz beep when such a participant enters, and a
600 Hz one when it leaves, each 200 ms, decoded from what the switch sent them.

A (400 Hz, hold audio the 2200 Hz file, so nothing else it hears is near either beep) waits
in the room; B (1600 Hz, announce_on_join "beep") joins, then is taken out by a REST
Leave; then A leaves. The beeps are found per 20 ms frame in A's received audio, by time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.support import audio
from tests.support.callback_app import CallbackApp
from tests.support.capture import Capture
from tests.support.fixtures import SwitchFactory
from tests.support.ports import free_rtp_port
from tests.support.sipp import SippRunner

from .test_conference_audio import (
    call_ids,
    conference_action,
    received_by_port,
    start_sipp,
    until_count,
)
from .test_conference_flow import flow_script

BEEP_S = 0.2


def beeps(pcm: audio.Pcm, hz: int) -> list[tuple[float, float]]:
    # A hears B's tone too while the beep plays: the beep carries about half the power.
    return audio.tone_segments(pcm, hz, min_db=-40, min_fraction=0.3, min_duration=0.06)


async def test_join_and_leave_beeps_are_heard_by_the_others(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    room = {"name": "beeps", "hold_audio": callback_app.url + "hold.wav"}
    callback_app.set_script(flow_script({
        "6001": [{"type": "CONFERENCE", "params": room}],
        "6002": [{"type": "CONFERENCE", "params": {**room, "announce_on_join": "beep"}}],
    }))
    sw = await switch(default_callback=callback_app.url)
    ports = {"a": free_rtp_port(), "b": free_rtp_port()}
    async with Capture(tmp_path, "beeps") as cap:
        await cap.start(ports.values(), duration=60)
        a = start_sipp(sipp_runner, sw, tmp_path, "6001", 400, media_port=ports["a"])
        await until_count(sw, 1)
        await asyncio.sleep(1.0)
        joined_at = time.time()
        b = start_sipp(sipp_runner, sw, tmp_path, "6002", 1600, media_port=ports["b"])
        await until_count(sw, 2)
        await asyncio.sleep(1.0)
        ids = call_ids(callback_app)
        left_at = await conference_action(sw, ids["6002"], "Leave", "beeps")
        await asyncio.sleep(1.5)
        await conference_action(sw, ids["6001"], "Leave", "beeps")
        for peer in (a, b):
            (await peer.task).assert_ok()
        pcap = await cap.stop()
    heard = received_by_port(pcap, ports.values())[ports["a"]]
    alone = heard.window(joined_at - 1.0, joined_at)
    together = heard.window(joined_at, left_at)
    after = heard.window(left_at, left_at + 1.5)
    assert beeps(alone, 1000) == [] and beeps(alone, 600) == []  # A's own entry: no beep
    (join,) = beeps(together, 1000)
    assert abs((join[1] - join[0]) - BEEP_S) <= 0.041, join
    assert beeps(together, 600) == []
    (leave,) = beeps(after, 600)
    assert abs((leave[1] - leave[0]) - BEEP_S) <= 0.041, leave
    assert beeps(after, 1000) == []
