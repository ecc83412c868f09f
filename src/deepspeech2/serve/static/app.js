// The ds2 serve page: microphone -> AudioWorklet (16-bit PCM at the model's rate) -> WebSocket
// /v1/stream, with partial text while speaking and the final text with word timings on stop;
// a file dropped or chosen goes to POST /v1/transcribe. Nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("ds2-api-key") || "", rate: 16000, recording: null };

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

function authHeaders() {
  return state.key ? { Authorization: "Bearer " + state.key } : {};
}

function showWords(list, words) {
  list.replaceChildren(...(words || []).map((w) => {
    const li = document.createElement("li");
    li.textContent = w.word;
    const t = document.createElement("span");
    t.textContent = `${w.start.toFixed(2)}–${w.end.toFixed(2)} s`;
    li.append(t);
    return li;
  }));
}

async function connect() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: authHeaders() });
  } catch (e) {
    setStatus("The server is unreachable: is `ds2 serve` running? (" + e.message + ")", "error");
    $("record").disabled = true;
    setTimeout(connect, 3000);
    return;
  }
  if (response.status === 401) {
    $("key-box").hidden = false;
    setStatus("This server needs an API key: enter it above.", "error");
    return;
  }
  if (!response.ok) {
    setStatus(`The server answered ${response.status}: ${await response.text()}`, "error");
    return;
  }
  const model = (await response.json()).data[0];
  state.rate = model.sample_rate;
  $("model").textContent = `${model.id} · ${model.engine} · ${model.mode === "streaming"
    ? "streaming" : "re-decoding every " + model.redecode_seconds + " s"}`;
  $("key-box").hidden = true;
  $("record").disabled = false;
  setStatus("Ready.", "ok");
}

function streamUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = state.key ? "?api_key=" + encodeURIComponent(state.key) : "";
  return `${scheme}//${location.host}/v1/stream${query}`;
}

async function startRecording() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser gives no microphone access here (it needs https or localhost).", "error");
    return;
  }
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true } });
  } catch (e) {
    const refused = e.name === "NotAllowedError" || e.name === "SecurityError";
    setStatus(refused ? "The microphone was refused: allow it for this page and press record again."
      : "No microphone could be opened (" + e.name + ": " + e.message + ").", "error");
    return;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = context.createMediaStreamSource(media);
  const worklet = new AudioWorkletNode(context, "pcm-worklet", { processorOptions: { targetRate: state.rate } });
  const socket = new WebSocket(streamUrl());
  socket.binaryType = "arraybuffer";
  const rec = { media, context, source, worklet, socket, open: false, queue: [], finished: false };
  state.recording = rec;
  $("partial").textContent = "";
  $("final").textContent = "";
  showWords($("words"), []);

  worklet.port.onmessage = (event) => {
    if (rec.eofSent || socket.readyState > WebSocket.OPEN) return; // stopped: the rest is not sent
    if (event.data === "flushed") {
      rec.eofSent = true;
      if (rec.open) socket.send(JSON.stringify({ eof: 1 }));
      else rec.queue.push("eof");
      return;
    }
    if (rec.open) socket.send(event.data);
    else rec.queue.push(event.data);
  };
  socket.onopen = () => {
    socket.send(JSON.stringify({ sample_rate: state.rate, words: true }));
    rec.open = true;
    for (const item of rec.queue) socket.send(item === "eof" ? JSON.stringify({ eof: 1 }) : item);
    rec.queue = [];
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.error) {
      setStatus("The server closed the stream: " + message.error, "error");
    } else if (message.partial !== undefined) {
      $("partial").textContent = message.partial;
    } else if (message.final) {
      rec.finished = true;
      $("partial").textContent = "";
      $("final").textContent = message.text || "(no speech recognised)";
      showWords($("words"), message.words);
      setStatus(`Done: ${message.duration.toFixed(1)} s of audio, final text ${Math.round(message.latency * 1000)} ms after the end.`, "ok");
    } else if (message.segment !== undefined) {
      $("partial").textContent = message.text;
    }
  };
  socket.onerror = () => setStatus("The server is unreachable: the stream could not be opened.", "error");
  socket.onclose = (event) => {
    if (!rec.finished && event.code !== 1000) {
      const why = event.reason || (event.code === 1006 ? "the connection was lost" : "code " + event.code);
      setStatus("The stream ended before the final text: " + why, "error");
    }
    stopAudio(rec);
    if (state.recording === rec) setRecordButton(false);
    state.recording = null;
  };
  source.connect(worklet);
  setRecordButton(true);
  setStatus("Listening… press stop when done.");
}

function stopAudio(rec) {
  rec.media.getTracks().forEach((t) => t.stop());
  rec.source.disconnect();
  rec.context.close().catch(() => {});
}

function stopRecording() {
  const rec = state.recording;
  if (!rec) return;
  setStatus("Finishing…");
  rec.worklet.port.postMessage("flush");
  setRecordButton(false);
  $("record").disabled = true;
  setTimeout(() => { $("record").disabled = false; }, 300);
}

function setRecordButton(on) {
  const button = $("record");
  button.classList.toggle("on", on);
  button.textContent = on ? "■ Stop" : "● Record";
}

async function uploadFile(file) {
  if (!file) return;
  $("file-result").textContent = "Transcribing " + file.name + "…";
  showWords($("file-words"), []);
  const form = new FormData();
  form.append("file", file, file.name);
  let response;
  try {
    response = await fetch("/v1/transcribe", { method: "POST", body: form, headers: authHeaders() });
  } catch (e) {
    $("file-result").textContent = "";
    setStatus("The server is unreachable: " + e.message, "error");
    return;
  }
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    $("file-result").textContent = "";
    setStatus(`${file.name}: ${body.error || response.statusText} (${response.status})`, "error");
    return;
  }
  $("file-result").textContent = body.text || "(no speech recognised)";
  showWords($("file-words"), body.words);
  setStatus(`${file.name}: ${body.duration.toFixed(1)} s transcribed in ${body.elapsed.toFixed(2)} s.`, "ok");
}

$("record").addEventListener("click", () => (state.recording ? stopRecording() : startRecording()));
$("file").addEventListener("change", (e) => uploadFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  uploadFile(e.dataTransfer.files[0]);
});
$("key-save").addEventListener("click", () => {
  state.key = $("api-key").value.trim();
  sessionStorage.setItem("ds2-api-key", state.key);
  connect();
});
connect();
