// Live mode of the `dsnet serve` page: the camera (getUserMedia) or a local video file, played here, its
// frames sent over the WebSocket /v1/stream as fast as answers come back (two frames in flight), and each
// answer (a label PNG) drawn over the frame it answers with the palette of /v1/model. FPS, latency and
// dropped frames are shown; pause and stop. Nothing is fetched from anywhere but this server.
"use strict";

const LONG_SIDE = 640;  // frames are sent at most this large (the model scales them to its own size anyway)
const IN_FLIGHT = 2;  // frames out at a time: the server encodes one answer while the model works on the next
const live = {
  socket: null, stream: null, paused: false, sent: 0, answered: 0, errors: 0, dropped: 0,
  inFlight: new Map(), sending: Promise.resolve(), answerTimes: [], fps: 0, latencyMs: 0, roundTripMs: 0, header: null, lastError: "",
};
window.dsnetLive = live;  // what the page shows, for people reading the console and for the browser tests

function liveStatus(text, isError) {
  const status = document.getElementById("live-status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function setButtons(running) {
  document.getElementById("live-pause").disabled = !running;
  document.getElementById("live-stop").disabled = !running;
  document.getElementById("live-camera").disabled = running;
  document.getElementById("live-file").disabled = running;
}

function captureFrame(video) {
  const scale = Math.min(1, LONG_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return canvas;
}

function sendNext() {
  const video = document.getElementById("live-video");
  if (!live.socket || live.socket.readyState !== WebSocket.OPEN || live.paused) return;
  if (live.inFlight.size >= IN_FLIGHT) return;
  if (!video.videoWidth || video.readyState < 2) {  // no picture yet: look again shortly
    setTimeout(sendNext, 30);
    return;
  }
  const frame = captureFrame(video);
  const index = live.sent++;
  live.inFlight.set(index, {frame, sentAt: performance.now()});
  // sent in capture order, as the server numbers frames by arrival
  live.sending = live.sending.then(() => new Promise((done) => frame.toBlob((blob) => {
    if (live.socket && live.socket.readyState === WebSocket.OPEN) live.socket.send(blob);
    done();
  }, "image/jpeg", 0.85)));
  if (live.inFlight.size < IN_FLIGHT) setTimeout(sendNext, 0);  // the second frame, a moment later
}

function settle(index) {
  // this frame is answered; older ones still out were replaced by newer ones on the server (dropped)
  for (const k of [...live.inFlight.keys()]) if (k < index) live.inFlight.delete(k);
  const sent = live.inFlight.get(index);
  live.inFlight.delete(index);
  return sent;
}

async function drawAnswer(header, labelBlob) {
  const sent = settle(header.frame);
  if (!sent) return;
  const {labels, width, height} = await readLabels(labelBlob);
  const canvas = document.getElementById("live-canvas");
  drawOverlay(canvas, sent.frame, labels, width, height);
  canvas.hidden = false;
  const now = performance.now();
  live.answered++;
  live.answerTimes = live.answerTimes.filter((t) => now - t < 2000).concat([now]);
  live.fps = live.answerTimes.length > 1 ? 1000 * (live.answerTimes.length - 1) / (now - live.answerTimes[0]) : 0;
  live.latencyMs = header.latency_ms;
  live.roundTripMs = now - sent.sentAt;
  live.dropped = header.dropped;
  document.getElementById("live-stats").textContent =
    `${live.fps.toFixed(1)} FPS · latency ${live.roundTripMs.toFixed(0)} ms (server ${header.latency_ms.toFixed(0)} ms, ` +
    `model ${header.inference_ms.toFixed(0)} ms) · ${live.answered} frames segmented, ${live.dropped} dropped, ` +
    `${live.errors} refused · ${width}x${height}`;
}

function onMessage(event) {
  if (typeof event.data === "string") {
    const header = JSON.parse(event.data);
    if (header.error) {
      live.errors++;
      live.lastError = header.error;
      settle(header.frame);
      liveStatus(`frame ${header.frame}: ${header.error}`, true);
      sendNext();
    } else {
      live.header = header;
    }
    return;
  }
  const header = live.header;
  live.header = null;
  if (!header) return;
  drawAnswer(header, event.data).then(sendNext, (error) => liveStatus(`cannot draw the answer: ${error}`, true));
}

async function startLive(describe, attach) {
  const video = document.getElementById("live-video");
  try {
    await attach(video);
    await video.play();
  } catch (error) {
    liveStatus(`${describe}: ${error.message || error}`, true);
    stopLive();
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream?format=label`);
  socket.binaryType = "blob";
  Object.assign(live, {socket, paused: false, sent: 0, answered: 0, errors: 0, dropped: 0, answerTimes: [], fps: 0,
    sending: Promise.resolve()});
  live.inFlight.clear();
  socket.addEventListener("open", () => { liveStatus(`live: ${describe}`, false); sendNext(); });
  socket.addEventListener("message", onMessage);
  socket.addEventListener("close", (event) => {
    if (event.code !== 1000 && event.code !== 1005) liveStatus(`the stream closed: ${event.reason || event.code}`, true);
    if (live.socket === socket) stopLive(true);
  });
  setButtons(true);
  document.getElementById("live-pause").textContent = "pause";
}

function stopLive(closedByServer) {
  if (live.socket && !closedByServer) live.socket.close(1000, "stopped");
  live.socket = null;
  if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
  live.stream = null;
  const video = document.getElementById("live-video");
  video.pause();
  video.srcObject = null;
  if (video.src) { URL.revokeObjectURL(video.src); video.removeAttribute("src"); }
  live.inFlight.clear();
  setButtons(false);
}

document.getElementById("live-camera").addEventListener("click", () => startLive("camera", async (video) => {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser gives no camera here (the page must come from localhost or https)");
  }
  live.stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  video.srcObject = live.stream;
}));
document.getElementById("live-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  startLive(file.name, async (video) => {
    video.srcObject = null;
    video.src = URL.createObjectURL(file);
    video.loop = true;
  });
  event.target.value = "";
});
document.getElementById("live-pause").addEventListener("click", (event) => {
  const video = document.getElementById("live-video");
  live.paused = !live.paused;
  event.target.textContent = live.paused ? "resume" : "pause";
  if (live.paused) { video.pause(); } else { video.play(); sendNext(); }
});
document.getElementById("live-stop").addEventListener("click", () => { stopLive(false); liveStatus("stopped", false); });
