// voxswitch dashboard: a thin client of the REST API (/v1), signed in with the API key.
// Live views follow GET /v1/LiveEvents (server-sent events read through fetch, because
// EventSource cannot send the X-API-Key header); the rest is fetched when a tab opens.
"use strict";

const KEY_STORE = "voxswitch.api_key";
const state = {
  key: null,
  live: { calls: [], conferences: [], queues: [] },
  selected: null,          // call id shown in the detail panel
  selectedView: null,      // its last live view (kept once it ends)
  timeline: { callId: null, count: -1, timer: null },
  stream: null,            // AbortController of the event stream
  logsNext: null,
};

// ---- small helpers ---------------------------------------------------------------------

const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function seconds(ms) {
  if (ms === null || ms === undefined) return "";
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s} s`;
}

function since(epochMs) {
  return epochMs ? seconds(Date.now() - epochMs) : "";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : null;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const enc = encodeURIComponent;

let flashTimer = null;
function flash(text, bad = false) {
  const box = $("#flash");
  box.textContent = text;
  box.className = bad ? "flash bad" : "flash";
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, bad ? 8000 : 3000);
}

class ApiFailure extends Error {
  constructor(status, body) {
    const detail = body && body.code ? `${body.code} ${body.message}` : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: { "X-API-Key": state.key }, cache: "no-store" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/v1" + path, opts);
  if (!resp.ok) {
    let parsed = null;
    try { parsed = await resp.json(); } catch (_) { /* not the spec's error body */ }
    if (resp.status === 401) signOut("The switch refused the API key.");
    throw new ApiFailure(resp.status, parsed);
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  return type.includes("json") ? resp.json() : resp.blob();
}

// An action button: run `fn`, say what happened, never leave an unhandled rejection.
async function act(label, fn) {
  try {
    await fn();
    flash(`${label}: done`);
  } catch (err) {
    flash(`${label} failed: ${err.message}`, true);
  }
}

// ---- signing in ------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    await api("GET", "/LiveCalls?max_results=1");
  } catch (err) {
    state.key = null;
    $("#login-error").textContent = err.status === 401
      ? "That is not this switch's API key." : `Cannot reach the switch: ${err.message}`;
    return false;
  }
  sessionStorage.setItem(KEY_STORE, key);
  $("#login").hidden = true;
  $("#app").hidden = false;
  runStream();
  return true;
}

function signOut(reason) {
  state.key = null;
  sessionStorage.removeItem(KEY_STORE);
  if (state.stream) state.stream.abort();
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = reason || "";
}

// ---- the live stream -------------------------------------------------------------------

function setStreamState(cls, text) {
  const s = $("#stream-state");
  s.className = "state " + cls;
  s.textContent = text;
}

async function runStream() {
  let delay = 500;
  while (state.key) {
    const ctrl = new AbortController();
    state.stream = ctrl;
    try {
      const resp = await fetch("/v1/LiveEvents", {
        headers: { "X-API-Key": state.key }, signal: ctrl.signal, cache: "no-store" });
      if (resp.status === 401) { signOut("The switch refused the API key."); return; }
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      setStreamState("live", "live");
      delay = 500;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          onEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (!state.key) return;
      console.warn("live stream:", err);
    }
    setStreamState("down", "reconnecting…");
    await sleep(delay);
    delay = Math.min(delay * 2, 5000);
  }
}

function onEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (event !== "live" || !data.length) return;
  state.live = JSON.parse(data.join("\n"));
  renderLive();
  document.dispatchEvent(new CustomEvent("voxswitch:live", { detail: state.live }));
}

function renderLive() {
  const { calls, conferences, queues } = state.live;
  $("#count-calls").textContent = calls.length;
  $("#count-conferences").textContent = conferences.length;
  $("#count-queues").textContent = queues.length;
  renderCalls(calls);
  renderConferences(conferences, calls);
  renderQueues(queues);
}

// ---- calls -----------------------------------------------------------------------------

function renderCalls(calls) {
  const body = $("#calls-table tbody");
  body.replaceChildren(...calls.map((c) => el("tr", {
    "data-call-id": c.id, class: c.id === state.selected ? "selected" : null,
    onclick: () => selectCall(c.id),
  },
  el("td", { text: c.id }), el("td", { text: c.direction || "" }), el("td", { text: c.no }),
  el("td", { text: c.caller_id_no }), el("td", { text: c.status, class: "status" }),
  el("td", { class: "since", "data-since": c.connected_at || "", text: since(c.connected_at) }),
  el("td", { text: c.detection }),
  el("td", {}, el("button", {
    class: "small danger", "data-action": "hangup", title: "Hang up",
    onclick: (e) => { e.stopPropagation(); hangup(c.id); },
  }, "Hang up")))));
  $("#calls-empty").hidden = calls.length > 0;
  if (state.selected) {
    const view = calls.find((c) => c.id === state.selected);
    if (view) state.selectedView = view;
    else if (state.selectedView && state.selectedView.status.startsWith("live-")) {
      state.selectedView = { ...state.selectedView, status: "ended" };
    }
    renderDetailFields();
  }
}

function hangup(id) {
  return act(`Hang up ${id}`, () => api("POST", `/LiveCalls/${enc(id)}/Actions/HangUp`, {}));
}

function selectCall(id) {
  state.selected = id;
  state.selectedView = state.live.calls.find((c) => c.id === id) || null;
  $("#call-detail").hidden = false;
  $("#detail-id").textContent = id;
  for (const row of document.querySelectorAll("#calls-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.callId === id);
  }
  $("#tap").replaceChildren(el("button", { id: "tap-load", class: "quiet", onclick: loadTap },
    "Load what each side heard"));
  renderDetailFields();
  startTimeline(id);
}

function renderDetailFields() {
  const v = state.selectedView;
  const fields = $("#detail-fields");
  if (!v) { fields.replaceChildren(); return; }
  const rows = [["Status", v.status], ["From", v.no], ["To", v.caller_id_no],
    ["Direction", v.direction], ["Connected", since(v.connected_at)],
    ["Detection", v.detection], ["Parent call", v.parent_call_id],
    ["Session data", v.session_data ? JSON.stringify(v.session_data) : ""]];
  fields.replaceChildren(...rows.filter(([, val]) => val).flatMap(([k, val]) =>
    [el("dt", { text: k }), el("dd", { text: String(val) })]));
}

function startTimeline(id) {
  clearInterval(state.timeline.timer);
  state.timeline = { callId: id, count: -1, timer: null };
  $("#timeline").replaceChildren();
  $("#timeline-note").textContent = "loading…";
  const poll = async () => {
    if (state.timeline.callId !== id || !state.key) return;
    try {
      const tl = await api("GET", `/LiveCalls/${enc(id)}/Timeline`);
      if (state.timeline.callId !== id) return;
      $("#timeline-note").textContent = tl.live ? "" : "The call has ended.";
      if (tl.events.length !== state.timeline.count) {
        state.timeline.count = tl.events.length;
        $("#timeline").replaceChildren(...tl.events.map((e) => el("li", { class: `kind-${e.kind}` },
          el("span", { class: "ms", text: `${(e.ms / 1000).toFixed(3)} s` }),
          el("span", { class: "kind", text: e.kind }),
          el("span", { class: "summary", text: e.summary }))));
      }
      if (!tl.live) clearInterval(state.timeline.timer);
    } catch (err) {
      $("#timeline-note").textContent = err.status === 404
        ? "No timeline is kept for this call any more." : `Timeline: ${err.message}`;
      clearInterval(state.timeline.timer);
    }
  };
  poll();
  state.timeline.timer = setInterval(poll, 1000);
}

async function loadTap() {
  const id = state.selected;
  const box = $("#tap");
  try {
    const blob = await api("GET", `/LiveCalls/${enc(id)}/Audio`);
    const url = URL.createObjectURL(blob);
    box.replaceChildren(el("audio", { controls: true, src: url }),
      el("a", { href: url, download: `${id}.wav` }, " Download WAV"),
      el("p", { class: "empty", text: "Left: what the switch heard from the caller. " +
        "Right: what the switch sent to the caller." }));
  } catch (err) {
    box.replaceChildren(el("p", { class: "empty", text: err.status === 404
      ? "No audio is kept for this call." : `Audio: ${err.message}` }));
  }
}

function wireCallActions() {
  const path = (what) => `/LiveCalls/${enc(state.selected)}/Actions/${what}`;
  $("#act-hangup").onclick = () => hangup(state.selected);
  $("#act-record-start").onclick = () => act("Start recording",
    () => api("POST", path("Recording/Start"), {}));
  $("#act-record-stop").onclick = () => act("Stop recording",
    () => api("POST", path("Recording/Stop"), {}));
  $("#act-say").onsubmit = (e) => {
    e.preventDefault();
    act("Say", () => api("POST", path("Tell"), { message: $("#say-text").value }));
  };
  $("#act-transfer").onsubmit = (e) => {
    e.preventDefault();
    act("Transfer", () => api("POST", path("Transfer"), { call: { no: $("#transfer-no").value } }));
  };
}

// ---- conferences and queues ------------------------------------------------------------

function renderConferences(conferences, calls) {
  const inRooms = new Set(conferences.flatMap((c) => c.participants.map((p) => p.call.id)));
  const outside = calls.filter((c) => !inRooms.has(c.id) && c.status === "live-in-progress");
  $("#conferences").replaceChildren(...conferences.map((conf) => {
    const steer = (what, p) => act(`${what} ${p.call.no || p.call.id}`, () => api("POST",
      `/LiveCalls/${enc(p.call.id)}/Actions/Conference/${what}`, { conference_name: conf.name }));
    const rows = conf.participants.map((p) => {
      const whisperer = el("select", { "aria-label": "whispering call" },
        el("option", { value: "" }, "whisper from…"),
        ...outside.map((c) => el("option", { value: c.id }, `${c.no} (${c.id})`)));
      return el("tr", { "data-call-id": p.call.id },
        el("td", { text: p.call.no }), el("td", { text: p.call.id }),
        el("td", {}, el("span", { class: p.muted ? "pill on" : "pill", text: p.muted ? "muted" : "speaking" }),
          " ", el("span", { class: p.on_hold ? "pill on" : "pill", text: p.on_hold ? "on hold" : "in room" })),
        el("td", {}, el("div", { class: "row-actions" },
          el("button", { class: "small", "data-action": p.muted ? "unmute" : "mute",
            onclick: () => steer(p.muted ? "Unmute" : "Mute", p) }, p.muted ? "Unmute" : "Mute"),
          el("button", { class: "small", "data-action": p.on_hold ? "resume" : "hold",
            onclick: () => steer(p.on_hold ? "Resume" : "Hold", p) }, p.on_hold ? "Resume" : "Hold"),
          el("button", { class: "small", "data-action": "leave", onclick: () => steer("Leave", p) },
            "Remove"),
          whisperer,
          el("button", { class: "small", "data-action": "whisper", onclick: () => {
            if (!whisperer.value) { flash("Choose the call that will whisper", true); return; }
            act(`Whisper to ${p.call.no}`, () => api("POST",
              `/LiveCalls/${enc(whisperer.value)}/Actions/Conference/JoinToWhisper`,
              { conference_name: conf.name, target_call: { id: p.call.id } }));
          } }, "Whisper"))));
    });
    return el("div", { class: "card conference", "data-conference": conf.name },
      el("h3", { text: `${conf.name} · ${conf.status} · ${conf.num_participants} ` +
        `participant${conf.num_participants === 1 ? "" : "s"}` }),
      el("table", {}, el("thead", {}, el("tr", {}, ...["Number", "Call", "State", ""].map(
        (h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
  }));
  $("#conferences-empty").hidden = conferences.length > 0;
}

function renderQueues(queues) {
  $("#queues").replaceChildren(...queues.map((q) => el("div", { class: "card conference",
    "data-queue": q.name },
  el("h3", { text: `${q.name} · ${q.calls.length} waiting · estimated hold ` +
    `${Math.round(q.hold_times.estimated || 0)} s` }),
  el("table", {}, el("thead", {}, el("tr", {}, ...["Position", "Caller", "Call", "Waiting"].map(
    (h) => el("th", { text: h })))),
  el("tbody", {}, ...q.calls.map((e) => el("tr", { "data-call-id": e.call.id },
    el("td", { text: String(e.position) }), el("td", { text: e.call.no }),
    el("td", { text: e.call.id }),
    el("td", { class: "since", "data-since": Date.parse(e.queued_on) || "",
      text: since(Date.parse(e.queued_on)) }))))))));
  $("#queues-empty").hidden = queues.length > 0;
}

// durations count up between events
setInterval(() => {
  for (const cell of document.querySelectorAll("[data-since]")) {
    const t = Number(cell.dataset.since);
    cell.textContent = t ? since(t) : "";
  }
}, 1000);

// ---- history: recordings and call logs -------------------------------------------------

function query(form) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (!v) continue;
    params.set(k, k.endsWith("_date") ? isoFromLocal(v) : v);
  }
  return params.toString();
}

function defaultRange(form, hours) {
  const begin = form.querySelector("[name=begin_date]");
  if (!begin.value) begin.value = localInput(new Date(Date.now() - hours * 3600e3));
}

async function loadRecordings() {
  const form = $("#recordings-filter");
  defaultRange(form, 24);
  try {
    const out = await api("GET", `/History/Recordings?${query(form)}`);
    $("#recordings-table tbody").replaceChildren(...out.recordings.map((r) => el("tr",
      { "data-recording": r.id },
      el("td", { text: when(r.start_time) }), el("td", { text: r.call_id }),
      el("td", { text: r.caller_no }), el("td", { text: [r.name, r.group].filter(Boolean).join(" / ") }),
      el("td", { text: seconds(r.duration) }), el("td", { text: r.status }),
      el("td", {}, el("div", { class: "row-actions" },
        el("button", { class: "small", "data-action": "play", disabled: r.status !== "completed",
          onclick: () => playRecording(r) }, "Play"),
        el("button", { class: "small", disabled: r.status !== "completed",
          onclick: () => downloadRecording(r) }, "Download"))))));
    $("#recordings-empty").textContent = out.recordings.length ? ""
      : "No recordings in that time. Widen the range, or record a call.";
  } catch (err) {
    $("#recordings-empty").textContent = `Recordings: ${err.message}`;
  }
}

async function recordingBlob(r) {
  return api("GET", `/History/Recordings/${enc(r.id)}/wav`);
}

async function playRecording(r) {
  try {
    const player = $("#player");
    player.src = URL.createObjectURL(await recordingBlob(r));
    player.hidden = false;
    await player.play().catch(() => { /* autoplay may be refused; the controls remain */ });
  } catch (err) {
    flash(`Play failed: ${err.message}`, true);
  }
}

async function downloadRecording(r) {
  try {
    const a = el("a", { href: URL.createObjectURL(await recordingBlob(r)), download: `${r.id}.wav` });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    flash(`Download failed: ${err.message}`, true);
  }
}

function logRow(l) {
  return el("tr", { "data-call-id": l.call_id },
    el("td", { text: when(l.start_time) }), el("td", { text: l.call_id }),
    el("td", { text: l.direction }), el("td", { text: l.caller_no }), el("td", { text: l.api_no }),
    el("td", { text: l.status }), el("td", { text: seconds(l.connected_time) }),
    el("td", { text: l.detection }), el("td", { text: l.error || "" }));
}

async function loadLogs(path) {
  const form = $("#logs-filter");
  defaultRange(form, 24);
  const more = Boolean(path);
  try {
    const out = await api("GET", path || `/History/Logs/Calls?${query(form)}`);
    const body = $("#logs-table tbody");
    const rows = out.logs.map(logRow);
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    $("#logs-empty").textContent = body.children.length ? ""
      : "No calls in that time. Widen the range or clear a filter.";
    state.logsNext = out.next_block_uri || null;
    $("#logs-more").hidden = !state.logsNext;
  } catch (err) {
    $("#logs-empty").textContent = `Call logs: ${err.message}`;
  }
}

function apiPath(uri) {
  // next_block_uri may be absolute; the API client wants the part after /v1
  const u = new URL(uri, location.href);
  return (u.pathname + u.search).replace(/^\/v1/, "");
}

// ---- numbers and callbacks -------------------------------------------------------------

async function loadConfig() {
  try {
    const cfg = await api("GET", "/CallFlows/Configurations/Default");
    $("#default-url").value = (cfg.callback && cfg.callback.url) || "";
    $("#default-json").textContent = JSON.stringify(cfg, null, 2);
  } catch (err) {
    $("#default-json").textContent = err.status === 404
      ? "No Default configuration: calls to numbers without their own get the built-in demo."
      : `Default configuration: ${err.message}`;
  }
  try {
    const [numbers, configs] = await Promise.all([
      api("GET", "/PhoneNumbers"), api("GET", "/CallFlows/Configurations/PhoneNumbers")]);
    const urls = new Map(configs.callbacks.map((c) => [c.number || c.phone_number,
      c.callback && c.callback.url]));
    $("#numbers-table tbody").replaceChildren(...numbers.phone_numbers.map((n) => el("tr", {},
      el("td", { text: n.no }), el("td", { text: n.assigned_to || "" }),
      el("td", { text: n.status || "" }),
      el("td", { text: urls.get(n.no) || "(the Default)" }))));
    $("#numbers-empty").textContent = numbers.phone_numbers.length ? ""
      : "No numbers provisioned: POST /v1/PhoneNumbers/CallFlows adds them. Calls to any " +
        "number still reach the Default call flow.";
  } catch (err) {
    $("#numbers-empty").textContent = `Numbers: ${err.message}`;
  }
}

async function loadSimulator() {
  try {
    const sim = await api("GET", "/Simulator/Numbers");
    $("#simulator-note").textContent = sim.enabled
      ? `Numbers ${sim.numbers} answer inside the switch: ${sim.layout}. Dial them from ` +
        "a flow (DIAL, TRANSFER), Dials/Connect or the Phone tab."
      : "The simulator is off ([simulator] enabled = false).";
    $("#simulator-table tbody").replaceChildren(...(sim.enabled ? sim.behaviours : []).map((b) =>
      el("tr", {}, el("td", { text: b.example }), el("td", { text: b.behaviour }),
        el("td", { class: "wrap", text: b.description }),
        el("td", { class: "wrap", text: b.seconds && b.seconds !== "unused"
          ? `${b.seconds} (00: ${b.default_seconds})` : "" }))));
  } catch (err) {
    $("#simulator-note").textContent = `Simulator: ${err.message}`;
  }
}

// ---- wiring ----------------------------------------------------------------------------

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) {
    b.classList.toggle("active", b.dataset.tab === name);
  }
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "recordings") loadRecordings();
  if (name === "logs") loadLogs();
  if (name === "config") { loadConfig(); loadSimulator(); }
}

function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => showTab(b.dataset.tab);
  $("#login-form").onsubmit = (e) => { e.preventDefault(); signIn($("#login-key").value.trim()); };
  $("#logout").onclick = () => signOut("");
  $("#recordings-filter").onsubmit = (e) => { e.preventDefault(); loadRecordings(); };
  $("#logs-filter").onsubmit = (e) => { e.preventDefault(); loadLogs(); };
  $("#logs-more").onclick = () => state.logsNext && loadLogs(apiPath(state.logsNext));
  $("#default-config").onsubmit = (e) => {
    e.preventDefault();
    act("Save the Default callback", async () => {
      await api("PUT", "/CallFlows/Configurations/Default",
        { callback: { url: $("#default-url").value } });
      await loadConfig();
    });
  };
  wireCallActions();
  // `make run` prints the page's address with the key after '#', which never leaves
  // the browser; it is taken once and wiped from the address bar
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const key = fromHash || sessionStorage.getItem(KEY_STORE);
  if (key) signIn(key).then((ok) => { if (!ok) $("#login").hidden = false; });
  else $("#login").hidden = false;
}

window.voxswitch = { api, act, flash, state, el };
init();
