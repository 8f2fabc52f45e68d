// The sketch-pad page of `dmwan serve`: draw (or upload, or type) and see the closest photos.
// Plain ES2020, no build step. The API it speaks is documented in docs/serve.md.
"use strict";

const SIZE = 512;            // backing pixels of the canvas (square)
const DEBOUNCE_MS = 250;     // quiet time after a stroke before searching
const KEY_STORE = "dmwan.apiKey";
const COLLECTION_STORE = "dmwan.collection";

const $ = (id) => document.getElementById(id);
const ui = {
  canvas: $("canvas"), pen: $("tool-pen"), eraser: $("tool-eraser"), width: $("width"),
  widthValue: $("width-value"), undo: $("undo"), clear: $("clear"), upload: $("upload"),
  textForm: $("text-query"), collection: $("collection"), k: $("k"), status: $("status"),
  error: $("error"), results: $("results"), empty: $("empty"),
  keyForm: $("key-form"), keyInput: $("api-key"), keyMessage: $("key-message"),
};
const ctx = ui.canvas.getContext("2d");

const state = {
  key: localStorage.getItem(KEY_STORE) || "",
  collections: [],
  tool: "pen",
  strokes: [],          // the drawing: {kind: "stroke", color, width, points} or {kind: "image", bitmap}
  current: null,        // the stroke under the pointer
  lastQuery: null,      // {kind: "sketch"} | {kind: "file", file} | {kind: "text", text}
  controller: null,     // AbortController of the search in flight
  timer: 0,
  seq: 0,
  objectUrls: [],       // thumbnails fetched with the key, revoked on the next render
  keyWaiters: [],       // resolvers waiting for the key prompt
  ready: null,          // settles once the collection list is loaded (or failed for good)
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** fetch() with the API key; a 401 shows the key prompt and retries once the user gives a key. */
async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
    let res;
    try {
      res = await fetch(path, { ...options, headers });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "The server does not answer.");
    }
    if (res.status === 401) {
      await askForKey(state.key ? "That key was refused." : "");
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await errorText(res));
    return res;
  }
}

async function errorText(res) {
  try {
    const body = await res.json();
    if (body && typeof body.error === "string") return body.error;
  } catch { /* not JSON: fall through */ }
  return `${res.status} ${res.statusText || "error"}`.trim();
}

function askForKey(message) {
  ui.keyMessage.textContent = message;
  ui.keyForm.hidden = false;
  ui.keyInput.focus();
  return new Promise((resolve) => state.keyWaiters.push(resolve));
}

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = ui.keyInput.value.trim();
  if (!state.key) return;
  localStorage.setItem(KEY_STORE, state.key);
  ui.keyForm.hidden = true;
  ui.keyInput.value = "";
  const waiters = state.keyWaiters;
  state.keyWaiters = [];
  waiters.forEach((resolve) => resolve());
});

// ---------------------------------------------------------------- collections

/** Fill the collection picker; retried while the server is starting (503) or unreachable. */
async function loadCollections() {
  let data;
  for (;;) {
    try {
      data = await (await api("collections")).json();
      break;
    } catch (err) {
      showError(err.message);
      if (err.status !== 503 && err.status !== 0) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  state.collections = data.collections || [];
  ui.collection.replaceChildren(...state.collections.map((c) => {
    const label = typeof c.points === "number" ? `${c.name} · ${c.points.toLocaleString()} photos` : c.name;
    return new Option(label, c.name);
  }));
  const saved = localStorage.getItem(COLLECTION_STORE);
  if (state.collections.some((c) => c.name === saved)) ui.collection.value = saved;
  if (!state.collections.length) showError("This server has no collections.");
  else hideError();
  updateTextSearch();
}

function currentCollection() {
  return state.collections.find((c) => c.name === ui.collection.value) || null;
}

function updateTextSearch() {
  const info = currentCollection();
  const enabled = Boolean(info && info.text_search);
  const tip = enabled ? "" : "This collection's model has no text tower: search by sketch.";
  ui.textForm.title = tip;
  for (const el of ui.textForm.elements) { el.disabled = !enabled; el.title = tip; }
}

ui.collection.addEventListener("change", () => {
  localStorage.setItem(COLLECTION_STORE, ui.collection.value);
  updateTextSearch();
  rerun();
});

ui.k.addEventListener("change", () => {
  ui.k.value = String(readK());
  rerun();
});

function readK() {
  const k = Math.round(Number(ui.k.value));
  return Number.isFinite(k) ? Math.min(1000, Math.max(1, k)) : 12;
}

// ---------------------------------------------------------------- search

function rerun() {
  if (!state.lastQuery) return;
  if (state.lastQuery.kind === "sketch" && isEmpty()) return clearResults();
  search(state.lastQuery);
}

async function search(query) {
  clearTimeout(state.timer);
  state.timer = 0;
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  state.lastQuery = query;
  document.body.dataset.state = "busy";
  await state.ready;  // the first strokes may come before the collection list
  if (controller !== state.controller) return;
  const collection = ui.collection.value;
  if (!collection) {
    showError("There is no collection to search.");
    return finish("error");
  }
  const k = readK();
  const path = `collections/${encodeURIComponent(collection)}/search`;
  let url = path, body, headers = { "Content-Type": "application/json" };
  if (query.kind === "file") {
    body = new FormData();
    body.append("sketch", query.file, query.file.name || "sketch");
    url = `${path}?k=${k}`;
    headers = {};  // the browser sets the multipart boundary
  } else if (query.kind === "text") {
    body = JSON.stringify({ text: query.text, k });
  } else {
    body = JSON.stringify({ sketches: [ui.canvas.toDataURL("image/png")], k });
  }
  ui.status.textContent = "searching…";
  try {
    const res = await api(url, { method: "POST", body, headers, signal: controller.signal });
    const answer = await res.json();
    if (controller !== state.controller) return;  // a newer search took over
    window.dmwanLastResponse = answer;
    hideError();
    const results = answer.queries?.[0]?.results || [];
    render(results);
    const t = answer.took_ms;
    const ms = typeof t === "number" ? ` in ${t < 10 ? t.toFixed(1) : Math.round(t)} ms` : "";
    ui.status.textContent = `${results.length} result${results.length === 1 ? "" : "s"}${ms}`;
    finish("idle");
  } catch (err) {
    if (err.name === "AbortError" || controller !== state.controller) return;
    showError(err.message);
    render([]);
    ui.status.textContent = "Search failed.";
    finish("error");
  } finally {
    if (controller === state.controller) state.controller = null;
  }
}

/** A search ended. The page stays "busy" while the drawing has changed since (a stroke under
 * way, or one waiting out the debounce), so "idle" always means the grid matches the canvas. */
function finish(outcome) {
  state.seq += 1;
  document.body.dataset.searchSeq = String(state.seq);
  document.body.dataset.state = state.timer || state.current ? "busy" : outcome;
}

function scheduleSketchSearch() {
  clearTimeout(state.timer);
  state.timer = 0;
  if (isEmpty()) return clearResults();
  document.body.dataset.state = "busy";
  state.timer = setTimeout(() => search({ kind: "sketch" }), DEBOUNCE_MS);
}

function clearResults() {
  clearTimeout(state.timer);
  state.timer = 0;
  state.controller?.abort();
  state.controller = null;
  state.lastQuery = null;
  render([]);
  hideError();
  ui.status.textContent = "Draw a sketch to search.";
  document.body.dataset.state = "idle";
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

// ---------------------------------------------------------------- results

const thumbObserver = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      thumbObserver.unobserve(e.target);
      loadThumbnail(e.target);
    }
  }, { rootMargin: "200px" })
  : null;

function render(results) {
  thumbObserver?.disconnect();
  state.objectUrls.forEach((u) => URL.revokeObjectURL(u));
  state.objectUrls = [];
  ui.results.replaceChildren(...results.map(card));
  ui.empty.hidden = results.length > 0;
}

function card(r) {
  const a = document.createElement("a");
  a.className = "result";
  a.href = r.photo_url;
  a.target = "_blank";
  a.rel = "noopener";
  a.dataset.id = r.id;
  a.dataset.rank = String(r.rank);
  const name = (r.path || "").split(/[\\/]/).pop();
  a.title = r.path || "";

  const img = document.createElement("img");
  img.alt = r.label ? `${r.label}: ${name}` : name;
  img.loading = "lazy";
  img.decoding = "async";
  if (state.key) {
    img.dataset.src = r.thumbnail_url;  // fetched with the key once visible
    thumbObserver ? thumbObserver.observe(img) : loadThumbnail(img);
  } else {
    img.src = r.thumbnail_url;
  }

  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = '<span class="rank"></span><span class="score"></span><span class="label"></span><span class="file"></span>';
  meta.querySelector(".rank").textContent = `#${r.rank}`;
  meta.querySelector(".score").textContent = Number(r.score).toFixed(3);
  meta.querySelector(".label").textContent = r.label ?? "—";
  meta.querySelector(".file").textContent = name;
  a.append(img, meta);
  return a;
}

async function loadThumbnail(img) {
  try {
    const blob = await (await api(img.dataset.src)).blob();
    if (!img.isConnected) return;
    const url = URL.createObjectURL(blob);
    state.objectUrls.push(url);
    img.src = url;
  } catch {
    img.classList.add("broken");
  }
}

// A new tab cannot send the key: with one, fetch the photo here and open it as a blob.
ui.results.addEventListener("click", async (event) => {
  const a = event.target.closest("a.result");
  if (!a || !state.key || event.button !== 0) return;
  event.preventDefault();
  try {
    const blob = await (await api(a.getAttribute("href"))).blob();
    window.open(URL.createObjectURL(blob), "_blank", "noopener");
  } catch (err) {
    showError(err.message);
  }
});

// ---------------------------------------------------------------- drawing

function isEmpty() { return state.strokes.length === 0; }

function paintBackground() {
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, SIZE, SIZE);
  ctx.restore();
}

function drawSegment(stroke, from, to) {
  ctx.strokeStyle = stroke.color;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = stroke.width * to.p;
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

function drawItem(item) {
  if (item.kind === "image") {
    const { bitmap } = item;
    const scale = Math.min(SIZE / bitmap.width, SIZE / bitmap.height);
    const w = bitmap.width * scale, h = bitmap.height * scale;
    ctx.drawImage(bitmap, (SIZE - w) / 2, (SIZE - h) / 2, w, h);
    return;
  }
  const pts = item.points;
  for (let i = 0; i < pts.length; i++) drawSegment(item, pts[Math.max(0, i - 1)], pts[i]);
}

function redraw() {
  paintBackground();
  state.strokes.forEach(drawItem);
}

function pointFrom(event) {
  const box = ui.canvas.getBoundingClientRect();
  // Pressure only from pens: mice report a constant 0.5, touch screens vary wildly.
  const p = event.pointerType === "pen" && event.pressure > 0 ? 0.35 + 1.3 * event.pressure : 1;
  return {
    x: ((event.clientX - box.left) / box.width) * SIZE,
    y: ((event.clientY - box.top) / box.height) * SIZE,
    p,
  };
}

ui.canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.pointerType === "mouse") return;
  event.preventDefault();
  ui.canvas.setPointerCapture(event.pointerId);
  clearTimeout(state.timer);  // no search while the user is still drawing
  state.timer = 0;
  document.body.dataset.state = "busy";
  const eraser = state.tool === "eraser" || event.button === 5;  // 5: a pen's eraser end
  const stroke = { kind: "stroke", color: eraser ? "#fff" : "#111", width: Number(ui.width.value) * (eraser ? 2 : 1), points: [pointFrom(event)] };
  state.current = { stroke, pointerId: event.pointerId };
  state.strokes.push(stroke);
  drawSegment(stroke, stroke.points[0], stroke.points[0]);
});

ui.canvas.addEventListener("pointermove", (event) => {
  const cur = state.current;
  if (!cur || cur.pointerId !== event.pointerId) return;
  const events = event.getCoalescedEvents?.() || [event];
  for (const e of events.length ? events : [event]) {
    const pts = cur.stroke.points, pt = pointFrom(e);
    drawSegment(cur.stroke, pts[pts.length - 1], pt);
    pts.push(pt);
  }
});

function endStroke(event) {
  if (!state.current || state.current.pointerId !== event.pointerId) return;
  state.current = null;
  scheduleSketchSearch();
}
ui.canvas.addEventListener("pointerup", endStroke);
ui.canvas.addEventListener("pointercancel", endStroke);

function setTool(tool) {
  state.tool = tool;
  ui.pen.setAttribute("aria-pressed", String(tool === "pen"));
  ui.eraser.setAttribute("aria-pressed", String(tool === "eraser"));
  ui.canvas.classList.toggle("erasing", tool === "eraser");
}

function undo() {
  if (!state.strokes.length) return;
  state.strokes.pop();
  redraw();
  scheduleSketchSearch();
}

function clearCanvas() {
  state.strokes = [];
  redraw();
  clearResults();
}

ui.pen.addEventListener("click", () => setTool("pen"));
ui.eraser.addEventListener("click", () => setTool("eraser"));
ui.undo.addEventListener("click", undo);
ui.clear.addEventListener("click", clearCanvas);
ui.width.addEventListener("input", () => { ui.widthValue.textContent = ui.width.value; });

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea")) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undo(); }
  else if (event.key === "p") setTool("pen");
  else if (event.key === "e") setTool("eraser");
});

// ---------------------------------------------------------------- upload, drop, text

/** Show an image file on the canvas and search with the file itself (as `dmwan query FILE`). */
async function useFile(file) {
  try {
    const bitmap = await createImageBitmap(file);
    state.strokes = [{ kind: "image", bitmap }];
    redraw();
  } catch {
    // Not an image this browser can decode: send it anyway and let the server say why.
  }
  search({ kind: "file", file });
}

ui.upload.addEventListener("change", () => {
  const file = ui.upload.files?.[0];
  ui.upload.value = "";  // picking the same file again still fires "change"
  if (file) useFile(file);
});

let dragDepth = 0;
document.addEventListener("dragenter", (e) => {
  if (!e.dataTransfer?.types.includes("Files")) return;
  dragDepth += 1;
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) document.body.classList.remove("dragging");
});
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => {
  e.preventDefault();
  dragDepth = 0;
  document.body.classList.remove("dragging");
  const file = e.dataTransfer?.files?.[0];
  if (file) useFile(file);
});

ui.textForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.textForm.elements.text.value.trim();
  if (text) search({ kind: "text", text });
});

// ---------------------------------------------------------------- start

redraw();
render([]);
state.ready = loadCollections();
