// ragspin's chat and upload page. Plain modern JavaScript, no build step,
// no third-party code: everything it loads comes from the web component
// (same origin, under a `script-src 'self'` CSP), and every piece of data
// is put into the page with textContent, never parsed as HTML.
//
// State kept in sessionStorage (this tab; survives a reload, gone when the
// tab closes or on "Log out"):
//   ragspin.auth                  {access_token, refresh_token, username, role}
//   ragspin.index                 the selected index
//   ragspin.chat.<user>.<index>   {session_id, turns[]} — the transcript
//
// APIs used (docs/openapi.yaml): POST /auth/token, /auth/refresh,
// /auth/logout, GET /auth/me; GET /v1/indexes, GET|PUT /v1/indexes/{i};
// POST|GET /v1/indexes/{i}/documents, GET .../documents/{id};
// POST /v1/query with stream:true (Server-Sent Events: sources, delta*,
// done | error; see sse.js).

import { readEvents } from './sse.js';

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;
const KEY = {
  auth: 'ragspin.auth',
  index: 'ragspin.index',
  chat: (user, index) => `ragspin.chat.${user}.${index}`,
};
const INDEX_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_UPLOAD_BYTES = 16 * 1024 * 1024;
const POLL_MS = 1000;

const state = {
  auth: readJson(KEY.auth),
  indexes: [],
  index: store.getItem(KEY.index) || '',
  chat: { session_id: '', turns: [] },
  documents: [], // the current index's documents from the API
  uploads: [], // upload entries, newest first (every index)
  queue: Promise.resolve(),
  streaming: null, // AbortController of the answer being streamed
  refreshing: null,
  uploadSeq: 0,
};

// ---------------------------------------------------------------- helpers

function readJson(key) {
  try {
    return JSON.parse(store.getItem(key) || 'null');
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  try {
    store.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // quota exceeded
  }
}

/** Build an element: h('button', {class, text, onclick, ...attrs}, ...children). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

let statusTimer = 0;
/** Announce a short message in the status line (a polite live region). */
function say(message, kind = 'info') {
  const status = $('status');
  status.textContent = message;
  status.dataset.kind = kind;
  clearTimeout(statusTimer);
  if (message) {
    statusTimer = setTimeout(() => {
      status.textContent = '';
    }, kind === 'error' ? 10000 : 5000);
  }
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function errorFromBody(status, body, fallback) {
  const e = body && body.error;
  return new ApiError(status, (e && e.code) || `http_${status}`, (e && e.message) || fallback);
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  const error = errorFromBody(res.status, body, `${res.status} ${res.statusText}`.trim());
  const after = res.headers.get('retry-after');
  if (res.status === 429 && after) error.message += ` (try again in ${after} s)`;
  return error;
}

function networkError(err) {
  if (err instanceof ApiError || (err && err.name === 'AbortError')) return err;
  return new ApiError(0, 'network', 'Could not reach the server. Check the connection and try again.');
}

/** Rotate the tokens once at a time; resolves true when it worked. */
function refreshTokens() {
  if (!state.refreshing) {
    state.refreshing = (async () => {
      const token = state.auth && state.auth.refresh_token;
      if (!token) return false;
      try {
        const res = await fetch('/auth/refresh', {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ refresh_token: token }),
          cache: 'no-store',
        });
        if (!res.ok) return false;
        const t = await res.json();
        setAuth({ ...state.auth, access_token: t.access_token, refresh_token: t.refresh_token });
        return true;
      } catch {
        return false;
      }
    })().finally(() => {
      state.refreshing = null;
    });
  }
  return state.refreshing;
}

/** fetch with the bearer token; a 401 refreshes the tokens and retries once. */
async function authedFetch(path, init = {}, retried = false) {
  const headers = new Headers(init.headers || {});
  if (state.auth) headers.set('authorization', `Bearer ${state.auth.access_token}`);
  let res;
  try {
    res = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch (err) {
    throw networkError(err);
  }
  if (res.status === 401 && state.auth) {
    if (!retried && (await refreshTokens())) return authedFetch(path, init, true);
    sessionEnded();
  }
  return res;
}

/** A JSON API call; throws ApiError for a non-2xx answer. */
async function api(method, path, body) {
  const init = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await authedFetch(path, init);
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** multipart POST with upload progress (XMLHttpRequest: fetch has none). */
function uploadForm(path, form, onProgress, retried = false) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (state.auth) xhr.setRequestHeader('authorization', `Bearer ${state.auth.access_token}`);
    xhr.setRequestHeader('accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      resolve({ status: xhr.status, body, retryAfter: xhr.getResponseHeader('retry-after') });
    };
    xhr.onerror = () => resolve({ status: 0, body: null });
    xhr.send(form);
  }).then(async (r) => {
    if (r.status === 401 && state.auth) {
      if (!retried && (await refreshTokens())) return uploadForm(path, form, onProgress, true);
      sessionEnded();
    }
    return r;
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const indexPath = (index) => `/v1/indexes/${encodeURIComponent(index)}`;

// ---------------------------------------------------------------- views

function setAuth(auth) {
  state.auth = auth;
  if (auth) writeJson(KEY.auth, auth);
  else store.removeItem(KEY.auth);
}

function showLogin(message = '') {
  $('app-view').hidden = true;
  $('account').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message;
  $('username').focus();
}

function sessionEnded() {
  if (!state.auth) return;
  if (state.streaming) state.streaming.abort();
  setAuth(null);
  showLogin('Your session has ended. Please sign in again.');
}

async function enterApp() {
  let me;
  try {
    me = await api('GET', '/auth/me');
  } catch (err) {
    // A 401 already ended the session (authedFetch); anything else is shown.
    if (state.auth) showLogin(`Could not check the session: ${err.message}`);
    return;
  }
  setAuth({ ...state.auth, username: me.username, role: me.role });
  $('whoami').textContent = `${me.username} (${me.role})`;
  $('login-view').hidden = true;
  $('account').hidden = false;
  $('app-view').hidden = false;
  $('new-index-form').hidden = me.role === 'reader';
  $('dropzone').hidden = me.role === 'reader';
  try {
    await loadIndexes();
  } catch (err) {
    say(`Could not list the indexes: ${err.message}`, 'error');
  }
  (state.index ? $('question') : $('new-index')).focus();
}

// ---------------------------------------------------------------- login

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    $('login-error').textContent = 'Enter your username and password.';
    return;
  }
  const button = $('login-submit');
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    let res;
    try {
      res = await fetch('/auth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ username, password }),
        cache: 'no-store',
      });
    } catch (err) {
      throw networkError(err);
    }
    if (!res.ok) throw await errorOf(res);
    const t = await res.json();
    setAuth({ access_token: t.access_token, refresh_token: t.refresh_token, username });
    $('password').value = '';
    await enterApp();
  } catch (err) {
    $('login-error').textContent = err.message;
  } finally {
    button.disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  if (state.streaming) state.streaming.abort();
  const token = state.auth && state.auth.access_token;
  if (token) {
    try {
      await fetch('/auth/logout', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        cache: 'no-store',
      });
    } catch {
      // signed out locally anyway
    }
  }
  const keys = [];
  for (let i = 0; i < store.length; i++) keys.push(store.key(i));
  keys.filter((k) => k && k.startsWith('ragspin.')).forEach((k) => store.removeItem(k));
  state.auth = null;
  state.index = '';
  state.uploads = [];
  state.chat = { session_id: '', turns: [] };
  $('transcript').replaceChildren();
  $('documents').replaceChildren();
  showLogin();
  say('Signed out.');
});

// ---------------------------------------------------------------- indexes

async function loadIndexes(select) {
  const body = await api('GET', '/v1/indexes');
  state.indexes = (body && body.indexes) || [];
  const names = state.indexes.map((i) => i.name);
  const chosen = names.includes(select) ? select : names.includes(state.index) ? state.index : names[0] || '';
  const picker = $('index-select');
  picker.replaceChildren(
    ...(names.length
      ? names.map((n) => h('option', { value: n, text: n }))
      : [h('option', { value: '', text: 'No index yet — create one' })]),
  );
  picker.disabled = names.length === 0;
  selectIndex(chosen);
}

function showIndexStats() {
  const info = state.indexes.find((i) => i.name === state.index);
  const s = info && info.stats;
  $('index-stats').textContent = s
    ? `${plural(s.documents, 'document')} · ${plural(s.chunks, 'chunk')} · version ${info.active_version}`
    : '';
  $('manage-state').textContent = s ? `${state.index} · ${plural(s.documents, 'document')}` : state.index;
}

// On a phone the index and document cards fold away once there is
// something to chat about, so the conversation is on the first screen.
const phone = window.matchMedia('(max-width: 760px)');
function fitManage() {
  const busy = state.uploads.some((u) => u.index === state.index && !['indexed', 'failed'].includes(u.stage));
  $('manage').open = !phone.matches || !state.index || state.documents.length === 0 || busy;
}
phone.addEventListener('change', fitManage);

function selectIndex(name) {
  state.index = name;
  if (name) store.setItem(KEY.index, name);
  else store.removeItem(KEY.index);
  $('index-select').value = name;
  $('chat-index').textContent = name ? `· ${name}` : '';
  showIndexStats();
  const none = !name;
  $('question').disabled = none;
  $('ask').disabled = none || Boolean(state.streaming);
  $('file-input').disabled = none;
  $('dropzone').classList.toggle('disabled', none);
  loadChat();
  renderTranscript();
  state.documents = [];
  renderDocuments();
  if (name) loadDocuments(name);
}

async function refreshIndexInfo(name) {
  try {
    const info = await api('GET', indexPath(name));
    const i = state.indexes.findIndex((x) => x.name === name);
    if (i >= 0) state.indexes[i] = info;
    if (name === state.index) showIndexStats();
  } catch {
    // stats are a nicety
  }
}

$('index-select').addEventListener('change', (e) => {
  selectIndex(e.target.value);
});

$('new-index-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('new-index');
  const name = input.value.trim();
  const error = $('index-error');
  error.textContent = '';
  if (!INDEX_NAME.test(name)) {
    error.textContent = 'Use 1–64 lowercase letters, digits, “-” or “_”, starting with a letter or digit.';
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  $('create-index').disabled = true;
  try {
    const info = await api('PUT', indexPath(name), {});
    input.value = '';
    await loadIndexes(info.name || name);
    say(`Index ${name} is ready. Add documents to it.`);
  } catch (err) {
    error.textContent = err.message;
  } finally {
    $('create-index').disabled = false;
  }
});

// ---------------------------------------------------------------- documents

async function loadDocuments(index) {
  try {
    const page = await api('GET', `${indexPath(index)}/documents?limit=200`);
    if (index !== state.index) return;
    state.documents = (page && page.documents) || [];
    renderDocuments();
    fitManage();
  } catch (err) {
    if (index === state.index) say(`Could not list the documents: ${err.message}`, 'error');
  }
}

const STAGES = {
  queued: 'Queued',
  hashing: 'Preparing',
  uploading: 'Uploading',
  processing: 'Processing',
  received: 'Received',
  parsed: 'Parsed',
  chunked: 'Chunked',
  embedding: 'Embedding',
  indexed: 'Indexed',
  failed: 'Failed',
};

function stageText(d) {
  const base = STAGES[d.stage] || d.stage;
  if (d.stage === 'uploading') return `${base} ${Math.round((d.sent || 0) * 100)}%`;
  if (d.stage === 'embedding' && d.total) return `${base} ${d.embedded}/${d.total}`;
  if (d.stage === 'indexed' && d.chunks !== undefined) return `${base} · ${plural(d.chunks, 'chunk')}`;
  return base;
}

function docRow(d) {
  const busy = !['indexed', 'failed'].includes(d.stage);
  let progress = null;
  if (d.stage === 'uploading') progress = h('progress', { max: 100, value: Math.round((d.sent || 0) * 100) });
  else if (d.stage === 'embedding' && d.total) progress = h('progress', { max: d.total, value: d.embedded });
  else if (busy) progress = h('progress', {}); // indeterminate
  return h(
    'li',
    {
      class: `doc stage-${d.stage}`,
      dataset: { stage: d.stage, filename: d.filename, id: d.id || '' },
      'aria-busy': busy ? 'true' : 'false',
    },
    h('span', { class: 'doc-name', text: d.filename, title: d.id || '' }),
    h('span', { class: 'doc-stage', text: stageText(d) }),
    progress && h('span', { class: 'doc-progress', 'aria-hidden': 'true' }, progress),
    d.error && h('span', { class: 'doc-error', text: d.error }),
  );
}

function fromInfo(info) {
  const s = info.status || {};
  return {
    id: info.id,
    filename: info.filename,
    stage: s.stage || 'received',
    embedded: s.embedded || 0,
    total: s.total || 0,
    error: s.error,
    chunks: info.chunks,
  };
}

function renderDocuments() {
  const uploads = state.uploads.filter((u) => u.index === state.index);
  const uploadIds = new Set(uploads.map((u) => u.id).filter(Boolean));
  const rows = [
    ...uploads,
    ...state.documents.filter((d) => !uploadIds.has(d.id)).map(fromInfo),
  ];
  $('documents').replaceChildren(...rows.map(docRow));
  $('docs-empty').hidden = rows.length > 0 || !state.index;
}

function updateUpload(entry, changes) {
  Object.assign(entry, changes);
  if (entry.index === state.index) renderDocuments();
}

/** The id the ingest service would give this content: doc-<sha256[..16]>. */
async function contentId(file) {
  if (!crypto.subtle) return null; // only in secure contexts; the server picks the same id
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
  return `doc-${Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function enqueueFiles(files) {
  if (!state.index) {
    say('Create or pick an index first.', 'error');
    return;
  }
  for (const file of files) {
    const entry = {
      key: `upload-${++state.uploadSeq}`,
      index: state.index,
      filename: file.name,
      stage: 'queued',
      sent: 0,
    };
    state.uploads.unshift(entry);
    state.queue = state.queue.then(() => uploadOne(file, entry)).catch(() => {});
  }
  renderDocuments();
  say(`${plural(files.length, 'file')} queued for ${state.index}.`);
}

/** Poll the document's status while `running()`; every answer updates the row. */
async function pollStatus(entry, running) {
  let delay = POLL_MS / 3;
  while (running()) {
    await sleep(delay);
    if (!running() || !entry.id) break;
    try {
      const res = await authedFetch(`${indexPath(entry.index)}/documents/${encodeURIComponent(entry.id)}`, {
        headers: { accept: 'application/json' },
      });
      if (res.ok) {
        const info = fromInfo(await res.json());
        if (running() && entry.stage !== 'uploading') updateUpload(entry, info);
      } else if (res.status === 429) {
        delay = 1000 * Number(res.headers.get('retry-after') || 2);
        continue;
      }
    } catch {
      // try again
    }
    delay = Math.min(delay * 1.25, 3000);
  }
}

async function uploadOne(file, entry) {
  const index = entry.index;
  try {
    if (file.size > MAX_UPLOAD_BYTES) {
      throw new ApiError(413, 'too_large', 'The file is larger than 16 MiB.');
    }
    updateUpload(entry, { stage: 'hashing' });
    entry.id = await contentId(file);
    updateUpload(entry, { stage: 'uploading', sent: 0 });
    let uploading = true;
    const poller = pollStatus(entry, () => uploading);
    let outcome = null;
    try {
      for (let attempt = 0; attempt < 40; attempt++) {
        const form = new FormData();
        form.append('file', file, file.name);
        if (entry.id) form.append('id', entry.id);
        const r = await uploadForm(`${indexPath(index)}/documents`, form, (sent) => {
          updateUpload(entry, sent < 1 ? { sent } : { sent, stage: 'processing' });
        });
        if (r.status === 429) {
          await sleep(1000 * Number(r.retryAfter || 2));
          continue;
        }
        if (r.status === 0) throw new ApiError(0, 'network', 'The upload failed (network error).');
        if (r.status >= 400) throw errorFromBody(r.status, r.body, `The upload failed (${r.status}).`);
        outcome = r.body && r.body.documents ? r.body.documents[0] : r.body;
        entry.id = outcome.document.id;
        if (r.status !== 202) break;
        // The time budget ran out while embedding: post again to resume.
        updateUpload(entry, fromInfo(outcome.document));
      }
    } finally {
      uploading = false;
      await poller;
    }
    if (!outcome) throw new ApiError(0, 'pending', 'Not finished; upload the file again to resume.');
    // The status endpoint has the last word (a 202 leaves it mid-way).
    let info = fromInfo(outcome.document);
    for (let i = 0; i < 60; i++) {
      info = fromInfo(await api('GET', `${indexPath(index)}/documents/${encodeURIComponent(entry.id)}`));
      updateUpload(entry, info);
      if (['indexed', 'failed'].includes(info.stage)) break;
      await sleep(POLL_MS);
    }
    if (info.stage === 'failed') say(`${file.name} failed: ${info.error || 'unknown reason'}`, 'error');
    else say(`${file.name} is ${info.stage}.`);
  } catch (err) {
    updateUpload(entry, { stage: 'failed', error: err.message || String(err) });
    say(`${file.name} failed: ${err.message}`, 'error');
  }
  if (index === state.index) {
    refreshIndexInfo(index);
  }
}

const dropzone = $('dropzone');
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
for (const type of ['dragenter', 'dragover']) {
  dropzone.addEventListener(type, (e) => {
    if (!hasFiles(e) || !state.index) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    dropzone.classList.add('over');
  });
}
for (const type of ['dragleave', 'dragend']) {
  dropzone.addEventListener(type, (e) => {
    if (!dropzone.contains(e.relatedTarget)) dropzone.classList.remove('over');
  });
}
dropzone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropzone.classList.remove('over');
  const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
  if (files.length) enqueueFiles(files);
});
// A file dropped beside the drop zone must not replace the page.
window.addEventListener('dragover', (e) => {
  if (hasFiles(e) && !dropzone.contains(e.target)) {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'none';
  }
});
window.addEventListener('drop', (e) => {
  if (!dropzone.contains(e.target)) e.preventDefault();
});
$('file-input').addEventListener('change', (e) => {
  const files = Array.from(e.target.files || []);
  e.target.value = '';
  if (files.length) enqueueFiles(files);
});

// ---------------------------------------------------------------- chat

function newChat() {
  return { session_id: `web-${randomHex(12)}`, turns: [] };
}

function chatKey(index = state.index) {
  return KEY.chat((state.auth && state.auth.username) || 'anonymous', index);
}

function loadChat() {
  const saved = state.index ? readJson(chatKey()) : null;
  state.chat = saved && Array.isArray(saved.turns) ? saved : newChat();
  // A turn still streaming when the page went away will not finish.
  for (const turn of state.chat.turns) {
    if (turn.pending) {
      turn.pending = false;
      turn.error = turn.error || 'Interrupted (the page was reloaded).';
    }
  }
}

function saveChat(chat, key) {
  if (!key.endsWith('.')) {
    while (!writeJson(key, chat) && chat.turns.length > 1) chat.turns.shift();
  }
}

const DEGRADED = {
  offline: ['offline', 'No chat model is configured: the answer is the best matching sentences of the sources.'],
  chat_timeout: ['chat model timed out', 'The answer is the best matching sentences of the sources.'],
  chat_rate_limited: ['chat model rate limited', 'The answer is the best matching sentences of the sources.'],
  chat_unavailable: ['chat model unavailable', 'The answer is the best matching sentences of the sources.'],
  chat_error: ['chat model failed', 'The answer is the best matching sentences of the sources.'],
  chat_content_filter: ['content filter', 'The content filter stopped the chat model: the answer is the best matching sentences of the sources.'],
};
const RETRIEVAL = {
  offline: 'keyword search only (offline)',
  embeddings_unavailable: 'keyword search only: embeddings unavailable',
  embeddings_timeout: 'keyword search only: embeddings timed out',
  embedding_dimensions_mismatch: 'keyword search only: embedding dimensions changed',
};

function citationLabel(c) {
  return `${c.filename}${c.page !== undefined && c.page !== null ? ` · p. ${c.page}` : ''}`;
}

function answerText(turn) {
  const box = h('div', { class: 'answer-text' });
  if (turn.pending) {
    if (turn.answer) box.append(turn.answer);
    else box.append(h('span', { class: 'typing', role: 'img', 'aria-label': 'Thinking' }, h('span'), h('span'), h('span')));
    return box;
  }
  // [n] markers of verified citations become buttons that open the source.
  const parts = (turn.answer || '').split(/\[(\d+)\]/);
  parts.forEach((part, i) => {
    if (i % 2 === 0) {
      if (part) box.append(part);
      return;
    }
    const n = Number(part);
    const c = (turn.citations || []).find((x) => x.source === n);
    if (!c) {
      box.append(`[${part}]`);
      return;
    }
    box.append(
      h('button', {
        type: 'button',
        class: 'cite-inline',
        text: String(n),
        'aria-label': `Source ${n}: ${citationLabel(c)}`,
        onclick: () => openCitation(c, turn),
      }),
    );
  });
  return box;
}

function renderAnswer(el, turn) {
  el.replaceChildren();
  el.setAttribute('aria-busy', turn.pending ? 'true' : 'false');
  el.append(h('span', { class: 'who', text: 'ragspin' }));
  const badges = [];
  if (turn.degraded) {
    const [short, long] = DEGRADED[turn.degraded_reason] || [turn.degraded_reason || 'fallback', 'The answer fell back.'];
    badges.push(h('span', { class: 'badge warn degraded', title: long, text: `Degraded: ${short}` }));
    badges.push(h('span', { class: 'badge-note', text: long }));
  }
  const rr = turn.retrieval && turn.retrieval.degraded_reason;
  if (rr && !(turn.degraded && turn.degraded_reason === rr)) {
    badges.push(h('span', { class: 'badge warn', text: RETRIEVAL[rr] || `retrieval: ${rr}` }));
  }
  if (turn.found === false) badges.push(h('span', { class: 'badge muted', text: 'Not found in the documents' }));
  if (turn.cached) badges.push(h('span', { class: 'badge muted', text: 'Cached' }));
  if (badges.length) el.append(h('div', { class: 'badges' }, badges));
  el.append(answerText(turn));
  if (turn.standalone_question && !turn.pending) {
    el.append(h('p', { class: 'hint', text: `Searched for: ${turn.standalone_question}` }));
  }
  if (turn.error) el.append(h('p', { class: 'error', role: 'alert', text: turn.error }));
  if (turn.citations && turn.citations.length) {
    el.append(
      h(
        'div',
        { class: 'citations', role: 'group', 'aria-label': 'Citations' },
        turn.citations.map((c) =>
          h(
            'button',
            {
              type: 'button',
              class: 'chip',
              title: (c.heading_path || []).join(' › ') || c.filename,
              'aria-label': `Open source ${c.source}: ${citationLabel(c)}`,
              onclick: () => openCitation(c, turn),
            },
            h('span', { class: 'chip-n', text: String(c.source) }),
            h('span', { class: 'chip-label', text: citationLabel(c) }),
          ),
        ),
      ),
    );
  }
  if (!turn.pending && turn.answer) {
    el.append(
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'copy small', text: 'Copy answer', onclick: () => copyAnswer(turn) }),
      ),
    );
  }
}

function renderTurn(turn) {
  const answer = h('div', { class: 'msg assistant' });
  renderAnswer(answer, turn);
  return h(
    'li',
    { class: 'turn' },
    h('div', { class: 'msg user' }, h('span', { class: 'who', text: 'You' }), h('div', { class: 'question-text', text: turn.question })),
    answer,
  );
}

function scrollToEnd() {
  const list = $('transcript');
  list.scrollTop = list.scrollHeight;
}

function renderTranscript() {
  $('transcript').replaceChildren(...state.chat.turns.map(renderTurn));
  $('transcript-empty').hidden = state.chat.turns.length > 0;
  scrollToEnd();
}

function setStreaming(controller) {
  state.streaming = controller;
  $('ask').disabled = Boolean(controller) || !state.index;
  $('stop').hidden = !controller;
  $('new-chat').disabled = Boolean(controller);
  $('index-select').disabled = Boolean(controller) || state.indexes.length === 0;
}

function applyAnswer(turn, a, sources) {
  turn.answer = a.answer || '';
  turn.citations = a.citations || [];
  turn.found = a.found;
  turn.degraded = a.degraded;
  turn.degraded_reason = a.degraded_reason;
  turn.cached = a.cached;
  turn.retrieval = a.retrieval || turn.retrieval;
  turn.standalone_question = a.standalone_question;
  // Keep the text of the cited sources (for the citation dialog after a reload).
  const cited = new Set(turn.citations.map((c) => c.source));
  const all = a.sources && a.sources.length ? a.sources : sources;
  turn.sources = all
    .filter((s) => cited.has(s.id))
    .map(({ id, chunk_id, filename, page, heading_path, text }) => ({ id, chunk_id, filename, page, heading_path, text }));
  turn.pending = false;
}

async function ask(question) {
  const index = state.index;
  const chat = state.chat;
  const key = chatKey(index);
  const turn = { question, answer: '', citations: [], sources: [], pending: true, at: Date.now() };
  chat.turns.push(turn);
  saveChat(chat, key);
  const li = renderTurn(turn);
  const el = li.querySelector('.assistant');
  $('transcript').append(li);
  $('transcript-empty').hidden = true;
  scrollToEnd();
  const controller = new AbortController();
  setStreaming(controller);
  let sources = [];
  try {
    const res = await authedFetch('/v1/query', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ index, question, session_id: chat.session_id, stream: true }),
      signal: controller.signal,
    });
    if (!res.ok) throw await errorOf(res);
    if (!(res.headers.get('content-type') || '').startsWith('text/event-stream')) {
      applyAnswer(turn, await res.json(), []);
    } else {
      for await (const { event, data } of readEvents(res.body)) {
        if (event === 'sources') {
          sources = data.sources || [];
          turn.retrieval = data.retrieval;
        } else if (event === 'delta') {
          turn.answer += data.text || '';
          const box = el.querySelector('.answer-text');
          if (box) box.textContent = turn.answer;
          scrollToEnd();
        } else if (event === 'done') {
          applyAnswer(turn, data, sources);
        } else if (event === 'error') {
          turn.error = (data && data.error && data.error.message) || 'The answer failed.';
        }
      }
      if (turn.pending && !turn.error) turn.error = 'The answer stream ended early.';
    }
  } catch (err) {
    turn.error = err.name === 'AbortError' ? 'Stopped.' : networkError(err).message;
  } finally {
    turn.pending = false;
    setStreaming(null);
    saveChat(chat, key);
    renderAnswer(el, turn);
    scrollToEnd();
  }
}

$('ask-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('question');
  const question = input.value.trim();
  if (!question || state.streaming || !state.index) return;
  input.value = '';
  ask(question);
  input.focus();
});

$('question').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
    e.preventDefault();
    $('ask-form').requestSubmit();
  }
});

$('stop').addEventListener('click', () => {
  if (state.streaming) state.streaming.abort();
});

$('new-chat').addEventListener('click', () => {
  state.chat = newChat();
  if (state.index) saveChat(state.chat, chatKey());
  renderTranscript();
  say('Started a new chat.');
  $('question').focus();
});

async function copyAnswer(turn) {
  const sources = (turn.citations || []).map((c) => `[${c.source}] ${citationLabel(c)}`);
  const text = sources.length ? `${turn.answer}\n\nSources:\n${sources.join('\n')}` : turn.answer;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (insecure context) or permission: the old way.
    const area = h('textarea', { class: 'visually-hidden', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand && document.execCommand('copy');
    area.remove();
    if (!ok) {
      say('Could not copy: the browser refused access to the clipboard.', 'error');
      return;
    }
  }
  say('Answer copied to the clipboard.');
}

// ---------------------------------------------------------------- citations

function openCitation(c, turn) {
  const source = (turn.sources || []).find((s) => s.id === c.source);
  $('citation-title').textContent = `[${c.source}] ${c.filename}`;
  const meta = [];
  if (c.page !== undefined && c.page !== null) meta.push(`Page ${c.page}`);
  if (c.heading_path && c.heading_path.length) meta.push(c.heading_path.join(' › '));
  meta.push(`document ${c.document_id}`);
  $('citation-meta').textContent = meta.join(' · ');
  $('citation-snippet').textContent = c.snippet || '';
  const box = $('citation-text');
  box.replaceChildren();
  const text = source ? source.text : '';
  if (!text) {
    box.append(h('span', { class: 'hint', text: 'The text of this source is not available.' }));
  } else {
    const at = c.snippet ? text.indexOf(c.snippet) : -1;
    if (at < 0) box.append(text);
    else box.append(text.slice(0, at), h('mark', { text: c.snippet }), text.slice(at + c.snippet.length));
  }
  $('citation-dialog').showModal();
  $('citation-close').focus();
}

$('citation-close').addEventListener('click', () => $('citation-dialog').close());
$('citation-dialog').addEventListener('click', (e) => {
  if (e.target === e.currentTarget) e.currentTarget.close(); // a click on the backdrop
});

// ---------------------------------------------------------------- start

if (state.auth) enterApp();
else showLogin();
