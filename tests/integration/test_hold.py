"""re-INVITE hold and resume from a SIPp caller: the answer's direction and the RTP."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.support import audio
from tests.support.callback_app import CallbackApp, Reply
from tests.support.calls import sipp_call_heard
from tests.support.fixtures import SwitchFactory
from tests.support.sipp import SippRunner


async def test_hold_stops_our_rtp_and_resume_restarts_it_with_a_marker(
    switch: SwitchFactory, callback_app: CallbackApp, sipp_runner: SippRunner, tmp_path: Path,
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    wav = audio.write_wav(media / "tone.wav", audio.sine(800.0, 20.0, level=-12.0))
    callback_app.set_script({"init_call": Reply.actions([{"type": "PLAY",
                                                          "params": {"url": wav.as_uri()}}]),
                             "end_call": Reply(json={})})
    sw = await switch(default_callback=callback_app.url, extra_args=["--media-dir", str(media)])
    heard = await sipp_call_heard(sipp_runner, sw.sip_udp, "uac_hold.xml", service="1000",
                                  params={"TALK_MS": 1500, "HOLD_MS": 2000})
    heard.result.assert_ok()  # includes the a=recvonly / a=sendrecv checks on each 200
    assert heard.problems == []

    times = [p.time for p in heard.packets]
    gaps = [(b - a, i) for i, (a, b) in enumerate(itertools.pairwise(times))]
    longest, at = max(gaps)
    assert 1.5 <= longest <= 2.8, longest  # held: nothing sent for about HOLD_MS
    assert heard.packets[at + 1].marker  # the talk-spurt after resume is marked
    assert sum(p.marker for p in heard.packets) == 2  # start of stream and resume
    # one SSRC, sequence numbers without a break across the hold
    assert len({p.ssrc for p in heard.packets}) == 1
    seqs = [p.seq for p in heard.packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    # the tone plays on both sides of the hold
    split = int((heard.packets[at].time - heard.packets[0].time + 0.02) * 8000)
    assert audio.tone_duration(heard.pcm[:split], 800.0, min_db=-30) > 1.0
    end = await callback_app.wait_for(type="end_call")
    assert end.fields["status"] == "completed"
