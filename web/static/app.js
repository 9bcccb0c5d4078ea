// tingxie page: uploads, live job list, transcript player.
// Plain ES module, no build step, no dependencies; talks only to the public REST API and its WebSocket push.
import { estimateTimeLeft } from "./eta.js";

const API = document.body.dataset.api || "/api/v1";
const MAX_PARALLEL_UPLOADS = 2;
const POLL_INTERVAL_MS = 1000;
const LIST_REFRESH_MS = 10000;
const JOBS_PER_PAGE = 25;
const TERMINAL = new Set(["done", "failed", "canceled"]);
const VIDEO_EXTENSIONS = new Set(["mp4", "m4v", "mkv", "mov", "webm", "avi", "wmv", "flv", "mpg", "mpeg", "ts", "3gp", "ogv"]);

const STATUS_WORDS = {
  queued: "Queued", running: "Working", done: "Done", failed: "Failed", canceled: "Canceled",
};
// Stage names are the pipeline's; unknown ones are shown as they come, capitalised.
const STAGE_WORDS = {
  queued: "Waiting for a worker", starting: "Starting", loading: "Loading the model", load: "Loading the model",
  model: "Loading the model", probe: "Reading the file", decode: "Reading the audio", decoding: "Reading the audio",
  vad: "Finding speech", asr: "Transcribing", transcribe: "Transcribing", transcribing: "Transcribing",
  punctuation: "Adding punctuation", punct: "Adding punctuation", punc: "Adding punctuation", itn: "Writing numbers", align: "Aligning words",
  diarize: "Telling speakers apart",
  save: "Saving", saving: "Saving", done: "Finished",
};

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/* ------------------------------------------------------------------ formatting */

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

function formatClock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function formatLength(ms) {
  if (ms === null || ms === undefined) return "";
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  const s = seconds % 60;
  return s ? `${m} min ${s} s` : `${m} min`;
}

function formatTimeLeft(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 5) return "a few seconds left";
  if (seconds < 60) return `${Math.round(seconds / 5) * 5} s left`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
  return `about ${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min left`;
}

function formatWhen(iso) {
  if (!iso) return "";
  const then = new Date(iso);
  if (Number.isNaN(then.getTime())) return "";
  const seconds = (Date.now() - then.getTime()) / 1000;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return then.toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric" });
}

function fileExtension(name) {
  const dot = (name || "").lastIndexOf(".");
  return dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
}

function baseName(name) {
  const dot = (name || "").lastIndexOf(".");
  return dot <= 0 ? name || "transcript" : name.slice(0, dot);
}

/* ------------------------------------------------------------------ announcements and network state */

const announcer = $("#announcer");
function announce(message) {
  announcer.textContent = "";
  // A fresh text node after a tick makes screen readers read repeated messages too.
  setTimeout(() => { announcer.textContent = message; }, 50);
}

let toastTimer = 0;
function toast(message) {
  const node = $("#toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 2400);
}

const netStatus = $("#net-status");
function setOnline(online) { netStatus.hidden = online; }

/* ------------------------------------------------------------------ API */

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function errorFromResponse(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    const body = await response.json();
    if (body && body.error) return new ApiError(body.error.code, body.error.message, response.status);
  }
  return new ApiError(`http_${response.status}`, plainHttpError(response.status), response.status);
}

function plainHttpError(status) {
  if (status === 404) return "This job no longer exists.";
  if (status === 413) return "The file is larger than this server accepts.";
  if (status === 415) return "This file type is not supported.";
  if (status === 429) return "Too many requests for now; wait a moment and try again.";
  if (status >= 500) return "The server had a problem. Try again in a moment.";
  return `The server refused the request (HTTP ${status}).`;
}

/* ------------------------------------------------------------------ signing in
   The page signs in with a token (or the one-time code of a sign-in link) and the server keeps the
   session in an HttpOnly cookie this script never sees. State-changing requests carry the session's
   CSRF token, which the server hands out with the session and this script keeps in memory only. */

let csrfToken = null;

function stateHeaders(method) {
  return csrfToken && method && method.toUpperCase() !== "GET" ? { "X-CSRF-Token": csrfToken } : {};
}

function showSignIn(message, { cancelable = false } = {}) {
  $("#main").hidden = true;
  $("#signin").hidden = false;
  $("#account").hidden = true;
  $("#signin-cancel").hidden = !cancelable;
  const error = $("#signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("#signin-token").focus();
}

function showAccount(session) {
  csrfToken = session.csrf_token || null;
  $("#signin").hidden = true;
  $("#main").hidden = false;
  $("#account").hidden = false;
  const who = session.via === "anonymous" ? `${session.tenant} (this machine, no sign-in)` : session.tenant;
  $("#account-name").textContent = session.admin ? `${who} · admin` : who;
  $("#sign-out").hidden = session.via !== "session";
  $("#sign-in-open").hidden = session.via !== "anonymous";
}

async function signIn(token) {
  const response = await fetch(`${API}/session`, {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!response.ok) throw await errorFromResponse(response);
  return response.json();
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#signin-token").value.trim();
  if (!token) { showSignIn("Paste a token first.", { cancelable: !$("#signin-cancel").hidden }); return; }
  try {
    await signIn(token);
    window.location.reload();
  } catch (error) {
    showSignIn(error.message, { cancelable: !$("#signin-cancel").hidden });
  }
});
$("#signin-cancel").addEventListener("click", () => { $("#signin").hidden = true; $("#main").hidden = false; $("#account").hidden = false; });
$("#sign-in-open").addEventListener("click", () => showSignIn("", { cancelable: true }));
$("#sign-out").addEventListener("click", async () => {
  try {
    await api("/session", { method: "DELETE" });
  } catch (error) {
    toast(error.message);
    return;
  }
  window.location.reload();
});

/** A sign-in link carries its one-time code in the fragment (never sent to a server): use it
 * once, then drop it from the address bar. Returns why it did not work, if it did not. */
async function useSignInLink() {
  const match = /^#signin=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (!match) return "";
  history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    await signIn(match[1]);
    return "";
  } catch (error) {
    return `That sign-in link did not work: ${error.message}`;
  }
}

async function api(path, options = {}) {
  let response;
  try {
    const headers = { Accept: "application/json", ...stateHeaders(options.method), ...(options.headers || {}) };
    response = await fetch(API + path, { ...options, headers });
  } catch (networkError) {
    setOnline(false);
    throw new ApiError("network", "Can't reach the tingxie server. Check that it is running.", 0);
  }
  setOnline(true);
  if (response.status === 401) {
    const error = await errorFromResponse(response);
    showSignIn(error.message);
    throw error;
  }
  if (!response.ok) throw await errorFromResponse(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

function jobUrl(job, link, fallback) {
  return (job.links && job.links[link]) || `${API}/jobs/${encodeURIComponent(job.id)}${fallback}`;
}

/* ------------------------------------------------------------------ upload options */

// code -> English name, from GET /api/v1/profiles (the default profile's languages).
const languageNames = new Map([["auto", "Detect automatically"], ["zh", "Chinese"], ["en", "English"]]);

async function loadLanguages() {
  try {
    const { items } = await api("/profiles");
    const profile = items.find((p) => p.default) || items[0];
    if (!profile) return;
    languageNames.clear();
    const list = $("#language-list");
    list.replaceChildren(...profile.languages.map(({ code, name }) => {
      languageNames.set(code, name);
      return el("option", { value: code, text: name });
    }));
  } catch (error) {
    // The three built-in choices stay; the server says which codes it takes when a file is sent.
  }
}

/** A typed language: its code, found by code or by name (case-insensitive); null when unknown. */
function languageCode(typed) {
  const value = typed.trim().toLowerCase();
  if (!value) return "auto";
  if (languageNames.has(value)) return value;
  for (const [code, name] of languageNames) if (name.toLowerCase() === value) return code;
  return null;
}

function currentOptions() {
  const channels = $("#opt-channels").checked;  // each channel is one speaker: then no diarization
  const count = channels ? "" : $("#opt-speakers").value.trim();
  return {
    language: languageCode($("#opt-language").value) ?? $("#opt-language").value.trim(),
    itn: $("#opt-itn").checked,
    hotwords: $("#opt-hotwords").value.trim(),
    diarize: !channels && ($("#opt-diarize").checked || Boolean(count)),
    numSpeakers: count,
    channels,
    channelNames: channels ? $("#opt-channel-names").value.trim() : "",
  };
}

function describeOptions(options) {
  const parts = [];
  parts.push(options.language === "auto" ? "auto language" : languageNames.get(options.language) || options.language);
  parts.push(options.itn ? "ITN on" : "ITN off");
  if (options.diarize) parts.push(options.numSpeakers ? `${options.numSpeakers} speakers` : "speakers");
  if (options.channels) parts.push(options.channelNames ? `channels: ${options.channelNames}` : "channels apart");
  const count = options.hotwords ? options.hotwords.split("\n").filter((line) => line.trim()).length : 0;
  if (count) parts.push(`${count} hotword${count > 1 ? "s" : ""}`);
  return parts.join(" · ");
}

/* ------------------------------------------------------------------ uploads */

const uploadsList = $("#uploads");
const uploads = [];
let uploadSeq = 0;

function addFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  if (files.length > 1) { startBatch(files); return; } // several at once: one batch, one row
  const options = currentOptions();
  for (const file of files) {
    const upload = {
      key: ++uploadSeq, file, options, state: "waiting", xhr: null,
      loaded: 0, total: file.size, samples: [], startedAt: 0, node: null,
    };
    upload.node = renderUpload(upload);
    uploadsList.append(upload.node);
    uploads.push(upload);
  }
  announce(files.length === 1 ? `Uploading ${files[0].name}` : `Uploading ${files.length} files`);
  pumpUploads();
}

function pumpUploads() {
  let active = uploads.filter((u) => u.state === "uploading").length;
  for (const upload of uploads) {
    if (active >= MAX_PARALLEL_UPLOADS) break;
    if (upload.state === "waiting") { startUpload(upload); active += 1; }
  }
}

/** The page's options as the API's fields (a job's form, a link's or a batch's JSON). */
function optionFields(options) {
  const fields = { source: "page", language: options.language, itn: options.itn };
  if (options.hotwords) fields.hotwords = options.hotwords;
  if (options.diarize) fields.diarize = true;
  if (options.numSpeakers) fields.num_speakers = Number(options.numSpeakers);
  if (options.channels) fields.channels = "separate";
  if (options.channelNames) fields.channel_names = options.channelNames;
  return fields;
}

function startUpload(upload) {
  // FormData with the File object: the browser streams the file from disk, it is never read into memory here.
  const form = new FormData();
  for (const [name, value] of Object.entries(optionFields(upload.options))) form.append(name, String(value));
  form.append("file", upload.file, upload.file.name);

  const xhr = new XMLHttpRequest();
  upload.xhr = xhr;
  upload.state = "uploading";
  upload.startedAt = performance.now();
  xhr.open("POST", `${API}/jobs`);
  xhr.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(stateHeaders("POST"))) xhr.setRequestHeader(name, value);
  xhr.responseType = "json";
  xhr.upload.addEventListener("progress", (event) => {
    upload.loaded = event.loaded;
    if (event.lengthComputable) upload.total = event.total;
    const now = performance.now();
    upload.samples.push([now, event.loaded]);
    while (upload.samples.length > 2 && now - upload.samples[0][0] > 5000) upload.samples.shift();
    updateUpload(upload);
  });
  xhr.upload.addEventListener("load", () => { upload.state = "processing"; updateUpload(upload); });
  xhr.addEventListener("load", () => finishUpload(upload));
  xhr.addEventListener("error", () => {
    failUpload(upload, "The upload was interrupted. Check the connection and try again.");
  });
  xhr.addEventListener("abort", () => removeUpload(upload));
  xhr.send(form);
  updateUpload(upload);
}

function finishUpload(upload) {
  const status = upload.xhr.status;
  const body = upload.xhr.response;
  if (status >= 200 && status < 300 && body && body.id) {
    setOnline(true);
    removeUpload(upload);
    const job = { filename: upload.file.name, created_at: new Date().toISOString(), progress: 0, ...body };
    upsertJob(job, { prepend: true });
    watchJob(job.id);
    announce(`${upload.file.name} uploaded, transcription queued`);
    return;
  }
  const message = body && body.error ? body.error.message : plainHttpError(status);
  if (status === 401) showSignIn(message);
  failUpload(upload, message);
}

function failUpload(upload, message) {
  upload.state = "error";
  upload.error = message;
  updateUpload(upload);
  announce(`${upload.file.name}: ${message}`);
  pumpUploads();
}

function removeUpload(upload) {
  const index = uploads.indexOf(upload);
  if (index >= 0) uploads.splice(index, 1);
  upload.node.remove();
  pumpUploads();
}

function cancelUpload(upload) {
  if (upload.xhr && upload.state !== "error") {
    upload.xhr.abort(); // the abort handler removes it
    announce(`Upload of ${upload.file.name} canceled`);
  } else {
    removeUpload(upload);
  }
}

function uploadSpeed(upload) {
  const samples = upload.samples;
  if (samples.length < 2) return 0;
  const [t0, b0] = samples[0];
  const [t1, b1] = samples[samples.length - 1];
  return t1 > t0 ? ((b1 - b0) * 1000) / (t1 - t0) : 0;
}

function renderUpload(upload) {
  const node = el("li", { class: "item upload", "data-state": upload.state });
  const main = el("div", { class: "item-main" },
    el("span", { class: "item-name", title: upload.file.name, text: upload.file.name }),
    el("div", { class: "item-meta" },
      el("span", { class: "badge s-uploading", "data-role": "badge", text: "Uploading" }),
      el("span", { text: formatBytes(upload.file.size) })),
    el("span", { class: "item-options", text: describeOptions(upload.options) }),
    el("div", {
      class: "bar", role: "progressbar", "aria-label": `Upload of ${upload.file.name}`,
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0", "data-role": "bar",
    }, el("div", { class: "bar-fill" })),
    el("span", { class: "item-progress-text", "data-role": "text", text: "Waiting to start…" }));
  const cancel = el("button", {
    class: "btn btn-icon", type: "button", "aria-label": `Cancel upload of ${upload.file.name}`, title: "Cancel upload",
    onclick: () => cancelUpload(upload),
  });
  cancel.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M6 6l12 12M18 6 6 18" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>';
  node.append(main, el("div", { class: "item-actions" }, cancel));
  return node;
}

function updateUpload(upload) {
  const node = upload.node;
  node.dataset.state = upload.state;
  const bar = $('[data-role="bar"]', node);
  const text = $('[data-role="text"]', node);
  const badge = $('[data-role="badge"]', node);
  const fraction = upload.total ? upload.loaded / upload.total : 0;
  bar.firstChild.style.width = `${(fraction * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  bar.classList.toggle("indeterminate", upload.state === "processing");
  if (upload.state === "waiting") {
    text.textContent = "Waiting for another upload to finish…";
  } else if (upload.state === "uploading") {
    const speed = uploadSpeed(upload);
    const parts = [`${formatBytes(upload.loaded)} of ${formatBytes(upload.total)}`];
    if (speed > 0) {
      parts.push(`${formatBytes(speed)}/s`);
      parts.push(formatTimeLeft((upload.total - upload.loaded) / speed));
    }
    text.textContent = parts.join(" · ");
  } else if (upload.state === "processing") {
    badge.textContent = "Checking";
    text.textContent = "Uploaded, the server is checking the file…";
  } else if (upload.state === "error") {
    badge.className = "badge s-error";
    badge.textContent = "Not uploaded";
    bar.hidden = true;
    text.hidden = true;
    if (!$(".item-error", node)) $(".item-main", node).append(el("p", { class: "item-error", role: "alert", text: upload.error }));
    const button = $(".item-actions button", node);
    button.setAttribute("aria-label", `Dismiss ${upload.file.name}`);
    button.title = "Dismiss";
  }
}

/* ------------------------------------------------------------------ drag and drop, file chooser */

const dropzone = $("#dropzone");
const fileInput = $("#file-input");
$("#choose-files").addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  addFiles(fileInput.files);
  fileInput.value = "";
});
const folderInput = $("#folder-input");
$("#choose-folder").addEventListener("click", () => folderInput.click());
folderInput.addEventListener("change", () => {
  const files = Array.from(folderInput.files || []);
  folderInput.value = "";
  if (!files.length) return;
  const folder = (files[0].webkitRelativePath || "").split("/")[0];
  startBatch(files, folder || undefined); // a folder is a batch, even of one file
});

let dragDepth = 0;
const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
window.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  dragDepth += 1;
  dropzone.classList.add("dragging");
});
window.addEventListener("dragleave", (event) => {
  if (!hasFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) dropzone.classList.remove("dragging");
});
window.addEventListener("dragover", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault(); // anywhere on the page counts: the browser must not open the file instead
  event.dataTransfer.dropEffect = "copy";
});
window.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("dragging");
  addFiles(event.dataTransfer.files);
});
window.addEventListener("beforeunload", (event) => {
  if (uploads.some((u) => u.state === "uploading" || u.state === "processing") || batchUploadsActive()) {
    event.preventDefault();
    event.returnValue = "";
  }
});

/* ------------------------------------------------------------------ jobs */

const jobsList = $("#jobs");
const jobs = new Map(); // id -> job as last seen from the API
const jobNodes = new Map(); // id -> <li>
const etas = new Map(); // id -> {state, leftS}: the time-left estimate (eta.js)
let jobsTotal = 0;
let pagesLoaded = 0;
let openJobId = null;

function upsertJob(job, { prepend = false, append = false } = {}) {
  const previous = jobs.get(job.id) || {};
  const merged = { ...previous, ...job };
  jobs.set(job.id, merged);
  let node = jobNodes.get(job.id);
  if (!node) {
    node = renderJob(merged);
    jobNodes.set(job.id, node);
    if (prepend) { jobsList.prepend(node); jobsTotal += 1; } else jobsList.append(node);
  }
  updateJob(merged, previous);
  updateJobsChrome();
  return merged;
}

function removeJob(id) {
  const node = jobNodes.get(id);
  if (node) node.remove();
  jobNodes.delete(id);
  jobs.delete(id);
  etas.delete(id);
  stopWatching(id);
  jobsTotal = Math.max(0, jobsTotal - 1);
  if (openJobId === id) closeViewer();
  updateJobsChrome();
}

function updateJobsChrome() {
  $("#jobs-empty").hidden = jobs.size > 0 || batchesList.childElementCount > 0;
  $("#jobs-count").textContent = jobsTotal ? `${jobsTotal} total` : "";
  $("#jobs-more").hidden = jobs.size >= jobsTotal;
}

function renderJob(job) {
  const node = el("li", { class: "item job", "data-id": job.id });
  const name = el("button", { class: "job-open", type: "button", onclick: () => openJob(job.id) });
  const main = el("div", { class: "item-main" },
    name,
    el("div", { class: "item-meta" },
      el("span", { class: "badge", "data-role": "badge" }),
      el("span", { "data-role": "duration" }),
      el("span", { "data-role": "when" })),
    el("div", {
      class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "data-role": "bar",
    }, el("div", { class: "bar-fill" })),
    el("span", { class: "item-progress-text", "data-role": "text" }),
    el("p", { class: "item-error", role: "alert", "data-role": "error", hidden: true }),
    el("p", { class: "item-warning", "data-role": "warnings", hidden: true }));
  node.append(main, el("div", { class: "item-actions", "data-role": "actions" }));
  return node;
}

function jobProgressText(job) {
  // A running job may wait for something outside it (the media store down): say so instead of its stage.
  if (job.waiting_reason) return queuedText(job);
  const stage = job.stage ? STAGE_WORDS[job.stage] || job.stage.charAt(0).toUpperCase() + job.stage.slice(1) : "Working";
  const parts = [stage];
  const progress = Number(job.progress) || 0;
  parts.push(`${Math.round(progress * 100)}%`);
  const eta = etas.get(job.id);
  if (eta && eta.leftS !== null) parts.push(formatTimeLeft(eta.leftS));
  return parts.filter(Boolean).join(" · ");
}

/** A queued job says what it waits for: the API names a profile no live worker serves. */
function queuedText(job) {
  const reason = job.waiting_reason;
  return reason ? reason.charAt(0).toUpperCase() + reason.slice(1) : "Waiting for a worker";
}

function updateJob(job, previous) {
  const node = jobNodes.get(job.id);
  if (!node) return;
  const status = job.status || "queued";
  const name = job.filename || job.id;
  node.dataset.status = status;
  node.classList.toggle("openable", status === "done");
  node.classList.toggle("selected", openJobId === job.id);

  const open = $(".job-open", node);
  open.textContent = name;
  open.title = name;
  open.disabled = status !== "done";
  open.setAttribute("aria-label", status === "done" ? `Open transcript of ${name}` : `${name}, ${STATUS_WORDS[status] || status}`);

  const badge = $('[data-role="badge"]', node);
  badge.className = `badge s-${status}`;
  badge.textContent = STATUS_WORDS[status] || status;
  $('[data-role="duration"]', node).textContent = job.duration_ms ? `${formatLength(job.duration_ms)} audio` : "";
  $('[data-role="when"]', node).textContent = formatWhen(job.created_at);

  if (status === "running" && (job.stage !== previous.stage || job.progress !== previous.progress || !etas.has(job.id))) {
    const update = { stage: job.stage, progress: Number(job.progress) || 0, nowS: performance.now() / 1000 };
    etas.set(job.id, estimateTimeLeft((etas.get(job.id) || {}).state || null, update));
  }
  const bar = $('[data-role="bar"]', node);
  const text = $('[data-role="text"]', node);
  const active = !TERMINAL.has(status);
  bar.hidden = !active;
  text.hidden = !active;
  if (active) {
    const progress = Math.min(1, Math.max(0, Number(job.progress) || 0));
    bar.firstChild.style.width = `${(progress * 100).toFixed(1)}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(progress * 100)));
    bar.setAttribute("aria-label", `Progress of ${name}`);
    bar.classList.toggle("indeterminate", status === "queued");
    text.textContent = status === "queued" ? queuedText(job) : jobProgressText(job);
  }

  const error = $('[data-role="error"]', node);
  const message = status === "failed" ? (job.error && job.error.message) || "The transcription failed." : "";
  error.hidden = !message;
  error.textContent = message;
  if (status === "canceled") {
    error.hidden = false;
    error.textContent = "Canceled.";
    error.removeAttribute("role");
  }

  const warnings = $('[data-role="warnings"]', node);
  const warningText = (job.warnings || []).join(" ");
  warnings.hidden = !warningText;
  warnings.textContent = warningText;

  if (!previous || previous.status !== status) renderJobActions(job);
  if (previous && previous.status && previous.status !== status && TERMINAL.has(status)) {
    announce(`${name}: ${STATUS_WORDS[status]}`);
  }
}

const ICON_STOP = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><rect x="7" y="7" width="10" height="10" rx="2" fill="none" stroke="currentColor" stroke-width="2"/></svg>';
const ICON_TRASH = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M5 7h14M10 7V5h4v2m-7 0 1 12h8l1-12" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';

function renderJobActions(job) {
  const node = jobNodes.get(job.id);
  const actions = $('[data-role="actions"]', node);
  actions.replaceChildren();
  const name = job.filename || job.id;
  if (!TERMINAL.has(job.status)) {
    const cancel = el("button", {
      class: "btn btn-icon", type: "button", title: "Cancel transcription", "aria-label": `Cancel transcription of ${name}`,
      onclick: () => deleteJob(job.id, "cancel"),
    });
    cancel.innerHTML = ICON_STOP;
    actions.append(cancel);
  } else {
    const remove = el("button", {
      class: "btn btn-icon", type: "button", title: "Delete job and its files", "aria-label": `Delete ${name}`,
    });
    remove.innerHTML = ICON_TRASH;
    let armed = 0;
    remove.addEventListener("click", () => {
      if (armed) { clearTimeout(armed); deleteJob(job.id, "delete"); return; }
      // Deleting removes files: ask once more in place instead of a modal dialog.
      remove.classList.add("btn-danger-confirm");
      remove.textContent = "Delete?";
      remove.setAttribute("aria-label", `Press again to delete ${name}`);
      armed = setTimeout(() => {
        armed = 0;
        remove.classList.remove("btn-danger-confirm");
        remove.innerHTML = ICON_TRASH;
        remove.setAttribute("aria-label", `Delete ${name}`);
      }, 4000);
    });
    actions.append(remove);
  }
}

async function deleteJob(id, kind) {
  const job = jobs.get(id);
  const name = (job && job.filename) || id;
  try {
    await api(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (error) {
    if (error.status !== 404) { toast(error.message); return; }
  }
  if (kind === "cancel") {
    const fresh = await api(`/jobs/${encodeURIComponent(id)}`).catch((error) => { console.warn("tingxie: could not re-read the job", error); return null; });
    upsertJob(fresh || { id, status: "canceled" });
    announce(`${name} canceled`);
  } else {
    removeJob(id);
    announce(`${name} deleted`);
  }
}

async function loadJobs(page = 1) {
  const data = await api(`/jobs?page=${page}&per_page=${JOBS_PER_PAGE}&in_batch=false`);
  jobsTotal = data.total ?? data.items.length;
  pagesLoaded = Math.max(pagesLoaded, page);
  for (const job of data.items) {
    upsertJob(job, { append: true });
    if (!TERMINAL.has(job.status)) watchJob(job.id);
  }
  updateJobsChrome();
}

/** Fold in jobs made elsewhere (another tab, the CLI, curl) and drop ones deleted elsewhere. */
async function refreshJobs() {
  if (document.hidden) return;
  const data = await api(`/jobs?page=1&per_page=${JOBS_PER_PAGE}&in_batch=false`);
  const seen = new Set();
  for (const job of data.items.slice().reverse()) {
    seen.add(job.id);
    upsertJob(job, { prepend: !jobNodes.has(job.id) });
    if (!TERMINAL.has(job.status)) watchJob(job.id);
  }
  if (pagesLoaded <= 1 && data.items.length < JOBS_PER_PAGE) {
    for (const id of Array.from(jobs.keys())) if (!seen.has(id)) removeJob(id);
  }
  jobsTotal = data.total ?? jobsTotal;
  updateJobsChrome();
}

$("#jobs-more").addEventListener("click", () => {
  loadJobs(pagesLoaded + 1).catch((error) => toast(error.message));
});

/* ------------------------------------------------------------------ a link or bucket key
   The server fetches it (a worker, under the deployment's rules for addresses and buckets); the job
   then is like an uploaded one. */

const LINK_FORM = /^(https?:\/\/\S+|s3:\/\/[^\s/]+\/\S+)$/i;

function linkName(url) {
  const path = url.split(/[?#]/)[0].replace(/\/+$/, "");
  return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1)) || url;
}

$("#link-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#link-input");
  const error = $("#link-error");
  const button = $('button[type="submit"]', event.currentTarget);
  const url = input.value.trim();
  error.hidden = true;
  if (!LINK_FORM.test(url)) {
    error.textContent = "Paste an http:// or https:// link to a recording, or an s3://bucket/key this server may read.";
    error.hidden = false;
    input.focus();
    return;
  }
  button.disabled = true;
  try {
    const accepted = await api("/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ source_url: url, ...optionFields(currentOptions()) }),
    });
    input.value = "";
    const job = upsertJob({ filename: linkName(url), created_at: new Date().toISOString(), progress: 0, ...accepted },
      { prepend: true });
    watchJob(job.id);
    announce(`${job.filename}: queued, the server fetches it`);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

/* ------------------------------------------------------------------ batches
   Several files chosen at once (or a folder) are one batch: created open, each file uploaded into it
   (keyed by its name, or its path in the folder), then closed. The batch is one row with one progress
   bar from GET /batches/{id}; its jobs stay out of the job list (they are under the row's Files). */

const BATCHES_SHOWN = 10;
const BATCH_ENDED = new Set(["completed", "canceled"]);
const BATCH_WORDS = { open: "Open", running: "Working", completed: "Done", canceled: "Canceled" };
const BATCH_BADGES = { open: "queued", running: "running", completed: "done", canceled: "canceled" };
const ZIP_FORMATS = "txt,srt,vtt,json";
const batchesList = $("#batches");
const batchRows = new Map(); // batch id -> {id, data, node, upload, label, error}
let batchesBeingCreated = 0;

function batchUploadsActive() {
  return batchesBeingCreated > 0 || Array.from(batchRows.values()).some((row) => row.upload && !row.upload.finished);
}

function batchKey(file) {
  return file.webkitRelativePath || file.name;
}

async function startBatch(files, name) {
  const options = currentOptions();
  const label = name || `${files.length} files`;
  const row = {
    id: null, data: null, error: "", label, node: null,
    upload: {
      files, loaded: new Map(), sent: 0, failures: [], finished: false, canceled: false, xhrs: new Set(),
      total: files.reduce((sum, file) => sum + file.size, 0),
    },
  };
  const { upload } = row;
  row.node = renderBatch(row);
  batchesList.prepend(row.node);
  updateBatch(row);
  announce(`Uploading ${files.length} files as one batch`);
  batchesBeingCreated += 1;
  try {
    row.data = await api("/batches", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: label, ...optionFields(options) }),
    });
    row.id = row.data.id;
    batchRows.set(row.id, row);
  } catch (error) {
    upload.finished = true;
    row.error = error.message;
    updateBatch(row);
    return;
  } finally {
    batchesBeingCreated -= 1;
  }
  if (upload.canceled) { await cancelBatch(row); return; } // canceled while it was being created
  updateBatch(row);
  let next = 0;
  const sender = async () => {
    while (next < files.length && !upload.canceled) {
      const file = files[next];
      next += 1;
      try {
        await uploadIntoBatch(row, file);
        upload.sent += 1;
      } catch (error) {
        if (!upload.canceled) upload.failures.push(`${batchKey(file)}: ${error.message}`);
      }
      updateBatch(row);
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_UPLOADS, files.length) }, sender));
  if (upload.canceled) return; // cancelBatch has canceled it on the server
  upload.finished = true;
  try {
    row.data = await api(`/batches/${encodeURIComponent(row.id)}/close`, { method: "POST" });
    announce(`${label}: ${row.upload.sent} files uploaded, transcription queued`);
  } catch (error) {
    row.error = error.message;
  }
  updateBatch(row);
}

/** One file into the open batch, streamed from disk as a single upload is; resolves with its job. */
function uploadIntoBatch(row, file) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("key", batchKey(file));
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    row.upload.xhrs.add(xhr);
    xhr.open("POST", `${API}/batches/${encodeURIComponent(row.id)}/files`);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(stateHeaders("POST"))) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      row.upload.loaded.set(file, event.loaded);
      updateBatch(row);
    });
    xhr.addEventListener("loadend", () => row.upload.xhrs.delete(xhr));
    xhr.addEventListener("load", () => {
      row.upload.loaded.set(file, file.size);
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) { setOnline(true); resolve(body); return; }
      const message = body && body.error ? body.error.message : plainHttpError(xhr.status);
      if (xhr.status === 401) showSignIn(message);
      reject(new ApiError(body && body.error ? body.error.code : `http_${xhr.status}`, message, xhr.status));
    });
    xhr.addEventListener("error", () => reject(new ApiError("network", "The upload was interrupted.", 0)));
    xhr.addEventListener("abort", () => reject(new ApiError("aborted", "Canceled.", 0)));
    xhr.send(form);
  });
}

function renderBatch(row) {
  const node = el("li", { class: "item batch" });
  const list = el("ul", { "aria-label": "Files of this batch" });
  const files = el("details", { class: "batch-files", "data-role": "files", hidden: true },
    el("summary", { text: "Files" }), list);
  files.addEventListener("toggle", () => { if (files.open) loadBatchFiles(row, list); });
  const main = el("div", { class: "item-main" },
    el("span", { class: "item-name", "data-role": "name" }),
    el("div", { class: "item-meta" },
      el("span", { class: "badge", "data-role": "badge" }),
      el("span", { "data-role": "counts" }),
      el("span", { "data-role": "when" })),
    el("div", {
      class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "data-role": "bar",
    }, el("div", { class: "bar-fill" })),
    el("span", { class: "item-progress-text", "data-role": "text" }),
    el("p", { class: "item-error", role: "alert", "data-role": "error", hidden: true }),
    el("a", { class: "btn batch-zip", "data-role": "zip", download: "", hidden: true, text: "Download transcripts (zip)" }),
    files);
  node.append(main, el("div", { class: "item-actions", "data-role": "actions" }));
  return node;
}

async function loadBatchFiles(row, list) {
  try {
    const data = await api(`/batches/${encodeURIComponent(row.id)}/jobs?per_page=100`);
    list.replaceChildren(...data.items.map((job) => {
      const name = job.batch_key || job.filename || job.id;
      return el("li", {},
        el("span", { class: `badge s-${job.status}`, text: STATUS_WORDS[job.status] || job.status }),
        el("button", {
          class: "file-open", type: "button", text: name, title: name, disabled: job.status !== "done",
          "aria-label": job.status === "done" ? `Open transcript of ${name}` : `${name}, ${STATUS_WORDS[job.status] || job.status}`,
          onclick: () => { window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`; },
        }));
    }));
    if (data.total > data.items.length) {
      list.append(el("li", { class: "muted", text: `and ${data.total - data.items.length} more: download the zip` }));
    }
  } catch (error) {
    list.replaceChildren(el("li", { class: "item-error", text: error.message }));
  }
}

function batchStatus(row) {
  if (row.upload && !row.upload.finished) return "uploading";
  if (!row.data) return "failed";
  return row.data.status;
}

function updateBatch(row) {
  const { node, data, upload } = row;
  const status = batchStatus(row);
  const previous = node.dataset.status;
  node.dataset.status = status;
  if (row.id) node.dataset.id = row.id;
  const name = (data && data.name) || row.label || row.id;
  const nameNode = $('[data-role="name"]', node);
  nameNode.textContent = name;
  nameNode.title = name;

  const badge = $('[data-role="badge"]', node);
  badge.className = `badge s-${status === "uploading" ? "uploading" : status === "failed" ? "error" : BATCH_BADGES[status]}`;
  badge.textContent = status === "uploading" ? "Uploading" : status === "failed" ? "Not created" : BATCH_WORDS[status] || status;
  $('[data-role="when"]', node).textContent = data ? formatWhen(data.created_at) : "";

  const counts = $('[data-role="counts"]', node);
  const bar = $('[data-role="bar"]', node);
  const text = $('[data-role="text"]', node);
  let fraction = 0;
  if (status === "uploading") {
    const loaded = Array.from(upload.loaded.values()).reduce((sum, bytes) => sum + bytes, 0);
    fraction = upload.total ? loaded / upload.total : 0;
    counts.textContent = `${upload.sent} of ${upload.files.length} files sent`;
    text.textContent = `Uploading ${formatBytes(loaded)} of ${formatBytes(upload.total)}`;
  } else if (data) {
    const c = data.counts || {};
    const parts = [`${c.done || 0} of ${data.total} done`];
    if (c.failed) parts.push(`${c.failed} failed`);
    if (c.canceled) parts.push(`${c.canceled} canceled`);
    counts.textContent = parts.join(" · ");
    fraction = Number(data.progress) || 0;
    let left = "";
    if (status === "open") left = "Taking files";
    else if (BATCH_ENDED.has(status)) left = "";
    else if (data.eta_s !== null && data.eta_s !== undefined) left = formatTimeLeft(data.eta_s);
    else if (!c.running) left = "Waiting for a worker";
    text.textContent = [`${Math.round(fraction * 100)}%`, left].filter(Boolean).join(" · ");
  }
  fraction = Math.min(1, Math.max(0, fraction));
  bar.hidden = status === "failed";
  bar.firstChild.style.width = `${(fraction * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  bar.setAttribute("aria-label", `Progress of ${name}`);
  text.hidden = status === "failed";

  const error = $('[data-role="error"]', node);
  const problems = [row.error, ...(upload ? upload.failures : []).map((failure) => `Not uploaded: ${failure}`)].filter(Boolean);
  error.textContent = problems.join("\n");
  error.hidden = !problems.length;

  const zip = $('[data-role="zip"]', node);
  const done = data && data.counts ? data.counts.done || 0 : 0;
  zip.hidden = !(data && done > 0);
  if (data) zip.href = `${data.links.transcripts}?format=${ZIP_FORMATS}`;
  const files = $('[data-role="files"]', node);
  files.hidden = !(data && data.total > 0);
  if (files.open && row.shownDone !== done) loadBatchFiles(row, $("ul", files));
  row.shownDone = done;

  updateJobsChrome();
  if (previous !== status) {
    renderBatchActions(row, status);
    if (previous && BATCH_ENDED.has(status)) announce(`${name}: ${BATCH_WORDS[status]}`);
  }
}

function renderBatchActions(row, status) {
  const actions = $('[data-role="actions"]', row.node);
  actions.replaceChildren();
  const name = (row.data && row.data.name) || row.label;
  if (!BATCH_ENDED.has(status) && status !== "failed") {
    const cancel = el("button", {
      class: "btn btn-icon", type: "button", title: "Cancel the batch", "aria-label": `Cancel batch ${name}`,
      onclick: () => cancelBatch(row),
    });
    cancel.innerHTML = ICON_STOP;
    actions.append(cancel);
    return;
  }
  const remove = el("button", {
    class: "btn btn-icon", type: "button", title: "Delete the batch, its jobs and their files", "aria-label": `Delete batch ${name}`,
  });
  remove.innerHTML = ICON_TRASH;
  let armed = 0;
  remove.addEventListener("click", () => {
    if (armed || !row.id) { clearTimeout(armed); deleteBatch(row); return; }
    remove.classList.add("btn-danger-confirm");
    remove.textContent = "Delete?";
    remove.setAttribute("aria-label", `Press again to delete batch ${name}`);
    armed = setTimeout(() => {
      armed = 0;
      remove.classList.remove("btn-danger-confirm");
      remove.innerHTML = ICON_TRASH;
      remove.setAttribute("aria-label", `Delete batch ${name}`);
    }, 4000);
  });
  actions.append(remove);
}

async function cancelBatch(row) {
  const { upload } = row;
  if (upload && !upload.finished) {
    upload.canceled = true;
    for (const xhr of upload.xhrs) xhr.abort();
  }
  if (!row.id) return; // startBatch cancels it once the server has answered with its id
  try {
    row.data = await api(`/batches/${encodeURIComponent(row.id)}/cancel`, { method: "POST" });
  } catch (error) {
    if (error.code !== "not_cancelable") toast(error.message);
    row.data = await api(`/batches/${encodeURIComponent(row.id)}`).catch(() => row.data);
  }
  if (upload) upload.finished = true;
  updateBatch(row);
}

async function deleteBatch(row) {
  if (row.id) {
    try {
      await api(`/batches/${encodeURIComponent(row.id)}`, { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) { toast(error.message); return; }
    }
    batchRows.delete(row.id);
  }
  row.node.remove();
  updateJobsChrome();
  announce(`${(row.data && row.data.name) || row.label} deleted`);
}

/** The tenant's latest batches, newest first (uploads under way in this tab keep their own state). */
async function loadBatches() {
  if (batchesBeingCreated) return; // its row is not keyed yet: it would be shown twice
  const data = await api(`/batches?page=1&per_page=${BATCHES_SHOWN}`);
  for (const batch of data.items.slice().reverse()) {
    let row = batchRows.get(batch.id);
    if (!row) {
      row = { id: batch.id, data: batch, node: null, upload: null, label: "", error: "" };
      row.node = renderBatch(row);
      batchRows.set(batch.id, row);
      batchesList.prepend(row.node);
    }
    row.data = batch;
    updateBatch(row);
  }
  const seen = new Set(data.items.map((batch) => batch.id));
  for (const [id, row] of batchRows) {
    if (!seen.has(id) && !(row.upload && !row.upload.finished) && data.total < BATCHES_SHOWN) {
      batchRows.delete(id);
      row.node.remove();
    }
  }
}

/** Batches that have not ended (and are not still being uploaded here) are read once a tick. */
async function pollBatches() {
  const due = Array.from(batchRows.values())
    .filter((row) => row.data && !BATCH_ENDED.has(row.data.status) && !(row.upload && !row.upload.finished));
  await Promise.all(due.map(async (row) => {
    try {
      row.data = await api(`/batches/${encodeURIComponent(row.id)}`);
      updateBatch(row);
    } catch (error) {
      if (error.status === 404) { batchRows.delete(row.id); row.node.remove(); } else console.warn("tingxie: batch poll failed", error);
    }
  }));
}

/* ------------------------------------------------------------------ live updates: WebSocket push, polling fallback */

const watchers = new Map(); // id -> {socket|null, polling: bool}
let pushWorks = true; // turned off at the first socket that cannot open: then everything polls

function watchJob(id) {
  if (watchers.has(id)) return;
  const watcher = { socket: null, polling: false };
  watchers.set(id, watcher);
  if (pushWorks && "WebSocket" in window) openSocket(id, watcher);
  else watcher.polling = true;
}

function stopWatching(id) {
  const watcher = watchers.get(id);
  if (!watcher) return;
  watchers.delete(id);
  if (watcher.socket) watcher.socket.close();
}

function socketUrl(id) {
  const job = jobs.get(id) || { id };
  const url = new URL(jobUrl(job, "events", "/events"), window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function openSocket(id, watcher) {
  let opened = false;
  const socket = new WebSocket(socketUrl(id));
  watcher.socket = socket;
  socket.addEventListener("open", () => { opened = true; });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (parseError) {
      console.warn("tingxie: ignoring a push message that is not JSON", event.data, parseError);
      return;
    }
    applyEvent(id, message);
  });
  socket.addEventListener("close", () => {
    watcher.socket = null;
    if (!watchers.has(id)) return;
    if (!opened) pushWorks = false;
    const job = jobs.get(id);
    if (job && TERMINAL.has(job.status)) { watchers.delete(id); return; }
    watcher.polling = true; // the push ended early or never worked: poll until the job ends
  });
}

function applyEvent(id, message) {
  // A snapshot is the job itself (or wraps it); an event carries its type and whatever fields changed.
  const snapshot = message.job || (message.id && message.status ? message : null);
  if (snapshot) { upsertJob({ ...snapshot, id }); }
  if (message.type === "error" && message.error) {
    // The push refuses an unknown job: it was deleted elsewhere.
    if (message.error.code === "not_found") removeJob(id);
    return;
  }
  const type = message.type;
  const patch = { id };
  const fields = { ...message, ...(message.data || {}) };
  for (const field of ["status", "stage", "progress", "error", "duration_ms", "warnings", "started_at", "finished_at", "links"]) {
    if (fields[field] !== undefined && fields[field] !== null) patch[field] = fields[field];
  }
  if ("waiting_reason" in fields) patch.waiting_reason = fields.waiting_reason; // null: it goes on
  if (type && STATUS_WORDS[type]) patch.status = type;
  if (type === "progress" && patch.status === undefined) patch.status = "running";
  if (Object.keys(patch).length > 1) upsertJob(patch);
  const job = jobs.get(id);
  if (job && TERMINAL.has(job.status)) {
    // The final event may be terse: fetch the full job once for timings, duration and error text.
    api(`/jobs/${encodeURIComponent(id)}`).then((fresh) => upsertJob(fresh)).catch((error) => console.warn(error));
  }
}

async function pollActive() {
  const due = Array.from(watchers.entries()).filter(([, watcher]) => watcher.polling);
  if (due.length > 8) {
    // Many jobs waiting: one list request a second instead of one request per job.
    const data = await api("/jobs?page=1&per_page=100").catch((error) => { console.warn("tingxie: poll failed", error); return null; });
    for (const job of data ? data.items : []) {
      if (!watchers.has(job.id)) continue;
      upsertJob(job);
      if (TERMINAL.has(job.status)) watchers.delete(job.id);
    }
    return;
  }
  await Promise.all(due.map(async ([id]) => {
    try {
      const job = await api(`/jobs/${encodeURIComponent(id)}`);
      upsertJob(job);
      if (TERMINAL.has(job.status)) watchers.delete(id);
    } catch (error) {
      // Gone: drop it. Unreachable server: the banner says so and the next tick tries again.
      if (error.status === 404) removeJob(id);
      else console.warn("tingxie: poll failed", error);
    }
  }));
}

function schedulePolling() {
  setTimeout(async () => {
    await Promise.all([pollActive(), pollBatches()]);
    schedulePolling();
  }, POLL_INTERVAL_MS);
}

/* ------------------------------------------------------------------ transcript viewer */

const viewer = $("#viewer");
const playerBox = $("#player");
const transcriptBox = $("#transcript");
const searchInput = $("#search");
let media = null;
let segments = []; // [{start_ms, end_ms, text, node, words: [indexes], plain, offsets}]
let words = []; // flat, in time order: {start_ms, end_ms, node, seg}
let currentWord = -1;
let currentSeg = -1;
let lastUserScroll = 0;
let viewToken = 0;

function transcriptLang(language) {
  if (!language) return "";
  if (language.startsWith("zh")) return "zh-Hans";
  return language;
}

async function openJob(id) {
  const token = ++viewToken;
  openJobId = id;
  for (const [jobId, node] of jobNodes) node.classList.toggle("selected", jobId === id);
  if (window.location.hash !== `#/jobs/${id}`) history.replaceState(null, "", `#/jobs/${id}`);
  document.body.classList.add("viewing");
  viewer.hidden = false;
  resetViewer();
  transcriptBox.replaceChildren(el("p", { class: "transcript-status", text: "Loading transcript…" }));

  let job = jobs.get(id);
  try {
    if (!job || job.status !== "done") {
      const fresh = await api(`/jobs/${encodeURIComponent(id)}`);
      job = fresh.batch_id ? fresh : upsertJob(fresh); // a batch's job is listed under its batch
    }
    if (token !== viewToken) return;
    $("#viewer-title").textContent = job.filename || id;
    if (job.status !== "done") {
      transcriptBox.replaceChildren(el("p", { class: "transcript-status", text: `This job is ${STATUS_WORDS[job.status] || job.status}; its transcript is not ready.` }));
      return;
    }
    const transcript = await api(`/jobs/${encodeURIComponent(id)}/transcript?format=json`);
    if (token !== viewToken) return;
    showTranscript(job, transcript);
  } catch (error) {
    if (token !== viewToken) return;
    transcriptBox.replaceChildren(el("p", { class: "transcript-status", role: "alert", text: error.message }));
  }
}

function resetViewer() {
  if (media) { media.pause(); media.removeAttribute("src"); media.load(); }
  media = null;
  playerBox.replaceChildren();
  $("#player-note").hidden = true;
  segments = [];
  words = [];
  currentWord = -1;
  currentSeg = -1;
  searchInput.value = "";
  updateSearch();
  $("#viewer-meta").textContent = "";
}

function closeViewer() {
  viewToken += 1;
  resetViewer();
  openJobId = null;
  viewer.hidden = true;
  document.body.classList.remove("viewing");
  for (const node of jobNodes.values()) node.classList.remove("selected");
  if (window.location.hash) history.replaceState(null, "", window.location.pathname + window.location.search);
}

function showTranscript(job, transcript) {
  const name = job.filename || job.id;
  const lang = transcriptLang(transcript.language);
  const duration = transcript.duration_ms ?? job.duration_ms;
  const meta = [];
  if (transcript.language) meta.push(transcript.language === "zh" ? "Chinese 中文" : transcript.language === "en" ? "English" : transcript.language);
  if (duration) meta.push(formatLength(duration));
  const count = (transcript.segments || []).length;
  meta.push(`${count} sentence${count === 1 ? "" : "s"}`);
  $("#viewer-meta").textContent = meta.join(" · ");
  const note = $("#player-note");
  note.textContent = (job.warnings || []).join(" ");
  note.hidden = !note.textContent;

  // The player: the original upload, streamed with Range requests by the browser.
  const isVideo = VIDEO_EXTENSIONS.has(fileExtension(name));
  const player = el(isVideo ? "video" : "audio", {
    controls: true, preload: "metadata", src: jobUrl(job, "media", "/media"),
    "aria-label": `Recording: ${name}`, playsinline: isVideo || undefined,
  });
  // Events of a player that was closed meanwhile (its src is being unloaded) are not ours any more.
  player.addEventListener("error", () => {
    if (player !== media || !player.getAttribute("src")) return;
    const note = $("#player-note");
    note.textContent = "This browser can't play this file's format. The transcript below is complete; download it or play the file elsewhere.";
    note.hidden = false;
  });
  player.addEventListener("play", tick);
  for (const type of ["seeked", "timeupdate"]) {
    player.addEventListener(type, () => { if (player === media) highlightAt(player.currentTime * 1000); });
  }
  media = player;
  playerBox.replaceChildren(player);

  for (const link of document.querySelectorAll(".downloads a")) {
    const format = link.dataset.format;
    link.href = `${jobUrl(job, "transcript", "/transcript")}?format=${format}`;
    link.download = `${baseName(name)}.${format}`;
    link.setAttribute("aria-label", `Download ${format.toUpperCase()}`);
  }

  const fragment = document.createDocumentFragment();
  segments = [];
  words = [];
  speakers = new Map((transcript.speakers || []).map((s, i) => [s.id, { name: s.name, colour: i % SPEAKER_COLOURS }]));
  for (const [segIndex, segment] of (transcript.segments || []).entries()) {
    const seg = { start_ms: segment.start_ms, end_ms: segment.end_ms, text: segment.text, words: [], plain: "", offsets: [] };
    const time = el("button", {
      class: "seg-time", type: "button", "data-ms": String(segment.start_ms),
      "aria-label": `Play from ${formatClock(segment.start_ms)}`, text: formatClock(segment.start_ms),
    });
    const text = el("p", { class: "seg-text", lang: lang || undefined });
    // The sentence's own text, each word a span at its place in it (start_char..end_char, from the
    // transcript): spaces and marks between words are the text's, never worked out here.
    const full = String(segment.text ?? "");
    const said = (segment.words || []).filter((w) => String(w.text ?? "").trim());
    const placed = said.length && said.every((w) => Number.isInteger(w.start_char) && Number.isInteger(w.end_char));
    const segWords = placed ? said : [{ start_ms: segment.start_ms, end_ms: segment.end_ms, start_char: 0, end_char: full.length }];
    let at = 0;
    for (const word of segWords) {
      const shown = full.slice(word.start_char, word.end_char);
      if (!shown.trim()) continue;
      const between = full.slice(at, word.start_char);
      if (between) { text.append(between); seg.plain += between; }
      const index = words.length;
      const node = el("span", { class: "w", "data-i": String(index), tabindex: "-1", text: shown });
      text.append(node);
      words.push({ start_ms: word.start_ms, end_ms: word.end_ms, node, seg: segIndex });
      seg.words.push(index);
      seg.offsets.push([seg.plain.length, seg.plain.length + shown.length]);
      seg.plain += shown;
      at = word.end_char;
    }
    const rest = full.slice(at);
    if (rest.trim()) { text.append(rest); seg.plain += rest; }
    const body = segment.speaker && speakers.has(segment.speaker)
      ? el("div", { class: "seg-body" }, speakerChip(segment.speaker), text) : text;
    seg.node = el("div", { class: "seg", "data-seg": String(segIndex) }, time, body);
    fragment.append(seg.node);
    segments.push(seg);
  }
  if (!segments.length) fragment.append(el("p", { class: "transcript-status", text: "No speech was found in this recording." }));
  transcriptBox.replaceChildren(fragment);
  transcriptBox.scrollTop = 0;
}

/* ------------------------------------------------------------------ speakers */

const SPEAKER_COLOURS = 8;
let speakers = new Map(); // id -> {name, colour} of the open transcript

function speakerChip(id) {
  const { name, colour } = speakers.get(id);
  return el("button", {
    class: `speaker spk-${colour}`, type: "button", "data-speaker": id, text: name || id,
    title: "Rename this speaker", "aria-label": `Speaker ${name || id}: rename`,
  });
}

/** An inline field in place of the chip: Enter saves the name for the whole transcript, Esc cancels. */
function renameSpeaker(chip) {
  const id = chip.dataset.speaker;
  const input = el("input", {
    class: "speaker-name", type: "text", maxlength: "64", value: speakers.get(id).name || "",
    placeholder: id, "aria-label": `Name for speaker ${id}`,
  });
  chip.replaceWith(input);
  input.focus();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save) {
      try {
        const result = await api(`/jobs/${encodeURIComponent(openJobId)}/speakers`, {
          method: "PUT", headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ names: { [id]: input.value.trim() || null } }),
        });
        for (const s of result.speakers) if (speakers.has(s.id)) speakers.get(s.id).name = s.name;
        announce(`Speaker ${id} is now ${speakers.get(id).name || id}`);
      } catch (error) {
        toast(error.message);
      }
    }
    input.replaceWith(speakerChip(id));
    for (const other of transcriptBox.querySelectorAll(`.speaker[data-speaker="${CSS.escape(id)}"]`)) {
      other.replaceWith(speakerChip(id));
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
}

function seekTo(ms) {
  if (!media) return;
  media.currentTime = ms / 1000;
  highlightAt(ms);
  if (media.paused) {
    media.play().catch((error) => {
      // Playback can be refused (format, autoplay policy); the seek itself stands.
      console.warn("tingxie: playback did not start", error);
    });
  }
}

transcriptBox.addEventListener("click", (event) => {
  const chip = event.target.closest(".speaker");
  if (chip) { renameSpeaker(chip); return; }
  if (event.target.closest(".speaker-name")) return;
  const word = event.target.closest(".w");
  if (word) { seekTo(words[Number(word.dataset.i)].start_ms); return; }
  const time = event.target.closest(".seg-time");
  if (time) { seekTo(Number(time.dataset.ms)); return; }
  const seg = event.target.closest(".seg");
  if (seg && !window.getSelection().toString()) seekTo(segments[Number(seg.dataset.seg)].start_ms);
});
/** Arrow keys walk the words and sentences; Enter or Space on a word plays from it. */
transcriptBox.addEventListener("keydown", (event) => {
  const word = event.target.closest(".w");
  const time = event.target.closest(".seg-time");
  if (!word && !time) return;
  const segIndex = Number((word || time).closest(".seg").dataset.seg);
  let next = null;
  if (word) {
    const index = Number(word.dataset.i);
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      seekTo(words[index].start_ms);
      return;
    }
    if (event.key === "ArrowRight") next = words[index + 1]?.node;
    else if (event.key === "ArrowLeft") next = index > 0 && words[index - 1].seg === segIndex ? words[index - 1].node : $(".seg-time", segments[segIndex].node);
    else if (event.key === "ArrowDown") next = segments[segIndex + 1] && $(".seg-time", segments[segIndex + 1].node);
    else if (event.key === "ArrowUp") next = $(".seg-time", segments[segIndex].node);
  } else {
    if (event.key === "ArrowRight") next = segments[segIndex].words.length ? words[segments[segIndex].words[0]].node : null;
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = segments[segIndex - 1] && $(".seg-time", segments[segIndex - 1].node);
    else if (event.key === "ArrowDown") next = segments[segIndex + 1] && $(".seg-time", segments[segIndex + 1].node);
  }
  if (next) {
    event.preventDefault();
    next.focus();
  }
});

for (const type of ["wheel", "touchmove", "keydown"]) {
  transcriptBox.addEventListener(type, () => { lastUserScroll = performance.now(); }, { passive: true });
}

/** Index of the last word that starts at or before ms (binary search over start times). */
function wordAt(ms) {
  let low = 0;
  let high = words.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (words[mid].start_ms <= ms) { found = mid; low = mid + 1; } else high = mid - 1;
  }
  return found;
}

function highlightAt(ms) {
  let index = wordAt(ms);
  const segIndex = index >= 0 && ms <= segments[words[index].seg].end_ms ? words[index].seg : -1;
  if (index >= 0 && ms > words[index].end_ms + 250) index = -1; // in a pause: nothing is being said
  if (index !== currentWord) {
    if (currentWord >= 0 && words[currentWord]) words[currentWord].node.classList.remove("now");
    if (index >= 0) words[index].node.classList.add("now");
    currentWord = index;
  }
  if (segIndex !== currentSeg) {
    if (currentSeg >= 0 && segments[currentSeg]) segments[currentSeg].node.classList.remove("active");
    if (segIndex >= 0) {
      segments[segIndex].node.classList.add("active");
      followSegment(segments[segIndex].node);
    }
    currentSeg = segIndex;
  }
}

function followSegment(node) {
  if (!$("#follow").checked || performance.now() - lastUserScroll < 4000) return;
  const box = transcriptBox;
  const top = node.offsetTop;
  if (top < box.scrollTop || top + node.offsetHeight > box.scrollTop + box.clientHeight) {
    box.scrollTo({ top: Math.max(0, top - box.clientHeight / 3), behavior: "smooth" });
  }
}

function tick() {
  if (!media || media.paused || media.ended) return;
  highlightAt(media.currentTime * 1000);
  requestAnimationFrame(tick);
}

/* ------------------------------------------------------------------ search */

let matches = []; // [{seg, words: [indexes]}]
let matchIndex = -1;
let searchTimer = 0;

function clearHits() {
  for (const node of transcriptBox.querySelectorAll(".w.hit, .w.hit-current")) node.classList.remove("hit", "hit-current");
  for (const seg of segments) seg.node.classList.remove("dim");
}

function updateSearch() {
  clearHits();
  matches = [];
  matchIndex = -1;
  const query = searchInput.value.trim().toLocaleLowerCase();
  if (query) {
    for (const [segIndex, seg] of segments.entries()) {
      const haystack = seg.plain.toLocaleLowerCase();
      let from = haystack.indexOf(query);
      if (from < 0) { seg.node.classList.add("dim"); continue; }
      while (from >= 0) {
        const to = from + query.length;
        const hit = seg.words.filter((_, k) => seg.offsets[k][0] < to && seg.offsets[k][1] > from);
        for (const index of hit) words[index].node.classList.add("hit");
        matches.push({ seg: segIndex, words: hit });
        from = haystack.indexOf(query, to);
      }
    }
  }
  $("#search-prev").disabled = matches.length < 2;
  $("#search-next").disabled = matches.length < 2;
  const count = $("#search-count");
  if (!query) count.textContent = "";
  else if (!matches.length) count.textContent = "No matches";
  else { gotoMatch(0); return; }
}

function gotoMatch(index) {
  if (!matches.length) return;
  for (const node of transcriptBox.querySelectorAll(".w.hit-current")) node.classList.remove("hit-current");
  matchIndex = (index + matches.length) % matches.length;
  const match = matches[matchIndex];
  for (const wordIndex of match.words) words[wordIndex].node.classList.add("hit-current");
  $("#search-count").textContent = `${matchIndex + 1} of ${matches.length}`;
  const node = segments[match.seg].node;
  lastUserScroll = performance.now();
  transcriptBox.scrollTo({ top: Math.max(0, node.offsetTop - transcriptBox.clientHeight / 3), behavior: "smooth" });
}

searchInput.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(updateSearch, 120);
});
searchInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    clearTimeout(searchTimer);
    if (!matches.length) updateSearch();
    else gotoMatch(matchIndex + (event.shiftKey ? -1 : 1));
  } else if (event.key === "Escape" && searchInput.value) {
    event.preventDefault();
    searchInput.value = "";
    updateSearch();
  }
});
$("#search-next").addEventListener("click", () => gotoMatch(matchIndex + 1));
$("#search-prev").addEventListener("click", () => gotoMatch(matchIndex - 1));

/* ------------------------------------------------------------------ copy */

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on a LAN address has no async clipboard: fall back to a selected textarea.
  const area = el("textarea", { class: "visually-hidden", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("The browser refused to copy.");
}

$("#copy-text").addEventListener("click", async () => {
  const text = segments.map((seg) => seg.plain).join("\n");
  try {
    await copyText(text);
    toast("Transcript copied");
  } catch (error) {
    toast(`Could not copy: ${error.message}`);
  }
});

/* ------------------------------------------------------------------ keyboard and routing */

$("#viewer-close").addEventListener("click", () => {
  const id = openJobId;
  closeViewer();
  const node = id && jobNodes.get(id);
  if (node) $(".job-open", node).focus();
});

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (viewer.hidden) return;
  if (event.key === "/") {
    event.preventDefault();
    searchInput.focus();
  } else if (event.key === "Escape") {
    $("#viewer-close").click();
  } else if (media && event.key === "k") {
    if (media.paused) media.play().catch((error) => console.warn("tingxie: playback did not start", error));
    else media.pause();
  } else if (media && (event.key === "j" || event.key === "l")) {
    media.currentTime = Math.max(0, media.currentTime + (event.key === "j" ? -5 : 5));
  }
});

function route() {
  if (/^#signin=/.test(window.location.hash)) {
    // A sign-in link opened in a tab that already shows the page: sign in, then start afresh.
    useSignInLink().then((error) => { if (error) showSignIn(error); else window.location.reload(); });
    return;
  }
  const match = /^#\/jobs\/([^/]+)$/.exec(window.location.hash);
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (id !== openJobId) openJob(id);
  } else if (openJobId) {
    closeViewer();
  }
}
window.addEventListener("hashchange", route);

/* ------------------------------------------------------------------ start */

async function start() {
  const linkError = await useSignInLink();
  let session;
  try {
    session = await api("/session");
  } catch (error) {
    if (error.status === 401) showSignIn(linkError); // a first visit: the form, without an error
    else if (error.code === "session_conflict") showSignIn(error.message); // clear this site's cookies
    else toast(error.message);
    return; // the sign-in form is showing (or the server cannot be reached)
  }
  showAccount(session);
  if (linkError) toast(linkError);
  loadLanguages();
  loadBatches().catch((error) => toast(error.message));
  try {
    await loadJobs(1);
  } catch (error) {
    toast(error.message);
  }
  updateJobsChrome();
  route();
  schedulePolling();
  setInterval(() => {
    refreshJobs().catch((error) => console.warn("tingxie: job list refresh failed", error));
    if (!document.hidden) loadBatches().catch((error) => console.warn("tingxie: batch list refresh failed", error));
    for (const [id, job] of jobs) {
      const node = jobNodes.get(id);
      if (node) $('[data-role="when"]', node).textContent = formatWhen(job.created_at);
    }
  }, LIST_REFRESH_MS);
}

start();
