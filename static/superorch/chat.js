/*
 * Super Orchestrator – browser chat client.
 *
 * Implements the client side of the chat wire protocol, version 1
 * (docs/protocol.md): one WebSocket, JSON text frames, session.start first.
 *
 * No framework and no build step. Configuration comes from data-* attributes on
 * #superorch and the json_script block #so-suggestions, so the page runs under a
 * strict CSP (script-src 'self'; style-src 'self'). Model and user text is
 * never inserted as HTML except through DOMPurify.
 *
 * Two modes, from #superorch[data-mode]:
 *   "app"    – the full page at /: connects at once.
 *   "widget" – the embeddable widget's frame (/widget/<site>/, in an iframe that
 *              static/superorch/widget.js puts on a site's pages). It talks to the
 *              host page by postMessage (see "Widget mode" below) and connects only
 *              after the host's `init` (or 3 s without one).
 *
 * The only global is window.SuperOrchChat = {send(text), state}.
 */
(function () {
  'use strict';

  const root = document.getElementById('superorch');
  if (!root) return;

  // ---------------------------------------------------------------------------
  // Constants and configuration
  // ---------------------------------------------------------------------------

  const PROTOCOL = 1;
  const MAX_LEN = 4000;
  const COUNTER_FROM = 3500;          // show the character counter near the limit
  const PING_MS = 25000;
  const DEAD_MS = 65000;              // no frame at all for this long: assume a dead socket
  const BACKOFF_MIN = 1000;
  const BACKOFF_MAX = 30000;
  const FATAL_CLOSES = new Set([4400, 4401, 4403]);
  const DEFAULT_AGENT = { slug: 'orchestrator', name: 'Super Orchestrator' };

  const WIDGET = root.dataset.mode === 'widget';
  const site = root.dataset.site || 'demo';
  const wsPath = root.dataset.ws || '/ws/chat/';
  const KEY_TOKEN = 'superorch:token:' + site;
  const KEY_OUTBOX = 'superorch:outbox:' + site;
  const KEY_FEEDBACK = 'superorch:feedback:' + site;
  const KEY_THEME = 'superorch:theme';

  const CLOSE_REASONS = {
    4400: 'The chat could not start a session. Please reload the page.',
    4401: 'We could not verify who you are. Please sign in again and reload the page.',
    4403: 'Chat is not available on this site right now.',
    4429: 'Too many messages in a short time. We will reconnect shortly.',
  };
  const ERROR_FALLBACK = {
    rate_limited: 'You are sending messages too quickly. Please wait a moment.',
    too_large: 'That message is too long.',
    model_unavailable: 'We could not reach the assistant. Your message is saved; we will retry.',
    internal: 'Something went wrong on our side. Please try again.',
  };

  const reduceMotion = window.matchMedia ? window.matchMedia('(prefers-reduced-motion: reduce)') : null;
  const darkScheme = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;

  // ---------------------------------------------------------------------------
  // DOM references
  // ---------------------------------------------------------------------------

  const $ = (sel) => root.querySelector(sel);
  const el = {
    agentName: $('[data-testid="agent-name"]'),
    status: $('[data-testid="status"]'),
    statusText: $('.so-status__text'),
    themeToggle: $('[data-testid="theme-toggle"]'),
    newConv: $('[data-testid="new-conversation"]'),
    scroll: $('[data-testid="scroll"]'),
    start: $('[data-testid="start"]'),
    greeting: $('[data-testid="greeting"]'),
    suggestions: $('.so-suggestions'),
    log: $('[data-testid="messages"]'),
    typing: $('[data-testid="typing"]'),
    typingLabel: $('.so-typing__label'),
    alert: $('[data-testid="error"]'),
    alertText: $('.so-alert__text'),
    alertRetry: $('[data-testid="error-retry"]'),
    alertClose: $('[data-testid="error-dismiss"]'),
    form: $('[data-testid="composer-form"]'),
    input: $('[data-testid="composer"]'),
    counter: $('[data-testid="counter"]'),
    send: $('[data-testid="send"]'),
    stop: $('[data-testid="stop"]'),
    close: $('[data-testid="widget-close"]'),   // widget mode only
  };

  // ---------------------------------------------------------------------------
  // Storage (localStorage can be unavailable or throw; fall back to memory)
  // ---------------------------------------------------------------------------

  const memoryStore = new Map();
  const store = {
    get(key) {
      try { return window.localStorage.getItem(key); } catch (_) { return memoryStore.has(key) ? memoryStore.get(key) : null; }
    },
    set(key, value) {
      try { window.localStorage.setItem(key, value); } catch (_) { memoryStore.set(key, value); }
    },
    remove(key) {
      try { window.localStorage.removeItem(key); } catch (_) { /* ignore */ }
      memoryStore.delete(key);
    },
    getJSON(key, fallback) {
      try { const v = JSON.parse(this.get(key)); return v == null ? fallback : v; } catch (_) { return fallback; }
    },
    setJSON(key, value) { this.set(key, JSON.stringify(value)); },
  };

  // ---------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------

  const state = {
    status: 'connecting',     // connecting | online | reconnecting | closed
    conversation: null,
    token: store.get(KEY_TOKEN),
    agent: Object.assign({}, DEFAULT_AGENT),
    agents: new Map([[DEFAULT_AGENT.slug, DEFAULT_AGENT.name]]),  // slug -> display name
    records: new Map(),       // server message id -> record (see makeRecord)
    pending: new Map(),       // client id -> record of a user message not acked yet
    outbox: [],               // [{id, text}] unacked sends, re-sent after reconnect
    turns: new Map(),         // turn id -> {id, replyTo, lastEl, streaming:Set}
    running: new Set(),       // ids of turns that are running
    queuedTurns: new Set(),   // turns that ended with model_unavailable: their message waits on the server
    tools: new Map(),         // call id -> {turn, label}
    syncedId: null,           // newest message id known complete: `since` for reconnects
    feedback: store.getJSON(KEY_FEEDBACK, {}),   // message id -> 'up' | 'down' (acked)
    feedbackPending: new Map(),                  // message id -> value sent, awaiting ack
    greeting: el.greeting ? el.greeting.textContent : '',
    suggestions: readSuggestions(),
  };

  const outboxSaved = store.getJSON(KEY_OUTBOX, []);
  if (Array.isArray(outboxSaved)) {
    state.outbox = outboxSaved.filter((m) => m && typeof m.id === 'string' && typeof m.text === 'string');
  }

  function readSuggestions() {
    const node = document.getElementById('so-suggestions');
    if (!node) return [];
    try {
      const list = JSON.parse(node.textContent);
      return Array.isArray(list) ? list.filter((s) => typeof s === 'string' && s.trim()) : [];
    } catch (_) {
      return [];
    }
  }

  function saveOutbox() {
    if (state.outbox.length) store.setJSON(KEY_OUTBOX, state.outbox);
    else store.remove(KEY_OUTBOX);
  }

  function saveFeedback() {
    // Keep the remembered choices bounded.
    const keys = Object.keys(state.feedback);
    if (keys.length > 300) keys.slice(0, keys.length - 300).forEach((k) => delete state.feedback[k]);
    store.setJSON(KEY_FEEDBACK, state.feedback);
  }

  // ---------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------

  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (children) for (const c of children) if (c) node.append(c);
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ICONS = {
    up: 'M7 10v11M15 5.9 14 10h5.8a2 2 0 0 1 1.9 2.6l-2.3 7A2 2 0 0 1 17.5 21H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h2.8a2 2 0 0 0 1.8-1.1L12 2a3.1 3.1 0 0 1 3 3.9z',
    down: 'M17 14V3M9 18.1 10 14H4.2a2 2 0 0 1-1.9-2.6l2.3-7A2 2 0 0 1 6.5 3H20a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1h-2.8a2 2 0 0 0-1.8 1.1L12 22a3.1 3.1 0 0 1-3-3.9z',
    retry: 'M3 12a9 9 0 0 1 15.5-6.2L21 8M21 3v5h-5M21 12a9 9 0 0 1-15.5 6.2L3 16M3 21v-5h5',
  };
  function icon(name) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('fill', 'none');
    svg.setAttribute('stroke', 'currentColor');
    svg.setAttribute('stroke-width', '2');
    svg.setAttribute('stroke-linecap', 'round');
    svg.setAttribute('stroke-linejoin', 'round');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
    return svg;
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    // Fallback for non-secure contexts (plain http on a LAN address): RFC 4122 v4 from getRandomValues.
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const str = (v) => (typeof v === 'string' ? v : '');

  function parseDate(iso) {
    const d = iso ? new Date(iso) : new Date();
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }

  function agentName(agentOrSlug) {
    if (agentOrSlug && typeof agentOrSlug === 'object') {
      if (agentOrSlug.slug && agentOrSlug.name) state.agents.set(agentOrSlug.slug, agentOrSlug.name);
      return str(agentOrSlug.name) || agentName(agentOrSlug.slug);
    }
    const slug = str(agentOrSlug);
    if (!slug) return state.agent.name;
    if (state.agents.has(slug)) return state.agents.get(slug);
    // Unknown slug: make it readable ("it_support" -> "It support").
    const words = slug.replace(/[-_]+/g, ' ').trim();
    return words ? words.charAt(0).toUpperCase() + words.slice(1) : state.agent.name;
  }

  function rememberAgent(agent) {
    if (agent && typeof agent === 'object' && agent.slug) state.agents.set(agent.slug, str(agent.name) || agentName(agent.slug));
  }

  // ---------------------------------------------------------------------------
  // Markdown: marked -> DOMPurify. Links open in a new tab without an opener.
  // ---------------------------------------------------------------------------

  const canRenderMarkdown = typeof window.marked === 'object' && typeof window.marked.parse === 'function' &&
    typeof window.DOMPurify === 'function' && typeof window.DOMPurify.sanitize === 'function';

  const PURIFY_CONFIG = {
    USE_PROFILES: { html: true },
    // No images: a reply must not make the browser fetch URLs by itself.
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'img', 'picture', 'source', 'video', 'audio', 'iframe'],
    FORBID_ATTR: ['style'],   // the CSP would block them anyway
  };

  if (canRenderMarkdown) {
    window.marked.use({ gfm: true, breaks: true });
    window.DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A') {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    });
  }

  function renderMarkdownInto(target, text) {
    if (!canRenderMarkdown) {     // vendor scripts missing: plain text, never raw HTML
      target.textContent = text;
      target.classList.add('so-plain');
      return;
    }
    let html = '';
    try {
      html = window.marked.parse(text, { async: false });
    } catch (_) {
      target.textContent = text;
      return;
    }
    target.innerHTML = window.DOMPurify.sanitize(typeof html === 'string' ? html : '', PURIFY_CONFIG);
  }

  // ---------------------------------------------------------------------------
  // Scrolling: follow new content only when the reader is already at the bottom
  // ---------------------------------------------------------------------------

  let stickToBottom = true;
  el.scroll.addEventListener('scroll', () => {
    const s = el.scroll;
    stickToBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }, { passive: true });

  function scrollToBottom(force) {
    if (!force && !stickToBottom) return;
    stickToBottom = true;
    const behavior = reduceMotion && reduceMotion.matches ? 'auto' : 'smooth';
    // Smooth scrolling during fast streaming lags behind; jump when already close.
    const s = el.scroll;
    const far = s.scrollHeight - s.scrollTop - s.clientHeight > s.clientHeight;
    s.scrollTo({ top: s.scrollHeight, behavior: far || force ? 'auto' : behavior });
  }

  // ---------------------------------------------------------------------------
  // Message records and rendering
  // ---------------------------------------------------------------------------

  /*
   * A record is one rendered message:
   *   {id, clientId, role, agent, text, created, el, bubble, streaming, dirty, turn}
   * `id` is the server id (null while a user message waits for its ack).
   */

  function formatTime(date) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function makeRecord(msg, opts) {
    const role = ['user', 'assistant', 'staff', 'system'].includes(msg.role) ? msg.role : 'system';
    const agent = msg.agent && typeof msg.agent === 'object' ? { slug: str(msg.agent.slug), name: str(msg.agent.name) } : null;
    if (agent) rememberAgent(agent);
    const rec = {
      id: str(msg.id) || null,
      clientId: str(msg.client_id) || null,
      role,
      agent,
      text: str(msg.text),
      created: parseDate(msg.created),
      streaming: !!(opts && opts.streaming),
      pending: !!(opts && opts.pending),
      dirty: false,
      turn: (opts && opts.turn) || null,
      el: null,
      bubble: null,
      statusEl: null,
      actions: null,
    };
    buildMessageEl(rec);
    return rec;
  }

  function buildMessageEl(rec) {
    const node = h('div', {
      class: `so-msg so-msg--${rec.role}`,
      'data-testid': 'message',
      'data-role': rec.role,
      'data-agent': rec.agent ? rec.agent.slug : '',
    });
    if (rec.id) node.dataset.id = rec.id;
    if (rec.clientId) node.dataset.clientId = rec.clientId;

    const time = h('time', { class: 'so-msg__time', 'aria-hidden': 'true' });
    rec.timeEl = time;

    if (rec.role === 'system') {
      rec.bubble = h('p', { class: 'so-msg__system' });
      node.append(rec.bubble);
    } else {
      // The speaker's name is part of the message text so screen readers announce it.
      let who;
      if (rec.role === 'user') who = h('span', { class: 'so-sr-only', text: 'You said: ' });
      else who = h('span', { class: 'so-msg__name', text: rec.role === 'staff' ? (rec.agent && rec.agent.name) || 'Support team' : agentName(rec.agent) });
      if (rec.role === 'staff') who.append(h('span', { class: 'so-msg__tag', text: 'Team' }));
      const meta = h('div', { class: 'so-msg__meta' }, [who, time]);
      rec.bubble = h('div', { class: 'so-msg__bubble' + (rec.role === 'user' ? '' : ' so-md') });
      node.append(meta, rec.bubble);
      if (rec.role === 'user') {
        rec.statusEl = h('div', { class: 'so-msg__status', 'aria-live': 'off' });
        node.append(rec.statusEl);
      }
    }
    rec.el = node;
    setTimestamp(rec, rec.created);
    renderText(rec);
    updateRecordState(rec);
  }

  /** Local time on hover (title) and in a small <time> shown on hover/focus. */
  function setTimestamp(rec, date) {
    rec.created = date;
    rec.el.title = date.toLocaleString();
    if (rec.timeEl) {
      rec.timeEl.dateTime = date.toISOString();
      rec.timeEl.textContent = formatTime(date);
    }
  }

  function renderText(rec) {
    rec.dirty = false;
    if (rec.role === 'assistant' || rec.role === 'staff') {
      renderMarkdownInto(rec.bubble, rec.text);
      if (rec.streaming && !rec.text) rec.bubble.classList.add('so-msg__bubble--empty');
      else rec.bubble.classList.remove('so-msg__bubble--empty');
    } else {
      rec.bubble.textContent = rec.text;   // user and system text: plain, white-space preserved by CSS
    }
  }

  // Re-render streaming bubbles at most once per animation frame.
  const dirtyRecords = new Set();
  let rafPending = false;
  function scheduleRender(rec) {
    rec.dirty = true;
    dirtyRecords.add(rec);
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      for (const r of dirtyRecords) if (r.dirty) renderText(r);
      dirtyRecords.clear();
      scrollToBottom();
    });
  }

  function updateRecordState(rec) {
    const node = rec.el;
    node.classList.toggle('so-msg--pending', rec.pending);
    node.classList.toggle('so-msg--streaming', rec.streaming);
    // aria-busy keeps screen readers from re-reading a reply on every chunk.
    if (rec.streaming) node.setAttribute('aria-busy', 'true');
    else node.removeAttribute('aria-busy');
    if (rec.id) node.dataset.id = rec.id;

    if (rec.statusEl) {
      node.dataset.state = rec.failed ? 'failed' : rec.pending ? 'sending' : 'sent';
      rec.statusEl.textContent = rec.failed ? 'Not sent' : rec.pending ? (state.status === 'online' ? 'Sending…' : 'Waiting for connection…') : '';
      rec.statusEl.hidden = !rec.pending && !rec.failed;
    }

    if (rec.role === 'assistant' && rec.id && !rec.streaming && !rec.actions) {
      rec.actions = buildFeedback(rec);
      node.append(rec.actions);
    }
  }

  function buildFeedback(rec) {
    const name = agentName(rec.agent);
    const up = h('button', { type: 'button', class: 'so-fb', 'data-testid': 'feedback-up', 'data-value': 'up', 'aria-pressed': 'false', 'aria-label': `Good reply from ${name}`, title: 'Good reply' }, [icon('up')]);
    const down = h('button', { type: 'button', class: 'so-fb', 'data-testid': 'feedback-down', 'data-value': 'down', 'aria-pressed': 'false', 'aria-label': `Bad reply from ${name}`, title: 'Bad reply' }, [icon('down')]);
    const box = h('div', { class: 'so-msg__actions', role: 'group', 'aria-label': 'Rate this reply' }, [up, down]);
    box.addEventListener('click', (e) => {
      const btn = e.target.closest('button.so-fb');
      if (btn) sendFeedback(rec, btn.dataset.value);
    });
    applyFeedback(rec.id, state.feedback[rec.id], box);
    return box;
  }

  function applyFeedback(messageId, value, box) {
    const rec = state.records.get(messageId);
    const actions = box || (rec && rec.actions);
    if (!actions) return;
    for (const btn of actions.querySelectorAll('button.so-fb')) {
      btn.setAttribute('aria-pressed', btn.dataset.value === value ? 'true' : 'false');
      btn.classList.remove('so-fb--busy');
    }
  }

  /** Insert a node into the log, before any user message still waiting for its ack. */
  function insertIntoLog(node) {
    const firstPending = el.log.querySelector(':scope > .so-msg--pending');
    if (firstPending && !node.classList.contains('so-msg--pending')) el.log.insertBefore(node, firstPending);
    else el.log.append(node);
    updateStartScreen();
  }

  function insertAfter(ref, node) {
    if (ref && ref.parentNode === el.log) ref.after(node);
    else insertIntoLog(node);
    updateStartScreen();
  }

  /**
   * Show a server message object: update the record with the same id, promote a
   * pending user message with the same client id, or add a new one.
   */
  function upsertMessage(msg, turnId) {
    if (!msg || typeof msg !== 'object' || !str(msg.id)) return null;
    let rec = state.records.get(msg.id);
    if (rec) {
      const text = str(msg.text);
      const changed = rec.streaming || rec.text !== text;
      rec.text = text;
      rec.streaming = false;
      if (msg.agent && typeof msg.agent === 'object') { rec.agent = msg.agent; rememberAgent(msg.agent); }
      if (msg.created) setTimestamp(rec, parseDate(msg.created));
      if (changed) renderText(rec);
      updateRecordState(rec);
    } else if (msg.role === 'user' && str(msg.client_id) && state.pending.has(msg.client_id)) {
      rec = state.pending.get(msg.client_id);
      state.pending.delete(msg.client_id);
      removeFromOutbox(msg.client_id);
      rec.id = msg.id;
      rec.pending = false;
      rec.failed = false;
      setTimestamp(rec, parseDate(msg.created));
      state.records.set(rec.id, rec);
      updateRecordState(rec);
      // Confirmed now: it belongs before any message still waiting for its ack.
      // (Move only when needed: a moved node is announced again by the log.)
      const firstPending = el.log.querySelector(':scope > .so-msg--pending');
      if (firstPending && (firstPending.compareDocumentPosition(rec.el) & Node.DOCUMENT_POSITION_FOLLOWING)) {
        el.log.insertBefore(rec.el, firstPending);
      }
    } else {
      rec = makeRecord(msg);
      state.records.set(rec.id, rec);
      if (rec.clientId) removeFromOutbox(rec.clientId);
      insertIntoLog(rec.el);
    }
    if (turnId) {
      rec.turn = turnId;
      const turn = state.turns.get(turnId);
      if (turn) turn.lastEl = rec.el;
    }
    return rec;
  }

  function addNotice(text, opts) {
    const node = h('div', { class: 'so-notice' + (opts && opts.kind ? ` so-notice--${opts.kind}` : ''), 'data-testid': (opts && opts.testid) || 'notice' }, [
      h('span', { class: 'so-notice__text', text }),
    ]);
    if (opts && opts.after) insertAfter(opts.after, node);
    else insertIntoLog(node);
    return node;
  }

  function updateStartScreen() {
    const empty = !el.log.querySelector('.so-msg');
    el.start.hidden = !empty;
    root.dataset.empty = empty ? 'true' : 'false';
  }

  let renderedSuggestions = null;
  function renderStartScreen() {
    if (state.greeting && el.greeting.textContent !== state.greeting) el.greeting.textContent = state.greeting;
    const key = JSON.stringify(state.suggestions);
    if (key === renderedSuggestions) { updateStartScreen(); return; }   // keep focus on an existing button
    renderedSuggestions = key;
    el.suggestions.replaceChildren(...state.suggestions.map((s) => h('li', null, [
      h('button', { type: 'button', class: 'so-suggestion', 'data-testid': 'suggestion', text: s }),
    ])));
    updateStartScreen();
  }

  el.suggestions.addEventListener('click', (e) => {
    const btn = e.target.closest('button.so-suggestion');
    if (!btn) return;
    send(btn.textContent);
    el.input.focus();
  });

  // ---------------------------------------------------------------------------
  // Header: agent name, connection status, theme
  // ---------------------------------------------------------------------------

  function setAgent(agent) {
    if (!agent || typeof agent !== 'object' || !agent.slug) return;
    rememberAgent(agent);
    state.agent = { slug: agent.slug, name: agentName(agent.slug) };
    el.agentName.textContent = state.agent.name;
    root.dataset.agent = state.agent.slug;
  }

  const STATUS_TEXT = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…', closed: 'Disconnected' };
  function setStatus(status, text) {
    state.status = status;
    el.status.dataset.state = status;
    el.statusText.textContent = text || STATUS_TEXT[status] || status;
    for (const rec of state.pending.values()) updateRecordState(rec);
  }

  /** 'light' | 'dark' when chosen (by the person on the app page, by the site in the widget), else null. */
  function chosenTheme() {
    const saved = WIDGET ? root.dataset.theme : store.get(KEY_THEME);
    return saved === 'light' || saved === 'dark' ? saved : null;
  }

  function effectiveTheme() {
    return chosenTheme() || (darkScheme && darkScheme.matches ? 'dark' : 'light');
  }

  function applyTheme() {
    const saved = chosenTheme();
    if (saved) document.documentElement.dataset.theme = saved;
    else delete document.documentElement.dataset.theme;   // follow prefers-color-scheme
    const current = effectiveTheme();
    document.documentElement.dataset.effectiveTheme = current;
    if (el.themeToggle) el.themeToggle.setAttribute('aria-label', current === 'dark' ? 'Switch to light theme' : 'Switch to dark theme');
  }

  if (el.themeToggle) {
    el.themeToggle.addEventListener('click', () => {
      store.set(KEY_THEME, effectiveTheme() === 'dark' ? 'light' : 'dark');
      applyTheme();
    });
  }
  if (darkScheme && darkScheme.addEventListener) darkScheme.addEventListener('change', applyTheme);

  // ---------------------------------------------------------------------------
  // Alert (error frames, fatal closes)
  // ---------------------------------------------------------------------------

  let alertRetry = null;
  let alertCode = '';
  function showAlert(text, retry, code) {
    alertCode = code || '';
    el.alertText.textContent = text;
    alertRetry = typeof retry === 'function' ? retry : null;
    el.alertRetry.hidden = !alertRetry;
    el.alert.hidden = false;
  }
  function hideAlert() {
    el.alert.hidden = true;
    alertRetry = null;
    alertCode = '';
  }
  el.alertClose.addEventListener('click', () => { hideAlert(); el.input.focus(); });
  el.alertRetry.addEventListener('click', () => {
    const fn = alertRetry;
    hideAlert();
    if (fn) fn();
    el.input.focus();
  });

  // ---------------------------------------------------------------------------
  // Turn indicators (typing / tool progress / stop button)
  // ---------------------------------------------------------------------------

  function ensureTurn(turnId) {
    if (!turnId) return null;
    let turn = state.turns.get(turnId);
    if (!turn) {
      turn = { id: turnId, replyTo: null, lastEl: null, streaming: new Set() };
      state.turns.set(turnId, turn);
    }
    state.running.add(turnId);
    return turn;
  }

  function updateIndicators() {
    const running = state.running.size > 0;
    let toolLabel = '';
    for (const t of state.tools.values()) toolLabel = t.label;   // the newest running tool
    let streaming = false;
    for (const id of state.running) {
      const turn = state.turns.get(id);
      if (turn && turn.streaming.size) streaming = true;
    }
    const showTyping = running && (!!toolLabel || !streaming);
    el.typing.hidden = !showTyping;
    if (showTyping) {
      const label = toolLabel || `${state.agent.name} is typing…`;
      if (el.typingLabel.textContent !== label) el.typingLabel.textContent = label;
      el.typing.dataset.tool = toolLabel ? 'true' : 'false';
      scrollToBottom();
    }
    el.stop.hidden = !running;
    root.dataset.running = running ? 'true' : 'false';
  }

  // ---------------------------------------------------------------------------
  // WebSocket connection
  // ---------------------------------------------------------------------------

  let ws = null;
  let generation = 0;         // bumps on every new socket; stale callbacks check it
  let attempt = 0;            // reconnect attempts since the last session.ready
  let reconnectTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;
  let ready = false;          // session.ready received on the current socket
  let fatal = false;          // closed with 4400/4401/4403: do not reconnect by ourselves
  let fatalText = '';         // the server's words (identity_invalid, forbidden) for the close that follows

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}${wsPath}`;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    fatal = false;
    fatalText = '';
    ready = false;
    const gen = ++generation;
    setStatus(attempt > 0 || state.records.size ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(wsUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws = socket;

    socket.addEventListener('open', () => {
      if (gen !== generation) return;
      lastFrameAt = Date.now();
      const start = { type: 'session.start', protocol: PROTOCOL, site };
      if (state.token) start.token = state.token;
      if (state.token && state.syncedId) start.since = state.syncedId;
      if (widget.user) start.user = widget.user;
      if (widget.context) start.context = widget.context;
      rawSend(start);
      startPing();
    });

    socket.addEventListener('message', (ev) => {
      if (gen !== generation) return;
      lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(ev.data); } catch (_) { return; }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      try {
        handleFrame(frame);
      } catch (err) {
        // A rendering bug must not kill the connection handler.
        if (window.console) console.error('superorch: failed to handle frame', frame.type, err);
      }
    });

    socket.addEventListener('close', (ev) => {
      if (gen !== generation) return;
      onClosed(ev.code, ev.reason);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  function onClosed(code, reason) {
    stopPing();
    ws = null;
    ready = false;
    // We do not know whether turns still run; live events will say so if they do.
    state.running.clear();
    state.tools.clear();
    for (const turn of state.turns.values()) turn.streaming.clear();
    updateIndicators();

    if (FATAL_CLOSES.has(code)) {
      fatal = true;
      setStatus('closed');
      showAlert(str(reason) || fatalText || CLOSE_REASONS[code]);
      return;
    }
    if (code === 4429) {
      showAlert(CLOSE_REASONS[4429]);
      attempt = Math.max(attempt, 5);   // start at the long end of the backoff
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (reconnectTimer || fatal) return;
    setStatus('reconnecting');
    // Exponential backoff with jitter: a random delay in [base/2, base], base 1s..30s.
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    attempt += 1;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
  }

  /** Reconnect now (network came back, tab visible again): skip the remaining wait. */
  function reconnectSoon() {
    if (fatal || (ws && ws.readyState <= WebSocket.OPEN)) return;
    if (reconnectTimer) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    connect();
  }
  window.addEventListener('online', reconnectSoon);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') reconnectSoon(); });

  function startPing() {
    stopPing();
    pingTimer = setInterval(() => {
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - lastFrameAt > DEAD_MS) {
        // No pong for two rounds: the socket is dead without knowing it.
        // Its close event may take long to come: drop it (generation bump) and go on now.
        try { ws.close(); } catch (_) { /* ignore */ }
        generation++;
        onClosed(1006, '');
        return;
      }
      rawSend({ type: 'ping' });
    }, PING_MS);
  }
  function stopPing() {
    clearInterval(pingTimer);
    pingTimer = null;
  }

  function rawSend(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Send a frame that needs an established session. */
  function sessionSend(frame) {
    return ready && rawSend(frame);
  }

  // ---------------------------------------------------------------------------
  // Frames from the server
  // ---------------------------------------------------------------------------

  function handleFrame(f) {
    switch (f.type) {
      case 'session.ready': return onSessionReady(f);
      case 'message.ack': return onAck(f);
      case 'turn.started': return onTurnStarted(f);
      case 'agent.changed': return onAgentChanged(f);
      case 'tool.started': return onToolStarted(f);
      case 'tool.finished': return onToolFinished(f);
      case 'workflow.progress': return onWorkflowProgress(f);
      case 'message.delta': return onDelta(f);
      case 'message.done': return onDone(f);
      case 'turn.done': return onTurnDone(f);
      case 'feedback.ack': return onFeedbackAck(f);
      case 'error': return onError(f);
      case 'pong': return undefined;
      default:
        // Frames added by later server versions: show any complete message object they carry.
        if (f.message && typeof f.message === 'object' && f.message.id && f.message.role) {
          const known = state.records.has(str(f.message.id));
          const rec = upsertMessage(f.message);
          if (rec && !known && rec.role === 'staff') notifyMessage(rec);
        }
        return undefined;
    }
  }

  function onSessionReady(f) {
    const isNewConversation = state.conversation && f.conversation && f.conversation !== state.conversation;
    if (isNewConversation) clearView(true);   // our token was not accepted: a fresh conversation
    state.conversation = str(f.conversation) || state.conversation;
    if (str(f.token)) {
      state.token = f.token;
      store.set(KEY_TOKEN, f.token);
    }
    setAgent(f.agent);
    if (str(f.greeting)) state.greeting = f.greeting;
    if (Array.isArray(f.suggestions)) state.suggestions = f.suggestions.filter((s) => typeof s === 'string' && s.trim());
    renderStartScreen();

    const firstLoad = state.records.size === 0;
    if (Array.isArray(f.messages)) for (const m of f.messages) upsertMessage(m);

    ready = true;
    attempt = 0;
    fatal = false;
    setStatus('online');
    if (!el.alert.hidden && !alertRetry) hideAlert();   // e.g. "we will reconnect shortly"
    refreshSynced();
    flushOutbox();
    updateIndicators();
    scrollToBottom(firstLoad);
    postToParent({ type: 'ready', conversation: state.conversation });
  }

  function onAck(f) {
    const clientId = str(f.id);
    if (f.message && typeof f.message === 'object') {
      // Make sure the client id is known even if the server omits it in the message.
      const msg = Object.assign({}, f.message);
      if (!msg.client_id && clientId) msg.client_id = clientId;
      upsertMessage(msg);
    } else if (clientId && state.pending.has(clientId)) {
      const rec = state.pending.get(clientId);
      rec.pending = false;
      state.pending.delete(clientId);
      updateRecordState(rec);
    }
    if (clientId) removeFromOutbox(clientId);
    refreshSynced();
    scrollToBottom();
  }

  function onTurnStarted(f) {
    const turn = ensureTurn(str(f.turn));
    if (turn) {
      turn.replyTo = str(f.reply_to) || null;
      const userRec = turn.replyTo && state.records.get(turn.replyTo);
      if (userRec) turn.lastEl = userRec.el;
    }
    updateIndicators();
  }

  function onAgentChanged(f) {
    ensureTurn(str(f.turn));
    if (f.from) rememberAgent(f.from);
    const to = f.to && typeof f.to === 'object' ? f.to : null;
    if (!to || !to.slug) { updateIndicators(); return; }
    const changed = to.slug !== state.agent.slug;
    setAgent(to);
    if (changed) {
      const name = agentName(to);
      const text = f.reason === 'fallback' ? `${name} has joined to help` : `${name} has joined`;
      const turn = state.turns.get(str(f.turn));
      // Placed with its turn, not after messages the person sent meanwhile.
      const node = addNotice(text, { testid: 'agent-notice', kind: 'agent', after: turn && turn.lastEl });
      node.dataset.reason = str(f.reason);
      node.dataset.agent = to.slug;
      if (turn) turn.lastEl = node;
    }
    updateIndicators();
  }

  function onToolStarted(f) {
    ensureTurn(str(f.turn));
    const call = str(f.call) || newId();
    state.tools.set(call, { turn: str(f.turn), tool: str(f.tool), label: str(f.label) || 'Working on it…' });
    updateIndicators();
  }

  /** A workflow's steps, shown on the running execute_workflow call ("2 of 3 steps done"). */
  function onWorkflowProgress(f) {
    const turnId = str(f.turn);
    const name = (f.workflow && str(f.workflow.name)) || 'Workflow';
    const done = Math.max(0, Number(f.done) || 0);
    const total = Math.max(done, Number(f.total) || 0);
    const label = f.status === 'retrying'
      ? `${name}: retrying a step (${done} of ${total} done)…`
      : `${name}: ${done} of ${total} steps done…`;
    for (const t of state.tools.values()) {
      if (t.turn === turnId && t.tool === 'execute_workflow') t.label = label;
    }
    updateIndicators();
  }

  function onToolFinished(f) {
    state.tools.delete(str(f.call));
    updateIndicators();
  }

  function onDelta(f) {
    const id = str(f.message);
    if (!id) return;
    const turnId = str(f.turn);
    const turn = ensureTurn(turnId);
    let rec = state.records.get(id);
    if (!rec) {
      const slug = str(f.agent) || state.agent.slug;
      rec = makeRecord({ id, role: 'assistant', agent: { slug, name: agentName(slug) }, text: '' }, { streaming: true, turn: turnId });
      state.records.set(id, rec);
      if (turn && turn.lastEl) insertAfter(turn.lastEl, rec.el);
      else insertIntoLog(rec.el);
    }
    if (!rec.streaming) return;   // already complete (e.g. filled in by session.ready)
    if (turn) { turn.streaming.add(id); turn.lastEl = rec.el; }
    rec.text += str(f.text);
    scheduleRender(rec);
    updateIndicators();
  }

  function onDone(f) {
    const turnId = str(f.turn);
    const turn = turnId ? state.turns.get(turnId) : null;
    const msg = f.message;
    if (!msg || typeof msg !== 'object') return;
    const existed = state.records.has(str(msg.id));
    const rec = upsertMessage(msg, turnId);
    if (!rec) return;
    if (!existed && turn && turn.lastEl && turn.lastEl !== rec.el) insertAfter(turn.lastEl, rec.el);
    if (turn) { turn.streaming.delete(rec.id); turn.lastEl = rec.el; }
    if (rec.role === 'assistant' || rec.role === 'staff') notifyMessage(rec);
    updateIndicators();
    scrollToBottom();
  }

  function onTurnDone(f) {
    const turnId = str(f.turn);
    const turn = state.turns.get(turnId);
    state.running.delete(turnId);
    for (const [call, t] of state.tools) if (t.turn === turnId) state.tools.delete(call);

    if (turn) {
      // A reply cut short (cancel, error) keeps the text it had.
      for (const id of turn.streaming) {
        const rec = state.records.get(id);
        if (rec && rec.streaming) {
          rec.streaming = false;
          renderText(rec);
          updateRecordState(rec);
        }
      }
      turn.streaming.clear();
    }

    // An answer arrived: "we could not reach the assistant" is no longer true.
    if (f.status === 'ok' && alertCode === 'model_unavailable') hideAlert();
    if (f.status === 'error' && state.queuedTurns.delete(turnId)) {
      // No model could answer: the server keeps the message and answers it later.
      addNotice('Saved: it will be answered as soon as the assistant is back.', { kind: 'queued', testid: 'queued', after: turn && turn.lastEl });
    } else if (f.status === 'error') addRetry(turn);
    else if (f.status === 'cancelled') addNotice('Stopped', { kind: 'stopped', testid: 'stopped', after: turn && turn.lastEl });

    state.turns.delete(turnId);
    refreshSynced();
    updateIndicators();
    scrollToBottom();
  }

  /** "The reply failed. [Retry]" after a failed exchange; retry sends the same text as a new message. */
  function addRetry(turn) {
    let userRec = turn && turn.replyTo ? state.records.get(turn.replyTo) : null;
    if (!userRec) {
      const users = [...state.records.values()].filter((r) => r.role === 'user');
      userRec = users[users.length - 1] || null;
    }
    const text = userRec ? userRec.text : '';
    const btn = h('button', { type: 'button', class: 'so-btn so-btn--small', 'data-testid': 'retry', 'aria-label': 'Retry: send your message again' }, [icon('retry'), h('span', { text: 'Retry' })]);
    const node = h('div', { class: 'so-notice so-notice--error', 'data-testid': 'turn-error' }, [
      h('span', { class: 'so-notice__text', text: 'The reply could not be completed.' }),
      text ? btn : null,
    ]);
    btn.addEventListener('click', () => {
      node.remove();
      send(text);
      el.input.focus();
    });
    insertAfter((turn && turn.lastEl) || (userRec && userRec.el), node);
  }

  function onFeedbackAck(f) {
    const id = str(f.message);
    const value = state.feedbackPending.get(id) || str(f.value);
    state.feedbackPending.delete(id);
    if (value !== 'up' && value !== 'down') return;
    state.feedback[id] = value;
    saveFeedback();
    applyFeedback(id, value);
  }

  function onError(f) {
    const code = str(f.code);
    const ref = str(f.ref);
    const text = str(f.message) || ERROR_FALLBACK[code] || 'Something went wrong. Please try again.';
    let retry = null;
    if (code === 'model_unavailable' && ref && state.turns.has(ref)) state.queuedTurns.add(ref);
    // A refused session (forged identity, site not allowed) closes next: keep these words for it.
    if (code === 'identity_invalid' || code === 'forbidden') fatalText = text;

    const pendingRec = ref && state.pending.get(ref);
    if (pendingRec) {
      // The send was refused (too large, rate limited…): nothing was stored.
      if (f.retryable) {
        retry = () => resendPending(ref);
      } else {
        pendingRec.failed = true;
        pendingRec.pending = false;
        state.pending.delete(ref);
        removeFromOutbox(ref);
        updateRecordState(pendingRec);
        // Put the text back so the person can edit it.
        if (!el.input.value) { el.input.value = pendingRec.text; onInput(); }
      }
    } else if (ref && state.feedbackPending.has(ref)) {
      state.feedbackPending.delete(ref);
      applyFeedback(ref, state.feedback[ref]);
    } else if (f.retryable && !(ref && state.turns.has(ref))) {
      // A turn error gets its own Retry next to the exchange (turn.done "error").
      retry = () => { if (state.outbox.length) flushOutbox(); else reconnectSoon(); };
    }
    showAlert(text, retry, code);
  }

  function refreshSynced() {
    // Only advance while nothing runs: a reply being written may already have an
    // id older than messages acked meanwhile, and `since` must not skip it.
    if (state.running.size) return;
    let last = null;
    for (const node of el.log.querySelectorAll(':scope > .so-msg')) {
      if (node.classList.contains('so-msg--pending') || node.classList.contains('so-msg--streaming')) break;
      if (node.dataset.id) last = node.dataset.id;
    }
    if (last) state.syncedId = last;
  }

  // ---------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------

  function removeFromOutbox(clientId) {
    const before = state.outbox.length;
    state.outbox = state.outbox.filter((m) => m.id !== clientId);
    if (state.outbox.length !== before) saveOutbox();
  }

  function flushOutbox() {
    if (!ready) return;
    for (const m of state.outbox) sessionSend({ type: 'message.send', id: m.id, text: m.text });
  }

  function resendPending(clientId) {
    const m = state.outbox.find((x) => x.id === clientId);
    if (m) sessionSend({ type: 'message.send', id: m.id, text: m.text });
  }

  function addPendingBubble(clientId, text) {
    const rec = makeRecord({ id: '', role: 'user', agent: null, text, client_id: clientId }, { pending: true });
    state.pending.set(clientId, rec);
    insertIntoLog(rec.el);
    return rec;
  }

  /** Send a user message; returns its client id, or null when there is nothing to send. */
  function send(text) {
    const clean = String(text == null ? '' : text).replace(/\s+$/, '').replace(/^\s*\n/, '');
    if (!clean.trim()) return null;
    const body = clean.slice(0, MAX_LEN);
    const id = newId();
    state.outbox.push({ id, text: body });
    saveOutbox();
    addPendingBubble(id, body);
    hideAlert();
    scrollToBottom(true);
    sessionSend({ type: 'message.send', id, text: body });
    return id;
  }

  function sendFeedback(rec, value) {
    if (!rec.id || (value !== 'up' && value !== 'down')) return;
    if (!sessionSend({ type: 'feedback', message: rec.id, value })) {
      showAlert('You are offline right now. Please try again when the chat reconnects.');
      return;
    }
    state.feedbackPending.set(rec.id, value);
    const btn = rec.actions && rec.actions.querySelector(`button[data-value="${value}"]`);
    if (btn) btn.classList.add('so-fb--busy');
  }

  // ---------------------------------------------------------------------------
  // Composer
  // ---------------------------------------------------------------------------

  function autoGrow() {
    // Setting style through the CSSOM is allowed under style-src 'self'.
    const ta = el.input;
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight, 200) + 'px';
  }

  function onInput() {
    const len = el.input.value.length;
    el.send.disabled = !el.input.value.trim();
    if (len >= COUNTER_FROM) {
      el.counter.hidden = false;
      el.counter.textContent = `${len.toLocaleString()} / ${MAX_LEN.toLocaleString()}`;
      el.counter.classList.toggle('so-counter--full', len >= MAX_LEN);
    } else if (!el.counter.hidden) {
      el.counter.hidden = true;
      el.counter.textContent = '';
    }
    autoGrow();
  }

  function submitComposer() {
    const text = el.input.value;
    if (!text.trim()) return;
    if (send(text)) {
      el.input.value = '';
      onInput();
    }
  }

  el.input.addEventListener('input', onInput);
  el.input.addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a newline; never send while an IME is composing.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitComposer();
    }
  });
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    submitComposer();
    el.input.focus();
  });
  el.stop.addEventListener('click', () => {
    sessionSend({ type: 'turn.cancel' });
    el.input.focus();
  });

  // ---------------------------------------------------------------------------
  // New conversation
  // ---------------------------------------------------------------------------

  /** Empty the message list. keepPending: keep user messages that wait for an ack. */
  function clearView(keepPending) {
    const pending = keepPending ? [...state.pending.values()] : [];
    el.log.replaceChildren(...pending.map((r) => r.el));
    state.records.clear();
    if (!keepPending) { state.pending.clear(); state.outbox = []; saveOutbox(); }
    state.turns.clear();
    state.running.clear();
    state.tools.clear();
    state.feedbackPending.clear();
    dirtyRecords.clear();
    state.syncedId = null;
    updateIndicators();
    updateStartScreen();
  }

  /** Drop the current socket (its late events are ignored) and forget what was running on it. */
  function dropSocket(reason) {
    generation++;
    if (ws) { try { ws.close(1000, reason); } catch (_) { /* ignore */ } }
    ws = null;
    ready = false;
    stopPing();
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
  }

  /** Forget the token, the outbox and the screen, and start over on a fresh socket. */
  function startOver() {
    dropSocket('new conversation');
    state.token = null;
    state.conversation = null;
    store.remove(KEY_TOKEN);
    clearView(false);
    setAgent(DEFAULT_AGENT);
    hideAlert();
    attempt = 0;
    el.input.value = '';
    onInput();
    connect();
  }

  if (el.newConv) {
    el.newConv.addEventListener('click', () => {
      startOver();
      el.input.focus();
    });
  }

  // ---------------------------------------------------------------------------
  // Widget mode: the frame on a site's pages, talking to widget.js by postMessage
  // ---------------------------------------------------------------------------
  //
  // To the parent: {source: "superorch", type, ...}
  //   loaded {config}            once, targetOrigin "*" (nothing secret in it)
  //   ready {conversation}       after each session.ready       } only to the parent's
  //   message {message}          each assistant / staff reply   } origin, once known;
  //   close                      close button or Escape         } never "*"
  // From the parent (event.source === window.parent, origin allowed by parent_origins):
  //   init {user?, context?} · identify {user} · context {context} · reset · open · close
  // The conversation token never leaves this window: it is in no message above.

  const widget = {
    user: null,          // {id, name, email, hash} from the host page, sent in session.start
    context: null,       // page context object, sent in session.start / context.update
    started: false,      // the first connect() happened
    open: false,
    parentOrigin: null,  // where ready/message/close may be posted
    guessed: false,      // parentOrigin came from ancestorOrigins/referrer, not from a message
    queue: [],           // posts waiting for parentOrigin
    notified: new Set(), // message ids already posted
  };

  function readParentOrigins() {
    const node = document.getElementById('so-parent-origins');
    if (!node) return [];
    try {
      const list = JSON.parse(node.textContent);
      return Array.isArray(list) ? list.filter((s) => typeof s === 'string' && s.trim()).map((s) => s.trim()) : [];
    } catch (_) {
      return [];
    }
  }
  const parentOrigins = WIDGET ? readParentOrigins() : [];

  /** A port as URL.port gives it: '' for the scheme's default. */
  function normalPort(protocol, port) {
    if ((protocol === 'http:' && port === '80') || (protocol === 'https:' && port === '443')) return '';
    return port || '';
  }

  /**
   * Does origin match pattern? Exact origin ("https://shop.example.com"), or a wildcard host
   * ("https://*.example.com"): any subdomain of example.com, same scheme and port. A bare "*"
   * never matches; neither does an opaque origin ("null").
   */
  function originMatches(origin, pattern) {
    if (!origin || origin === 'null' || !pattern || pattern === '*') return false;
    let o;
    try { o = new URL(origin); } catch (_) { return false; }
    if (o.origin !== origin) return false;   // event.origin is always serialised this way
    const wild = /^([a-z][a-z0-9+.-]*:)\/\/\*\.([a-z0-9.-]+)(?::(\d+))?\/?$/i.exec(pattern);
    if (!wild) {
      if (pattern.includes('*')) return false;
      try { return new URL(pattern).origin === origin; } catch (_) { return false; }
    }
    const protocol = wild[1].toLowerCase();
    const domain = wild[2].toLowerCase().replace(/\.$/, '');
    if (!domain || domain.startsWith('.') || domain.includes('..')) return false;
    if (o.protocol !== protocol) return false;
    if (normalPort(o.protocol, o.port) !== normalPort(protocol, wild[3] || '')) return false;
    const host = o.hostname.toLowerCase();
    return host.length > domain.length + 1 && host.endsWith('.' + domain);
  }

  /** The app's own origin is always allowed: a same-origin parent can reach this window anyway. */
  function parentAllowed(origin) {
    if (origin === location.origin) return true;
    return parentOrigins.some((p) => originMatches(origin, p));
  }

  /** The parent's origin before it wrote to us: ancestorOrigins (Chromium, Safari), else the referrer. */
  function guessParentOrigin() {
    const candidates = [];
    try { if (location.ancestorOrigins && location.ancestorOrigins.length) candidates.push(location.ancestorOrigins[0]); } catch (_) { /* ignore */ }
    try { if (document.referrer) candidates.push(new URL(document.referrer).origin); } catch (_) { /* ignore */ }
    return candidates.find(parentAllowed) || null;
  }

  const framed = (() => { try { return window.parent !== window; } catch (_) { return true; } })();

  function postToParent(msg) {
    if (!WIDGET || !framed) return;
    const data = Object.assign({ source: 'superorch' }, msg);
    if (!widget.parentOrigin) {
      widget.queue.push(data);
      if (widget.queue.length > 50) widget.queue.shift();
      return;
    }
    try { window.parent.postMessage(data, widget.parentOrigin); } catch (_) { /* parent gone */ }
  }

  /** The origin of the first accepted message wins over a guess from ancestorOrigins / the referrer. */
  function setParentOrigin(origin, guess) {
    if (widget.parentOrigin && (guess || !widget.guessed)) return;
    widget.parentOrigin = origin;
    widget.guessed = !!guess;
    const queued = widget.queue.splice(0);
    for (const data of queued) postToParent(data);
  }

  function notifyMessage(rec) {
    if (!WIDGET || !rec || !rec.id || widget.notified.has(rec.id)) return;
    widget.notified.add(rec.id);
    postToParent({
      type: 'message',
      message: { id: rec.id, role: rec.role, agent: rec.agent ? { slug: rec.agent.slug, name: rec.agent.name } : null, text: rec.text },
    });
  }

  function cleanUser(user) {
    if (!user || typeof user !== 'object' || Array.isArray(user)) return null;
    const out = {};
    for (const key of ['id', 'name', 'email', 'hash']) {
      if (typeof user[key] === 'string' && user[key]) out[key] = user[key].slice(0, 254);
      else if (typeof user[key] === 'number' && key === 'id') out.id = String(user.id);
    }
    return Object.keys(out).length ? out : null;
  }

  function cleanContext(context) {
    if (!context || typeof context !== 'object' || Array.isArray(context)) return null;
    try {
      const copy = JSON.parse(JSON.stringify(context));
      return copy && typeof copy === 'object' && !Array.isArray(copy) ? copy : null;
    } catch (_) {
      return null;
    }
  }

  function startWidgetSession() {
    if (widget.started) return;
    widget.started = true;
    clearTimeout(initTimer);
    connect();
  }

  /** Reconnect with the token and the current user (the person signed in or out on the host page). */
  function restartSession() {
    if (!widget.started) return;   // the first session.start will carry it
    dropSocket('identity changed');
    state.running.clear();
    state.tools.clear();
    for (const turn of state.turns.values()) turn.streaming.clear();
    updateIndicators();
    hideAlert();
    attempt = 0;
    connect();
  }

  function onParentMessage(event) {
    if (event.source !== window.parent || !framed) return;
    if (!parentAllowed(event.origin)) return;
    const data = event.data;
    if (!data || typeof data !== 'object' || data.source !== 'superorch' || typeof data.type !== 'string') return;
    setParentOrigin(event.origin);
    switch (data.type) {
      case 'init': {
        const user = cleanUser(data.user);
        const context = cleanContext(data.context);
        if (!widget.started) {
          widget.user = user;
          widget.context = context;
          startWidgetSession();
          return;
        }
        // Late (after the 3 s wait): treat it as identify + context.
        if (context) { widget.context = context; if (ready) sessionSend({ type: 'context.update', context }); }
        if (user && JSON.stringify(user) !== JSON.stringify(widget.user)) { widget.user = user; restartSession(); }
        return;
      }
      case 'identify': {
        const user = cleanUser(data.user);
        if (!user) return;
        widget.user = user;
        restartSession();
        return;
      }
      case 'context': {
        const context = cleanContext(data.context);
        if (!context) return;
        widget.context = context;
        if (ready) sessionSend({ type: 'context.update', context });   // else session.start carries it
        return;
      }
      case 'reset':
        widget.user = null;
        widget.context = null;
        widget.notified.clear();
        if (widget.started) startOver();
        else { state.token = null; store.remove(KEY_TOKEN); clearView(false); }
        return;
      case 'open':
        widget.open = true;
        root.dataset.open = 'true';
        onInput();              // the composer measured 0 while hidden
        scrollToBottom(true);
        el.input.focus({ preventScroll: true });
        return;
      case 'close':
        widget.open = false;
        root.dataset.open = 'false';
        return;
      default:
        return undefined;
    }
  }

  /** Accent colour through the CSSOM (allowed under style-src 'self'), with a readable text colour on it. */
  function applyAccent(accent) {
    if (!accent || !(window.CSS && CSS.supports && CSS.supports('color', accent))) return;
    const docStyle = document.documentElement.style;
    docStyle.setProperty('--so-accent', accent);
    const probe = document.createElement('span');
    probe.hidden = true;
    probe.style.color = accent;
    document.body.append(probe);
    const rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || []).slice(0, 3).map(Number);
    probe.remove();
    if (rgb.length === 3) {
      const lin = rgb.map((c) => { const v = c / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      const luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
      if (luminance > 0.45) docStyle.setProperty('--so-accent-contrast', '#111827');
    }
  }

  let initTimer = null;
  function setUpWidget() {
    const cfg = {
      accent: root.dataset.accent || '',
      position: root.dataset.position === 'left' ? 'left' : 'right',
      theme: ['light', 'dark', 'auto'].includes(root.dataset.theme) ? root.dataset.theme : 'auto',
      siteName: root.dataset.siteName || '',
    };
    applyAccent(cfg.accent);
    if (root.dataset.language) document.documentElement.lang = root.dataset.language;
    root.dataset.open = 'false';

    if (el.close) el.close.addEventListener('click', () => postToParent({ type: 'close' }));
    document.addEventListener('keydown', (e) => {
      // Focus is in this frame while it is open, so the host page never sees this Escape.
      if (e.key === 'Escape' && !e.isComposing && !e.defaultPrevented) postToParent({ type: 'close' });
    });

    if (!framed) { startWidgetSession(); return; }   // opened on its own: nobody will send init
    const guessed = guessParentOrigin();
    if (guessed) setParentOrigin(guessed, true);
    window.addEventListener('message', onParentMessage);
    try { window.parent.postMessage({ source: 'superorch', type: 'loaded', config: cfg }, '*'); } catch (_) { /* ignore */ }
    initTimer = setTimeout(startWidgetSession, 3000);
  }

  // ---------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------

  applyTheme();
  renderStartScreen();
  for (const m of state.outbox) addPendingBubble(m.id, m.text);   // unsent messages from before a reload
  onInput();
  updateIndicators();
  if (WIDGET) setUpWidget();
  else connect();

  // Test hook: the only global.
  Object.defineProperty(window, 'SuperOrchChat', {
    value: Object.freeze({
      send,
      get state() {
        return {
          status: state.status,
          ready,
          conversation: state.conversation,
          agent: Object.assign({}, state.agent),
          running: state.running.size > 0,
          outbox: state.outbox.map((m) => Object.assign({}, m)),
          messages: [...el.log.querySelectorAll(':scope > .so-msg')].map((n) => {
            const r = n.dataset.id ? state.records.get(n.dataset.id) : state.pending.get(n.dataset.clientId);
            return r ? { id: r.id, client_id: r.clientId, role: r.role, agent: r.agent && r.agent.slug, text: r.text, pending: r.pending, streaming: r.streaming } : null;
          }).filter(Boolean),
          since: state.syncedId,
          mode: WIDGET ? 'widget' : 'app',
          open: WIDGET ? widget.open : true,
        };
      },
    }),
    configurable: false,
    writable: false,
  });
})();
