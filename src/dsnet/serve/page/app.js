// The page of `dsnet serve`: one POST /v1/segment per image (format=label); the overlay, the legend and
// the class shares are computed here from the label PNG and the palette of /v1/model. Nothing is fetched
// from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let current = null; // {image: ImageBitmap, labels: Uint8Array, width, height, url}

function showStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function loadModel() {
  const response = await fetch("/v1/model");
  model = await response.json();
  $("model").textContent = `${model.model} · ${model.label_space.classes.length} classes (${model.label_space.name}) · ` +
    `${model.backend} backend · ${model.precision}`;
  const names = await (await fetch("/v1/examples")).json();
  names.forEach((name, index) => {
    const img = document.createElement("img");
    img.src = `/v1/examples/${index}`;
    img.alt = img.title = name;
    img.addEventListener("click", async () => segment(await (await fetch(img.src)).blob(), name));
    $("examples").appendChild(img);
  });
}

async function segment(blob, name) {
  showStatus(`segmenting ${name}...`, false);
  const started = performance.now();
  const response = await fetch("/v1/segment?format=label", {
    method: "POST",
    headers: {"Content-Type": blob.type || "application/octet-stream"},
    body: blob,
  });
  if (!response.ok) {
    let reason = `${response.status}`;
    try { reason += `: ${(await response.json()).error}`; } catch (e) { /* not JSON */ }
    showStatus(`${name}: ${reason}`, true);
    return;
  }
  const labelBlob = await response.blob();
  const roundTrip = performance.now() - started;
  const [image, {labels, width, height}] = await Promise.all([createImageBitmap(blob), readLabels(labelBlob)]);
  if (current && current.url) URL.revokeObjectURL(current.url);
  current = {image, labels, width, height, url: URL.createObjectURL(labelBlob)};
  $("download").href = current.url;
  $("download").download = name.replace(/\.[^.]+$/, "") + "_label.png";
  const serverMs = response.headers.get("X-DSNet-Latency-Ms");
  $("stats").textContent = `${name}: ${width}x${height} · server ${serverMs} ms, round trip ${roundTrip.toFixed(0)} ms · ` +
    `${response.headers.get("X-DSNet-Backend")} backend, ${response.headers.get("X-DSNet-Precision")}`;
  drawLegend();
  draw();
  $("result").hidden = false;
  showStatus("", false);
}

// The ids of a label PNG (8-bit training ids), read exactly: no colour conversion may touch them.
async function readLabels(labelBlob) {
  const exact = {colorSpaceConversion: "none", premultiplyAlpha: "none"};
  const labelImage = await createImageBitmap(labelBlob, exact);
  const width = labelImage.width, height = labelImage.height;
  const scratch = document.createElement("canvas");
  scratch.width = width; scratch.height = height;
  const ctx = scratch.getContext("2d");
  ctx.drawImage(labelImage, 0, 0);
  const pixels = ctx.getImageData(0, 0, width, height).data;
  const labels = new Uint8Array(width * height);
  for (let i = 0; i < labels.length; i++) labels[i] = pixels[4 * i];
  return {labels, width, height};
}

// `image` drawn on `canvas` at the labels' size, the palette's colours blended in by the opacity slider
// (the still image and every live frame alike).
function drawOverlay(canvas, image, labels, width, height) {
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, width, height);
  const base = ctx.getImageData(0, 0, width, height);
  const alpha = Number($("opacity").value) / 100;
  const palette = model.label_space.palette;
  const out = base.data;
  for (let i = 0; i < labels.length; i++) {
    const color = palette[labels[i]];
    if (!color) continue; // ids outside the palette (none from this model) stay as the image
    for (let c = 0; c < 3; c++) out[4 * i + c] = (1 - alpha) * out[4 * i + c] + alpha * color[c];
  }
  ctx.putImageData(base, 0, 0);
}

function draw() {
  if (current) drawOverlay($("overlay"), current.image, current.labels, current.width, current.height);
}

function drawLegend() {
  const counts = new Array(model.label_space.classes.length).fill(0);
  for (const id of current.labels) if (id < counts.length) counts[id]++;
  const legend = $("legend");
  legend.replaceChildren();
  counts.map((count, id) => ({id, share: count / current.labels.length}))
    .sort((a, b) => b.share - a.share)
    .forEach(({id, share}) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = `rgb(${model.label_space.palette[id].join(",")})`;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = model.label_space.classes[id];
      const value = document.createElement("span");
      value.className = "share";
      value.textContent = `${(100 * share).toFixed(1)} %`;
      item.append(swatch, name, value);
      item.dataset.classId = id;
      legend.appendChild(item);
    });
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) segment(file, file.name);
});
$("opacity").addEventListener("input", draw);
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) segment(file, file.name);
});
loadModel().catch((error) => showStatus(`cannot read /v1/model: ${error}`, true));
