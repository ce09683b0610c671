/*
 * The chat's state and its pure reducer (protocol version 1, docs/protocol.md).
 *
 * applyFrame(state, frame) -> state handles every server frame; the other exported
 * functions are the page's own actions (send, connection lost, new conversation...).
 * None of them touches the DOM, a WebSocket, timers or storage, and none mutates its
 * input: each returns a new state, so this module runs (and is tested) in Node.
 *
 * What the page must do besides rendering travels in `state.effects`, the list of
 * effects of the last call only:
 *   {type: 'flush'}                    send every outbox message (after session.ready)
 *   {type: 'ready', conversation}      tell the embedding page (widget)
 *   {type: 'notify', message}          a finished assistant / staff reply (widget)
 *   {type: 'restore-input', text}      put a refused message back in an empty composer
 *   {type: 'scroll', force}            scroll the log to the end (force: even if scrolled up)
 *   {type: 'resync'}                   frames of a turn were lost (a `seq` gap): reconnect with `since`
 *
 * The log is an ordered list of items, each with a stable `key`:
 *   message {kind: 'message', key, id, clientId, role, agent, text, created,
 *            streaming, pending, failed, turn, attachment}
 *            (attachment: null, or {id, name, kind, size, width, height, url, image,
 *            uploading, progress}: a file the user sent, docs/attachments.md)
 *   notice  {kind: 'notice', key, notice, testid, text, reason, agent, retryText}
 *   approval {kind: 'approval', key, id, summary, action, agent, by, expires, outcome, sending}
 *            (approval.request: Approve / Decline when `by` is 'user'; outcome once resolved)
 *
 * state.people is who answers (conversation.status, session.ready's `status`):
 *   {status: 'bot' | 'waiting' | 'human' | 'resolved', staff, eta, openNow, opensAt,
 *    message, csat, emailSaved}; peopleView(state) says what the page shows of it.
 */

import { t } from './i18n.js';

export const PROTOCOL = 1;
export const DEFAULT_AGENT = Object.freeze({ slug: 'orchestrator', name: 'Super Orchestrator' });
export const DEFAULT_MAX_MESSAGE_CHARS = 4000;
export const FEEDBACK_KEPT = 300;   // remembered feedback choices

// The words for a close code and an error code: keys of the page's strings (i18n.js).
export const CLOSE_REASONS = {
  4400: 'close_4400',
  4401: 'close_4401',
  4403: 'close_4403',
  4429: 'close_4429',
};
export const FATAL_CLOSES = new Set([4400, 4401, 4403]);

export const ERROR_FALLBACK = {
  rate_limited: 'error_rate_limited',
  too_large: 'error_too_large',
  model_unavailable: 'error_model_unavailable',
  internal: 'error_internal',
};
const ERROR_DEFAULT = 'error_default';
const ROLES = ['user', 'assistant', 'staff', 'system'];
export const PEOPLE_STATUSES = ['bot', 'waiting', 'human', 'resolved'];
export const INITIAL_PEOPLE = Object.freeze({
  status: 'bot', staff: null, eta: null, openNow: true, opensAt: null, message: '', csat: null, emailSaved: false,
});

// ---------------------------------------------------------------------------
// Small pure helpers
// ---------------------------------------------------------------------------

export const str = (v) => (typeof v === 'string' ? v : '');

const isObject = (v) => !!v && typeof v === 'object' && !Array.isArray(v);

/** Suggestions as the server or the page gives them: non-blank strings only. */
export function cleanSuggestions(list) {
  return Array.isArray(list) ? list.filter((s) => typeof s === 'string' && s.trim()) : [];
}

/** The outbox as stored: [{id, text}] with string fields, anything else dropped. */
export function cleanOutbox(list) {
  return Array.isArray(list) ? list.filter((m) => m && typeof m.id === 'string' && typeof m.text === 'string') : [];
}

/** The text a send carries: trailing blanks and leading blank lines dropped, cut to the limit; '' for nothing. */
export function outgoingText(text, maxChars) {
  const clean = String(text == null ? '' : text).replace(/\s+$/, '').replace(/^\s*\n/, '');
  if (!clean.trim()) return '';
  return clean.slice(0, maxChars > 0 ? maxChars : DEFAULT_MAX_MESSAGE_CHARS);
}

/** Size of a frame on the wire, in UTF-8 bytes. */
export function frameBytes(frame) {
  return new TextEncoder().encode(JSON.stringify(frame)).length;
}

/** The display name of an agent object or slug ("it_support" -> "It support" when unknown). */
export function agentName(state, agentOrSlug) {
  if (isObject(agentOrSlug)) return str(agentOrSlug.name) || agentName(state, agentOrSlug.slug);
  const slug = str(agentOrSlug);
  if (!slug) return state.agent.name;
  if (Object.prototype.hasOwnProperty.call(state.agents, slug)) return state.agents[slug];
  const words = slug.replace(/[-_]+/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : state.agent.name;
}

// ---------------------------------------------------------------------------
// Initial state
// ---------------------------------------------------------------------------

/**
 * options: {token, outbox, feedback, greeting, suggestions, maxMessageChars, now}
 * Unsent messages from before a reload (outbox) are shown as pending at once.
 */
export function initialState(options) {
  const o = options || {};
  const outbox = cleanOutbox(o.outbox);
  const state = {
    status: 'connecting',          // connecting | online | reconnecting | closed
    conversation: null,
    token: str(o.token) || null,
    agent: { ...DEFAULT_AGENT },
    agents: { [DEFAULT_AGENT.slug]: DEFAULT_AGENT.name },   // slug -> display name
    log: [],
    outbox,                        // [{id, text}] unacked sends, re-sent after reconnect
    turns: {},                     // turn id -> {id, replyTo, anchor, streaming: [message ids], lastSeq, progress}
    running: [],                   // ids of running turns
    queuedTurns: [],               // turns that failed with model_unavailable: the server keeps their message
    tools: [],                     // [{call, turn, tool, label}] running tool calls, oldest first
    syncedId: null,                // newest message id known complete: `since` on reconnect
    feedback: isObject(o.feedback) ? { ...o.feedback } : {},   // message id -> 'up' | 'down' (acked)
    feedbackPending: {},           // message id -> value sent, awaiting its ack
    greeting: str(o.greeting),
    suggestions: cleanSuggestions(o.suggestions),
    alert: null,                   // {text, code, retry: null | {kind: 'resend', ref} | {kind: 'flush'}}
    closeText: '',                 // the server's words for a refused session, shown when it closes
    maxMessageChars: o.maxMessageChars > 0 ? o.maxMessageChars : DEFAULT_MAX_MESSAGE_CHARS,
    seq: 0,                        // for keys of notices (and tool calls without an id)
    people: { ...INITIAL_PEOPLE },  // who answers: the agents, nobody yet, a person (docs/people.md)
    effects: [],
  };
  const now = str(o.now) || null;
  state.log = outbox.map((m) => pendingItem(m.id, m.text, now));
  return state;
}

function pendingItem(clientId, text, created) {
  return {
    kind: 'message', key: 'c:' + clientId, id: null, clientId, role: 'user', agent: null,
    text, created, streaming: false, pending: true, failed: false, turn: null, attachment: null,
  };
}

// ---------------------------------------------------------------------------
// Drafts: a shallow copy whose collections may be changed; items are replaced, never edited
// ---------------------------------------------------------------------------

function draft(state) {
  return {
    ...state,
    agent: { ...state.agent },
    agents: { ...state.agents },
    log: state.log.slice(),
    outbox: state.outbox.slice(),
    turns: { ...state.turns },
    running: state.running.slice(),
    queuedTurns: state.queuedTurns.slice(),
    tools: state.tools.slice(),
    feedback: { ...state.feedback },
    feedbackPending: { ...state.feedbackPending },
    suggestions: state.suggestions.slice(),
    effects: [],
  };
}

const isMessage = (item) => item.kind === 'message';
const indexOfKey = (d, key) => (key ? d.log.findIndex((it) => it.key === key) : -1);
const indexOfId = (d, id) => (id ? d.log.findIndex((it) => isMessage(it) && it.id === id) : -1);
const indexOfPending = (d, clientId) =>
  (clientId ? d.log.findIndex((it) => isMessage(it) && it.pending && !it.id && it.clientId === clientId) : -1);
const firstPendingIndex = (d) => d.log.findIndex((it) => isMessage(it) && it.pending);
const hasAcked = (state) => state.log.some((it) => isMessage(it) && it.id);

function patchItem(d, index, patch) {
  const next = { ...d.log[index], ...patch };
  d.log[index] = next;
  return next;
}

/** Add an item to the log, before any user message still waiting for its ack. */
function insertIntoLog(d, item) {
  const first = firstPendingIndex(d);
  if (first >= 0 && !(isMessage(item) && item.pending)) d.log.splice(first, 0, item);
  else d.log.push(item);
}

/** Add an item right after the item with key `after` (a turn's latest), else as insertIntoLog. */
function insertAfter(d, after, item) {
  const at = indexOfKey(d, after);
  if (at >= 0) d.log.splice(at + 1, 0, item);
  else insertIntoLog(d, item);
}

function nextKey(d, prefix) {
  d.seq += 1;
  return `${prefix}:${d.seq}`;
}

function addNotice(d, fields, after) {
  const item = {
    kind: 'notice', key: nextKey(d, 'n'), notice: fields.notice || '', testid: fields.testid || 'notice',
    text: fields.text, reason: fields.reason || '', agent: fields.agent || '', retryText: fields.retryText || '',
  };
  insertAfter(d, after, item);
  return item;
}

function rememberAgent(d, agent) {
  if (isObject(agent) && str(agent.slug)) d.agents[agent.slug] = str(agent.name) || agentName(d, agent.slug);
}

function setAgent(d, agent) {
  if (!isObject(agent) || !str(agent.slug)) return;
  rememberAgent(d, agent);
  d.agent = { slug: agent.slug, name: agentName(d, agent.slug) };
}

function removeFromOutbox(d, clientId) {
  if (clientId) d.outbox = d.outbox.filter((m) => m.id !== clientId);
}

const cleanAgent = (agent) => (isObject(agent) ? { slug: str(agent.slug), name: str(agent.name) } : null);

const ATTACHMENT_KINDS = ['png', 'jpeg', 'gif', 'webp', 'pdf'];
const ATTACHMENT_PATH = '/api/conversations/attachments/';
const dimension = (v) => (Number.isInteger(v) && v > 0 ? v : null);

/**
 * A message's `attachment` (docs/attachments.md) as the page keeps it, or null. Only a
 * link to this app's own download path is kept: never a script or another site's URL.
 */
export function cleanAttachment(a) {
  if (!isObject(a) || !str(a.id) || !ATTACHMENT_KINDS.includes(a.kind)) return null;
  const url = str(a.url);
  if (!url.startsWith(ATTACHMENT_PATH)) return null;
  return {
    id: a.id, name: str(a.name) || 'attachment', kind: a.kind, size: Number.isInteger(a.size) ? a.size : 0,
    width: dimension(a.width), height: dimension(a.height), url, image: a.kind !== 'pdf',
    uploading: false, progress: 1,
  };
}

function messageItem(msg, opts) {
  return {
    kind: 'message',
    key: 'm:' + str(msg.id),
    id: str(msg.id) || null,
    clientId: str(msg.client_id) || null,
    role: ROLES.includes(msg.role) ? msg.role : 'system',
    agent: cleanAgent(msg.agent),
    text: str(msg.text),
    created: str(msg.created) || null,
    streaming: !!(opts && opts.streaming),
    pending: false,
    failed: false,
    turn: (opts && opts.turn) || null,
    attachment: cleanAttachment(msg.attachment),
  };
}

function ensureTurn(d, turnId) {
  if (!turnId) return null;
  let turn = d.turns[turnId];
  if (!turn) {
    turn = { id: turnId, replyTo: null, anchor: null, streaming: [], lastSeq: 0, progress: '' };
    d.turns[turnId] = turn;
  }
  if (!d.running.includes(turnId)) d.running.push(turnId);
  return turn;
}

function patchTurn(d, turnId, patch) {
  const turn = d.turns[turnId];
  if (!turn) return null;
  const next = { ...turn, ...patch };
  d.turns[turnId] = next;
  return next;
}

/**
 * A server message object: update the item with the same id, promote a pending user
 * message with the same client id, or add a new one. Returns the log index, or -1.
 */
function upsertMessage(d, msg, turnId) {
  if (!isObject(msg) || !str(msg.id)) return -1;
  let at = indexOfId(d, msg.id);
  if (at >= 0) {
    const item = d.log[at];
    const patch = { text: str(msg.text), streaming: false };
    if (isObject(msg.agent)) { patch.agent = cleanAgent(msg.agent); rememberAgent(d, msg.agent); }
    if (str(msg.created)) patch.created = msg.created;
    if (cleanAttachment(msg.attachment)) patch.attachment = cleanAttachment(msg.attachment);
    if (item.role === 'user' && item.clientId) removeFromOutbox(d, item.clientId);
    patchItem(d, at, patch);
  } else if (msg.role === 'user' && indexOfPending(d, str(msg.client_id)) >= 0) {
    const clientId = msg.client_id;
    at = indexOfPending(d, clientId);
    const item = { ...d.log[at], id: msg.id, pending: false, failed: false, created: str(msg.created) || d.log[at].created };
    // An upload's own bubble takes the server's attachment (its link) and words.
    if (d.log[at].attachment) { item.attachment = cleanAttachment(msg.attachment) || d.log[at].attachment; item.text = str(msg.text); }
    removeFromOutbox(d, clientId);
    d.log.splice(at, 1);
    // Confirmed now: it belongs before any message still waiting for its ack
    // (it moves only when one is before it).
    const first = firstPendingIndex(d);
    if (first >= 0 && first < at) { d.log.splice(first, 0, item); at = first; } else d.log.splice(at, 0, item);
  } else {
    const item = messageItem(msg);
    rememberAgent(d, msg.agent);
    if (item.clientId) removeFromOutbox(d, item.clientId);
    insertIntoLog(d, item);
    at = indexOfKey(d, item.key);
  }
  if (turnId) {
    const item = patchItem(d, at, { turn: turnId });
    patchTurn(d, turnId, { anchor: item.key });
  }
  return at;
}

/** The item a turn answers: by server id or by client id (turn.started's reply_to is the client id). */
function replyItem(d, replyTo) {
  if (!replyTo) return null;
  const at = indexOfId(d, replyTo);
  if (at >= 0) return d.log[at];
  return d.log.find((it) => isMessage(it) && it.role === 'user' && it.clientId === replyTo) || null;
}

/**
 * Advance `since` to the newest message before the first one pending or streaming.
 * Only while nothing runs: a reply being written may have an id older than messages
 * acked meanwhile, and `since` must not skip it.
 */
function refreshSynced(d) {
  if (d.running.length) return;
  let last = null;
  for (const it of d.log) {
    if (!isMessage(it)) continue;
    if (it.pending || it.streaming) break;
    if (it.id) last = it.id;
  }
  if (last) d.syncedId = last;
}

function clearLog(d, keepPending) {
  d.log = keepPending ? d.log.filter((it) => isMessage(it) && it.pending) : [];
  if (!keepPending) d.outbox = [];
  d.turns = {};
  d.running = [];
  d.queuedTurns = [];
  d.tools = [];
  d.feedbackPending = {};
  d.syncedId = null;
}

function stopStreaming(d) {
  d.running = [];
  d.tools = [];
  for (const id of Object.keys(d.turns)) d.turns[id] = { ...d.turns[id], streaming: [] };
}

const scroll = (d, force) => d.effects.push({ type: 'scroll', force: !!force });

// ---------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------

const HANDLERS = {
  'session.ready': onSessionReady,
  'message.ack': onAck,
  'turn.started': onTurnStarted,
  'agent.changed': onAgentChanged,
  'tool.started': onToolStarted,
  'tool.finished': onToolFinished,
  'workflow.progress': onWorkflowProgress,
  'message.delta': onDelta,
  'message.done': onDone,
  'turn.done': onTurnDone,
  'turn.progress': onTurnProgress,
  'feedback.ack': onFeedbackAck,
  'conversation.status': onStatus,
  'approval.request': onApprovalRequest,
  'approval.resolved': onApprovalResolved,
  error: onError,
  pong: () => {},
};

/** The state after one server frame. Frames that are not objects with a `type` change nothing. */
export function applyFrame(state, frame) {
  if (!isObject(frame) || typeof frame.type !== 'string') return { ...state, effects: [] };
  const d = draft(state);
  const handler = Object.prototype.hasOwnProperty.call(HANDLERS, frame.type) ? HANDLERS[frame.type] : onUnknown;
  const seq = checkSeq(d, frame);
  if (seq === 'duplicate') return d;
  handler(d, frame);
  if (seq !== null) noteSeq(d, frame);
  return d;
}

/** The turn a numbered frame belongs to ('' when it carries no `seq`). */
const seqTurn = (f) => (Number.isInteger(f.seq) ? str(f.turn) || (f.type === 'error' ? str(f.ref) : '') : '');

/**
 * Turn frames are numbered 1, 2, 3... (`seq`). A gap means the layer lost frames: ask the
 * page to resync (reconnect with `since`). A known turn joined mid-way (lastSeq null,
 * from session.ready) takes any number. Returns null (not numbered), 'ok', or 'duplicate'.
 */
function checkSeq(d, f) {
  const turnId = seqTurn(f);
  if (!turnId) return null;
  const turn = d.turns[turnId];
  const last = turn ? turn.lastSeq : 0;
  if (last !== null && f.seq <= last) return 'duplicate';
  // While a person owns the conversation the server drops the agent's frames on purpose.
  const gapExpected = d.people.status === 'human';
  if (last !== null && f.seq > last + 1 && !gapExpected && !d.effects.some((e) => e.type === 'resync')) d.effects.push({ type: 'resync' });
  return 'ok';
}

function noteSeq(d, f) {
  const turnId = seqTurn(f);
  if (!d.turns[turnId]) return;
  const patch = { lastSeq: f.seq };
  if (f.type !== 'turn.progress') patch.progress = '';   // output came: the status line goes
  patchTurn(d, turnId, patch);
}

/** "Still working on it…": the status line of a turn that has been silent a while. */
function onTurnProgress(d, f) {
  const turnId = str(f.turn);
  if (!ensureTurn(d, turnId)) return;
  patchTurn(d, turnId, { progress: str(f.message) || t('still_working') });
}

/**
 * session.ready names the turn still running (or none): the page follows it from here.
 * `stored`: the ids of session.ready's messages. A reply still streaming that it lacks
 * was never stored (its server died mid-reply): the bubble goes, the message is answered
 * again.
 */
function followRunningTurn(d, running, stored) {
  const live = isObject(running) && str(running.id) ? running.id : null;
  d.log = d.log.filter((it) => !(isMessage(it) && it.streaming && it.id && !stored.has(it.id) && it.turn !== live));
  for (const id of Object.keys(d.turns)) {
    if (id === live) continue;
    // It ended while we were away: its reply (if any) is in session.ready's messages.
    for (const msgId of d.turns[id].streaming) {
      const at = indexOfId(d, msgId);
      if (at >= 0 && d.log[at].streaming) patchItem(d, at, { streaming: false });
    }
    delete d.turns[id];
    d.running = d.running.filter((x) => x !== id);
  }
  if (!live) return;
  ensureTurn(d, live);
  const replyTo = str(running.reply_to) || d.turns[live].replyTo;
  const user = replyItem(d, replyTo);
  patchTurn(d, live, { lastSeq: null, replyTo, ...(user && !d.turns[live].anchor ? { anchor: user.key } : {}) });
}

function onSessionReady(d, f) {
  if (d.conversation && str(f.conversation) && f.conversation !== d.conversation) {
    clearLog(d, true);   // our token was not accepted: a fresh conversation
  }
  d.conversation = str(f.conversation) || d.conversation;
  if (str(f.token)) d.token = f.token;
  setAgent(d, f.agent);
  if (str(f.greeting)) d.greeting = f.greeting;
  if (Array.isArray(f.suggestions)) d.suggestions = cleanSuggestions(f.suggestions);

  if (isObject(f.status)) setPeople(d, f.status);
  const firstLoad = !hasAcked(d);
  if (Array.isArray(f.messages)) for (const m of f.messages) upsertMessage(d, m);
  const stored = new Set(Array.isArray(f.messages) ? f.messages.map((m) => isObject(m) && str(m.id)) : []);
  followRunningTurn(d, f.turn, stored);

  d.status = 'online';
  d.closeText = '';
  if (d.alert && !d.alert.retry) d.alert = null;   // e.g. "we will reconnect shortly"
  refreshSynced(d);
  d.effects.push({ type: 'flush' });
  d.effects.push({ type: 'ready', conversation: d.conversation });
  scroll(d, firstLoad);
}

function onAck(d, f) {
  const clientId = str(f.id);
  if (isObject(f.message)) {
    // The client id counts even when the server leaves it out of the message.
    const msg = { ...f.message };
    if (!msg.client_id && clientId) msg.client_id = clientId;
    upsertMessage(d, msg);
  } else {
    const at = indexOfPending(d, clientId);
    if (at >= 0) patchItem(d, at, { pending: false });
  }
  removeFromOutbox(d, clientId);
  refreshSynced(d);
  scroll(d);
}

function onTurnStarted(d, f) {
  const turnId = str(f.turn);
  if (!ensureTurn(d, turnId)) return;
  const replyTo = str(f.reply_to) || null;
  const user = replyItem(d, replyTo);
  // A run resumed after an approval answers below its card.
  const card = replyTo ? d.log.filter((it) => it.kind === 'approval' && it.replyTo === replyTo).pop() : null;
  patchTurn(d, turnId, user ? { replyTo, anchor: (card || user).key } : { replyTo });
  // The server answers it again by itself (an interrupted turn): no Retry to press.
  if (user) d.log = d.log.filter((it) => !(it.kind === 'notice' && it.notice === 'error' && it.replyKey === user.key));
}

function onAgentChanged(d, f) {
  const turnId = str(f.turn);
  ensureTurn(d, turnId);
  rememberAgent(d, f.from);
  const to = isObject(f.to) && str(f.to.slug) ? f.to : null;
  if (!to) return;
  const changed = to.slug !== d.agent.slug;
  setAgent(d, to);
  if (!changed) return;
  const name = agentName(d, to);
  const turn = d.turns[turnId];
  // Placed with its turn, not after messages the person sent meanwhile.
  const notice = addNotice(d, {
    notice: 'agent', testid: 'agent-notice', text: t(f.reason === 'fallback' ? 'agent_joined_help' : 'agent_joined', { name }),
    reason: str(f.reason), agent: to.slug,
  }, turn && turn.anchor);
  if (turn) patchTurn(d, turnId, { anchor: notice.key });
}

function onToolStarted(d, f) {
  const turnId = str(f.turn);
  ensureTurn(d, turnId);
  const call = str(f.call) || nextKey(d, 'call');
  const tool = { call, turn: turnId, tool: str(f.tool), label: str(f.label) || t('working') };
  const at = d.tools.findIndex((t) => t.call === call);
  if (at >= 0) d.tools[at] = tool; else d.tools.push(tool);
}

function onToolFinished(d, f) {
  const call = str(f.call);
  d.tools = d.tools.filter((t) => t.call !== call);
}

/** A workflow's steps, shown on the running execute_workflow call ("2 of 3 steps done"). */
function onWorkflowProgress(d, f) {
  const turnId = str(f.turn);
  const name = (isObject(f.workflow) && str(f.workflow.name)) || t('workflow');
  const done = Math.max(0, Number(f.done) || 0);
  const total = Math.max(done, Number(f.total) || 0);
  const label = f.status === 'retrying'
    ? t('workflow_retrying', { name, done, total })
    : t('workflow_steps', { name, done, total });
  d.tools = d.tools.map((t) => (t.turn === turnId && t.tool === 'execute_workflow' ? { ...t, label } : t));
}

function onDelta(d, f) {
  const id = str(f.message);
  if (!id) return;
  const turnId = str(f.turn);
  const turn = ensureTurn(d, turnId);
  let at = indexOfId(d, id);
  if (at < 0) {
    const slug = str(f.agent) || d.agent.slug;
    const item = messageItem({ id, role: 'assistant', agent: { slug, name: agentName(d, slug) }, text: '' }, { streaming: true, turn: turnId || null });
    if (turn && turn.anchor) insertAfter(d, turn.anchor, item);
    else insertIntoLog(d, item);
    at = indexOfKey(d, item.key);
  }
  let item = d.log[at];
  if (!item.streaming && turnId && item.turn && item.turn !== turnId && !d.turns[item.turn] && item.role === 'assistant') {
    // A partial reply an earlier, failed turn left: this turn's reply replaces it (same id).
    item = patchItem(d, at, { text: '', streaming: true, turn: turnId });
  }
  if (!item.streaming) return;   // already complete (e.g. filled in by session.ready)
  patchItem(d, at, { text: item.text + str(f.text) });
  if (turn) {
    const streaming = turn.streaming.includes(id) ? turn.streaming : [...turn.streaming, id];
    patchTurn(d, turnId, { streaming, anchor: item.key });
  }
  scroll(d);
}

function onDone(d, f) {
  const msg = f.message;
  if (!isObject(msg) || !str(msg.id)) return;
  const turnId = str(f.turn);
  const turn = turnId ? d.turns[turnId] : null;
  const existed = indexOfId(d, msg.id) >= 0;
  const anchor = turn ? turn.anchor : null;
  const at = upsertMessage(d, msg, turn ? turnId : null);
  if (at < 0) return;
  let item = d.log[at];
  if (!existed && anchor && anchor !== item.key) {
    // A reply without deltas: with its turn, like a streamed one.
    d.log.splice(at, 1);
    insertAfter(d, anchor, item);
    item = d.log[indexOfKey(d, item.key)];
  }
  if (turn) patchTurn(d, turnId, { streaming: d.turns[turnId].streaming.filter((x) => x !== item.id), anchor: item.key });
  if (item.role === 'assistant' || item.role === 'staff') d.effects.push({ type: 'notify', message: publicMessage(item) });
  scroll(d);
}

function onTurnDone(d, f) {
  const turnId = str(f.turn);
  const turn = d.turns[turnId] || null;
  d.running = d.running.filter((x) => x !== turnId);
  d.tools = d.tools.filter((t) => t.turn !== turnId);

  if (turn) {
    // A reply cut short (cancel, error) keeps the text it had.
    for (const id of turn.streaming) {
      const at = indexOfId(d, id);
      if (at >= 0 && d.log[at].streaming) patchItem(d, at, { streaming: false });
    }
  }

  // An answer arrived: "we could not reach the assistant" is no longer true.
  if (f.status === 'ok' && d.alert && d.alert.code === 'model_unavailable') d.alert = null;
  const anchor = turn && turn.anchor;
  if (f.status === 'error' && d.queuedTurns.includes(turnId)) {
    // No model could answer: the server keeps the message and answers it later.
    d.queuedTurns = d.queuedTurns.filter((x) => x !== turnId);
    addNotice(d, { notice: 'queued', testid: 'queued', text: t('queued') }, anchor);
  } else if (f.status === 'error') {
    addRetryNotice(d, turn);
  } else if (f.status === 'cancelled') {
    addNotice(d, { notice: 'stopped', testid: 'stopped', text: t('stopped') }, anchor);
  }

  delete d.turns[turnId];
  refreshSynced(d);
  scroll(d);
}

/** "The reply could not be completed. [Retry]": retry sends the same text as a new message. */
function addRetryNotice(d, turn) {
  let user = turn ? replyItem(d, turn.replyTo) : null;
  if (!user) {
    const acked = d.log.filter((it) => isMessage(it) && it.role === 'user' && it.id);
    user = acked[acked.length - 1] || null;
  }
  const notice = addNotice(d, {
    notice: 'error', testid: 'turn-error', text: t('reply_failed'), retryText: user ? user.text : '',
  }, (turn && turn.anchor) || (user && user.key));
  if (user) patchItem(d, indexOfKey(d, notice.key), { replyKey: user.key });
}

const APPROVAL_OUTCOMES = ['approved', 'declined', 'expired'];
const approvalKey = (id) => 'a:' + id;

/** An action waits for a yes or no: a card, with its turn (once, however often it is sent). */
function onApprovalRequest(d, f) {
  const id = str(f.approval);
  if (!id || indexOfKey(d, approvalKey(id)) >= 0) return;
  const turn = d.turns[str(f.turn)] || null;
  const item = {
    kind: 'approval', key: approvalKey(id), id, summary: str(f.summary) || t('approval_waiting'),
    action: str(f.action), agent: str(f.agent), by: f.by === 'staff' ? 'staff' : 'user', expires: str(f.expires) || null,
    outcome: null, sending: false, replyTo: (turn && turn.replyTo) || null,
  };
  insertAfter(d, turn && turn.anchor, item);
  if (turn) patchTurn(d, turn.id, { anchor: item.key });
  scroll(d);
}

function onApprovalResolved(d, f) {
  const at = indexOfKey(d, approvalKey(str(f.approval)));
  if (at < 0 || !APPROVAL_OUTCOMES.includes(f.outcome)) return;
  patchItem(d, at, { outcome: f.outcome, sending: false });
}

/** The person pressed Approve or Decline: the card is busy until approval.resolved (or an error). */
export function approvalSent(state, approvalId) {
  const d = draft(state);
  const at = indexOfKey(d, approvalKey(approvalId));
  if (at >= 0) patchItem(d, at, { sending: true });
  return d;
}

function onFeedbackAck(d, f) {
  const id = str(f.message);
  const value = d.feedbackPending[id] || str(f.value);
  delete d.feedbackPending[id];
  if (value !== 'up' && value !== 'down') return;
  delete d.feedback[id];   // re-added last: the newest choice is kept longest
  d.feedback[id] = value;
  const keys = Object.keys(d.feedback);
  for (const key of keys.slice(0, Math.max(0, keys.length - FEEDBACK_KEPT))) delete d.feedback[key];
}

function onError(d, f) {
  const code = str(f.code);
  const ref = str(f.ref);
  const text = str(f.message) || t(ERROR_FALLBACK[code] || ERROR_DEFAULT);
  let retry = null;
  if (code === 'model_unavailable' && ref && d.turns[ref] && !d.queuedTurns.includes(ref)) d.queuedTurns.push(ref);
  // A refused session (forged identity, site not allowed) closes next: keep these words for it.
  if (code === 'identity_invalid' || code === 'forbidden') d.closeText = text;

  const pendingAt = indexOfPending(d, ref);
  if (pendingAt >= 0) {
    // The send was refused (too large, rate limited…): nothing was stored.
    if (f.retryable) {
      retry = { kind: 'resend', ref };
    } else {
      const item = patchItem(d, pendingAt, { failed: true, pending: false });
      removeFromOutbox(d, ref);
      // Put the text back so the person can edit it.
      d.effects.push({ type: 'restore-input', text: item.text });
    }
  } else if (ref && Object.prototype.hasOwnProperty.call(d.feedbackPending, ref)) {
    delete d.feedbackPending[ref];
  } else if (ref && indexOfKey(d, approvalKey(ref)) >= 0) {
    patchItem(d, indexOfKey(d, approvalKey(ref)), { sending: false });   // refused: the words say why
  } else if (f.retryable && !(ref && d.turns[ref])) {
    // A turn error gets its own Retry next to the exchange (turn.done "error").
    retry = { kind: 'flush' };
  }
  d.alert = { text, code, retry };
}

/** The status object of session.ready and conversation.status, checked field by field. */
function setPeople(d, f) {
  const status = PEOPLE_STATUSES.includes(f.status) ? f.status : 'bot';
  const score = Number.isInteger(f.csat) && f.csat >= 1 && f.csat <= 5 ? f.csat : null;
  d.people = {
    status,
    staff: isObject(f.staff) && str(f.staff.name) ? { name: f.staff.name } : null,
    eta: Number.isFinite(f.eta_seconds) && f.eta_seconds >= 0 ? f.eta_seconds : null,
    openNow: f.open_now !== false,
    opensAt: str(f.opens_at) || null,
    message: str(f.message),
    csat: score,
    emailSaved: f.email_saved === true,
  };
}

/** A running agent turn stopped by a takeover ends with its own turn.done (cancelled). */
function onStatus(d, f) {
  setPeople(d, f);
  scroll(d);
}

/** Frames added by later server versions: show any complete message object they carry. */
function onUnknown(d, f) {
  const msg = f.message;
  if (!isObject(msg) || !str(msg.id) || !msg.role) return;
  const known = indexOfId(d, msg.id) >= 0;
  const at = upsertMessage(d, msg);
  if (at >= 0 && !known && d.log[at].role === 'staff') d.effects.push({ type: 'notify', message: publicMessage(d.log[at]) });
}

// ---------------------------------------------------------------------------
// The page's own actions
// ---------------------------------------------------------------------------

/** A message the person sends: into the outbox, shown as pending. `text` as outgoingText gives it. */
export function sendMessage(state, { id, text, now }) {
  const d = draft(state);
  d.outbox.push({ id, text });
  insertIntoLog(d, pendingItem(id, text, str(now) || null));
  d.alert = null;
  scroll(d, true);
  return d;
}

/**
 * A file the person sends (over HTTP, not the socket: docs/attachments.md): shown at once
 * as a pending message with its name and the upload's progress. Never in the outbox: a
 * reconnect does not send it again; the upload's own answer or message.ack confirms it.
 */
export function uploadStarted(state, { id, name, size, text, now }) {
  const d = draft(state);
  const item = pendingItem(id, str(text), str(now) || null);
  item.attachment = {
    id: null, name: str(name) || 'attachment', kind: '', size: Number.isInteger(size) ? size : 0,
    width: null, height: null, url: '', image: false, uploading: true, progress: 0,
  };
  insertIntoLog(d, item);
  d.alert = null;
  scroll(d, true);
  return d;
}

/** How far the upload is, 0 to 1. */
export function uploadProgress(state, id, fraction) {
  const at = indexOfPending(state, id);
  if (at < 0 || !state.log[at].attachment) return state;
  const d = draft(state);
  const progress = Math.max(0, Math.min(1, Number(fraction) || 0));
  patchItem(d, at, { attachment: { ...d.log[at].attachment, progress } });
  return d;
}

/** The server took the file: its answer is the message (as message.ack has it). */
export function uploadDone(state, { id, message }) {
  return applyFrame(state, { type: 'message.ack', id, message });
}

/** The upload was refused or failed: the bubble goes, the server's words (or ours) show. */
export function uploadFailed(state, id, text) {
  const d = draft(state);
  const at = indexOfPending(d, id);
  if (at >= 0) d.log.splice(at, 1);
  d.alert = { text: str(text) || t('upload_failed'), code: 'upload', retry: null };
  return d;
}

export const UPLOAD_FAILED = 'upload_failed'; // the key of the words shown (i18n.js)

/** The feedback frame went out: show the button busy until feedback.ack. */
export function feedbackSent(state, messageId, value) {
  const d = draft(state);
  d.feedbackPending[messageId] = value;
  return d;
}

/** A socket is being opened (`retry`: not the first attempt since the last session.ready). */
export function connecting(state, { retry } = {}) {
  const d = draft(state);
  d.status = retry || hasAcked(state) ? 'reconnecting' : 'connecting';
  d.closeText = '';
  return d;
}

export function setStatus(state, status) {
  const d = draft(state);
  d.status = status;
  return d;
}

/**
 * The socket closed. We do not know whether turns still run (live events will say so
 * if they do). A refused session (4400, 4401, 4403) says why; 4429 says we wait.
 */
export function connectionClosed(state, { code, reason } = {}) {
  const d = draft(state);
  stopStreaming(d);
  if (FATAL_CLOSES.has(code)) {
    d.status = 'closed';
    d.alert = { text: str(reason) || d.closeText || t(CLOSE_REASONS[code]), code: '', retry: null };
  } else if (code === 4429) {
    d.alert = { text: t(CLOSE_REASONS[4429]), code: '', retry: null };
  }
  return d;
}

/** The socket was dropped on purpose to start again (the widget's user changed). */
export function sessionRestarted(state) {
  const d = draft(state);
  stopStreaming(d);
  d.alert = null;
  return d;
}

/** Empty the log. keepPending: keep user messages that wait for an ack (and the outbox). */
export function clearConversation(state, { keepPending } = {}) {
  const d = draft(state);
  clearLog(d, !!keepPending);
  return d;
}

/** New conversation: forget the token, the outbox and the log. */
export function startOver(state) {
  const d = draft(state);
  clearLog(d, false);
  d.token = null;
  d.conversation = null;
  d.agent = { ...DEFAULT_AGENT };
  d.alert = null;
  d.people = { ...INITIAL_PEOPLE };
  return d;
}

export function raiseAlert(state, text, { code = '', retry = null } = {}) {
  const d = draft(state);
  d.alert = { text, code, retry };
  return d;
}

export function dismissAlert(state) {
  const d = draft(state);
  d.alert = null;
  return d;
}

export function removeItem(state, key) {
  const d = draft(state);
  d.log = d.log.filter((it) => it.key !== key);
  return d;
}

// ---------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------

/** What the widget may tell the host page about a reply (no token, no client id). */
export function publicMessage(item) {
  return { id: item.id, role: item.role, agent: item.agent ? { slug: item.agent.slug, name: item.agent.name } : null, text: item.text };
}

/** The typing line and the stop button: {running, typing, label, tool}. */
export function indicators(state) {
  const running = state.running.length > 0;
  const toolLabel = state.tools.length ? state.tools[state.tools.length - 1].label : '';   // the newest running tool
  const streaming = state.running.some((id) => state.turns[id] && state.turns[id].streaming.length > 0);
  const progress = state.running.map((id) => state.turns[id] && state.turns[id].progress).filter(Boolean).pop() || '';
  const typing = running && (!!toolLabel || !!progress || !streaming);
  return { running, typing, label: toolLabel || progress || t('typing', { name: state.agent.name }), tool: !!toolLabel };
}

/**
 * What the page shows of people in the loop: {askButton, banner, askEmail, askCsat}.
 * The "Talk to a person" button while the agents answer (or after resolved); a banner with
 * the server's words while waiting or with a person (and once resolved); the email form
 * when a person was asked for outside business hours; the rating once resolved.
 */
export function peopleView(state) {
  const p = state.people || INITIAL_PEOPLE;
  const online = state.status === 'online';
  return {
    askButton: online && (p.status === 'bot' || p.status === 'resolved'),
    banner: p.status === 'bot' ? '' : p.message,
    askEmail: online && p.status === 'waiting' && !p.openNow && !p.emailSaved,
    askCsat: online && p.status === 'resolved' && p.csat === null,
    rated: p.csat,
  };
}

/** The messages shown, in order, as the test hook reports them (failed sends left out). */
export function shownMessages(state) {
  return state.log.filter((it) => isMessage(it) && (it.id || it.pending)).map((it) => ({
    id: it.id, client_id: it.clientId, role: it.role, agent: it.agent && it.agent.slug, text: it.text,
    pending: it.pending, streaming: it.streaming,
    ...(it.attachment ? { attachment: { name: it.attachment.name, kind: it.attachment.kind, url: it.attachment.url } } : {}),
  }));
}

/** session.start for this state (token and since when we have them). */
export function sessionStart(state, { site, user, context, locale } = {}) {
  const start = { type: 'session.start', protocol: PROTOCOL, site };
  if (locale) start.locale = locale;   // the page's language: the server's replies follow it
  if (state.token) start.token = state.token;
  if (state.token && state.syncedId) start.since = state.syncedId;
  if (user) start.user = user;
  if (context) start.context = context;
  return start;
}
