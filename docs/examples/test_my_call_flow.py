"""Testing a voice app's call flow with the voxswitch pytest plugin.

The app under test is `support_line`: the callback handler of a small IVR, written as a
plain function of the callback body so the same code can sit behind your web framework.
A caller hears a menu; 1 reaches sales (a spoken message), 2 reaches support (a tone,
standing in for hold music), anything else is told so and hung up on.

The plugin gives each test a real switch (`voxswitch`), a callback server wired to it
(`voxswitch_callbacks`) and a phone that calls it over SIP and RTP (`voxswitch_phone`).
Run with `python -m pytest docs/examples/test_my_call_flow.py` (pytest-asyncio installed).
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.asyncio  # or asyncio_mode = "auto" in your pytest configuration

MENU = "Thanks for calling. For sales, press one. For support, press two."


def support_line(body: dict[str, Any], hold_music_url: str) -> list[dict[str, Any]] | None:
    """The IVR: the actions for one callback (None for reports such as end_call)."""
    if body["type"] == "init_call":
        return [{"type": "COLLECT", "name": "menu",
                 "params": {"num_digits": 1, "timeout": 5000},
                 "actions": [{"type": "SAY", "params": {"text": MENU}}]}]
    if body["type"] != "live_call":
        return None
    choice = next((p["digits"] for p in body.get("key_presses", []) if p["name"] == "menu"), "")
    if choice == "1":
        return [{"type": "SAY", "params": {"text": "Connecting you to sales. Good bye."}},
                {"type": "HANGUP"}]
    if choice == "2":
        return [{"type": "PLAY", "params": {"url": hold_music_url}}, {"type": "HANGUP"}]
    return [{"type": "SAY", "params": {"text": "Sorry, I did not get that. Good bye."}},
            {"type": "HANGUP"}]


@pytest.fixture
def ivr(voxswitch_callbacks):
    """Serve `support_line` from the plugin's callback server, with a 440 Hz 'hold music'."""
    hold_music = voxswitch_callbacks.tone_url(440, 1.0)
    voxswitch_callbacks.handler(lambda body: support_line(body, hold_music))
    return voxswitch_callbacks


async def test_support_hears_hold_music(voxswitch, ivr, voxswitch_phone):
    call = await voxswitch_phone.dial("+15551230000")
    await call.hears_speech(min_s=1.0, timeout=15)     # the menu prompt
    await call.send_digits("2")                        # RFC 4733 telephone-events
    await call.hears_tone(440, min_s=0.5)              # the hold music
    await call.wait_hangup()
    assert ivr.digits("menu") == "2"                   # what the app was told
    end = await ivr.wait_for("end_call")
    assert end["status"] == "completed"


async def test_sales_hears_a_message(voxswitch, ivr, voxswitch_phone):
    call = await voxswitch_phone.dial("+15551230000")
    await call.hears_speech(min_s=1.0, timeout=15)
    await call.send_digits("1", mode="inband")         # DTMF tones in the audio
    await call.hears_speech(min_s=0.8, max_s=6.0)      # "Connecting you to sales"
    await call.wait_hangup()
    assert ivr.last("live_call")["key_presses"][0]["digits"] == "1"
