// The dashboard's WebRTC phone. The browser's own RTCPeerConnection talks to the switch's
// gateway (POST /v1/WebRTC/Calls, one offer and one answer: ICE is gathered before the
// offer goes, so no trickle), which places an ordinary SIP call into the switch.
"use strict";

(() => {
  const { api, flash, el } = window.voxswitch;
  const $ = (sel) => document.querySelector(sel);
  const phone = { pc: null, stream: null, id: null, callId: null, ended: true };
  const ICE_WAIT_MS = 3000;

  function setState(text) {
    $("#phone-state").textContent = text;
    const busy = !phone.ended;
    $("#phone-call").disabled = busy;
    $("#phone-hangup").disabled = !busy;
  }

  function iceGathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      // host candidates on a LAN come in milliseconds; go with what is there after that
      setTimeout(resolve, ICE_WAIT_MS);
    });
  }

  function preferCodec(transceiver, codec) {
    if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
    const want = { opus: "audio/opus", PCMU: "audio/PCMU", PCMA: "audio/PCMA" }[codec];
    const all = RTCRtpReceiver.getCapabilities("audio").codecs;
    const first = all.filter((c) => c.mimeType.toLowerCase() === want.toLowerCase());
    const rest = all.filter((c) => c.mimeType.toLowerCase() !== want.toLowerCase());
    if (first.length) transceiver.setCodecPreferences([...first, ...rest]);
  }

  async function call() {
    const target = new FormData($("#phone-form")).get("target");
    const body = { type: "offer", codec: $("#phone-codec").value };
    if (target === "conference") body.conference = $("#phone-conference").value.trim();
    else body.to = $("#phone-to").value.trim();
    if (!body.conference && !body.to) {
      $("#phone-error").textContent = target === "conference"
        ? "Type the name of the conference to join." : "Type a number or SIP URI to call.";
      return;
    }
    $("#phone-error").textContent = "";
    phone.ended = false;
    setState("asking for the microphone…");
    try {
      phone.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      const pc = new RTCPeerConnection({ iceServers: [] });
      phone.pc = pc;
      const track = phone.stream.getAudioTracks()[0];
      const transceiver = pc.addTransceiver(track, { direction: "sendrecv", streams: [phone.stream] });
      preferCodec(transceiver, body.codec);
      pc.ontrack = (e) => { $("#phone-audio").srcObject = e.streams[0] || new MediaStream([e.track]); };
      pc.onconnectionstatechange = () => {
        if (phone.pc !== pc) return;
        if (pc.connectionState === "connected") setState("in call");
        if (["failed", "closed"].includes(pc.connectionState)) finish(`call ${pc.connectionState}`);
      };
      setState("gathering network addresses…");
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc);
      body.sdp = pc.localDescription.sdp;
      setState("calling…");
      const answer = await api("POST", "/WebRTC/Calls", body);
      phone.id = answer.webrtc_id;
      phone.callId = answer.call_id;
      $("#phone-call-id").textContent = `call ${answer.call_id} · ${answer.codec}`;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      setState(pc.connectionState === "connected" ? "in call" : "connecting…");
    } catch (err) {
      $("#phone-error").textContent = err.name === "NotAllowedError"
        ? "The browser refused the microphone: allow it for this page and call again."
        : `Call failed: ${err.message}`;
      await finish("idle");
    }
  }

  async function hangup() {
    const id = phone.id;
    if (id) {
      try {
        await api("DELETE", `/WebRTC/Calls/${encodeURIComponent(id)}`);
      } catch (err) {
        if (err.status !== 404) flash(`Hang up failed: ${err.message}`, true);
      }
    }
    await finish("idle");
  }

  async function finish(text) {
    const pc = phone.pc;
    phone.pc = null;
    phone.id = null;
    phone.ended = true;
    if (pc) pc.close();
    if (phone.stream) phone.stream.getTracks().forEach((t) => t.stop());
    phone.stream = null;
    setState(text === "idle" ? "idle" : `ended (${text})`);
  }

  function digits(d) {
    if (!phone.id) return;
    api("POST", `/WebRTC/Calls/${encodeURIComponent(phone.id)}/Digits`, { digits: d })
      .catch((err) => flash(`Digit ${d} failed: ${err.message}`, true));
  }

  // The switch side may end first (the flow hung up, a REST hang-up): the live stream
  // stops listing the call, and the browser's connection would only notice after its
  // consent checks time out.
  document.addEventListener("voxswitch:live", (e) => {
    if (phone.ended || !phone.callId || !phone.id) return;
    const seen = e.detail.calls.some((c) => c.id === phone.callId);
    if (seen) phone.seen = true;
    else if (phone.seen) { phone.seen = false; finish("the switch hung up"); }
  });

  $("#phone-form").onsubmit = (e) => { e.preventDefault(); call(); };
  $("#phone-hangup").onclick = hangup;
  $("#keypad").replaceChildren(..."123456789*0#".split("").map((d) =>
    el("button", { type: "button", "data-digit": d, onclick: () => digits(d) }, d)));
  setState("idle");
})();
