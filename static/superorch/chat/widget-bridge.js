/*
 * Widget mode: the frame on a site's pages, talking to static/superorch/widget.js by postMessage.
 *
 * To the parent: {source: "superorch", type, ...}
 *   loaded {config}            once, targetOrigin "*" (nothing secret in it)
 *   ready {conversation}       after each session.ready       } only to the parent's
 *   message {message}          each assistant / staff reply   } origin, once known;
 *   close                      close button or Escape         } never "*"
 * From the parent (event.source === window.parent, origin allowed by so-parent-origins):
 *   init {user?, context?} · identify {user} · context {context} · reset · open · close
 * The conversation token never leaves this window: it is in no message above.
 */

import { t } from './i18n.js';
import { cleanOrigins, parentAllowed } from './origins.js';

const INIT_WAIT_MS = 3000;          // connect anyway when the host page sends no init
const QUEUE_MAX = 50;

export function cleanUser(user) {
  if (!user || typeof user !== 'object' || Array.isArray(user)) return null;
  const out = {};
  for (const key of ['id', 'name', 'email', 'hash']) {
    if (typeof user[key] === 'string' && user[key]) out[key] = user[key].slice(0, 254);
    else if (typeof user[key] === 'number' && key === 'id') out.id = String(user.id);
  }
  return Object.keys(out).length ? out : null;
}

export function cleanContext(context) {
  if (!context || typeof context !== 'object' || Array.isArray(context)) return null;
  try {
    const copy = JSON.parse(JSON.stringify(context));
    return copy && typeof copy === 'object' && !Array.isArray(copy) ? copy : null;
  } catch (_) {
    return null;
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

/** On the app page there is no parent to talk to. */
export function noBridge() {
  return { widget: false, user: null, context: null, open: true, post() {}, notify() {} };
}

/**
 * root: #superorch; closeButton: the header's close button.
 * actions: connect() the first session, ready() is the session up, sendContext(context),
 *   restartSession() with the new user, reset() (new conversation; started: whether a
 *   session ran), opened() (the panel became visible).
 */
export function createWidgetBridge(root, closeButton, parentOriginList, actions) {
  const parentOrigins = cleanOrigins(parentOriginList);
  const framed = (() => { try { return window.parent !== window; } catch (_) { return true; } })();
  const allowed = (origin) => parentAllowed(origin, location.origin, parentOrigins);
  let initTimer = null;

  const bridge = {
    widget: true,
    user: null,          // {id, name, email, hash} from the host page, sent in session.start
    context: null,       // page context object, sent in session.start / context.update
    started: false,      // the first connect() happened
    open: false,
    parentOrigin: null,  // where ready/message/close may be posted
    guessed: false,      // parentOrigin came from ancestorOrigins/referrer, not from a message
    queue: [],           // posts waiting for parentOrigin
    notified: new Set(), // message ids already posted
    post,
    notify,
    start,
  };

  function post(msg) {
    if (!framed) return;
    const data = Object.assign({ source: 'superorch' }, msg);
    if (!bridge.parentOrigin) {
      bridge.queue.push(data);
      if (bridge.queue.length > QUEUE_MAX) bridge.queue.shift();
      return;
    }
    try { window.parent.postMessage(data, bridge.parentOrigin); } catch (_) { /* parent gone */ }
  }

  /** The origin of the first accepted message wins over a guess from ancestorOrigins / the referrer. */
  function setParentOrigin(origin, guess) {
    if (bridge.parentOrigin && (guess || !bridge.guessed)) return;
    bridge.parentOrigin = origin;
    bridge.guessed = !!guess;
    for (const data of bridge.queue.splice(0)) post(data);
  }

  /** The parent's origin before it wrote to us: ancestorOrigins (Chromium, Safari), else the referrer. */
  function guessParentOrigin() {
    const candidates = [];
    try { if (location.ancestorOrigins && location.ancestorOrigins.length) candidates.push(location.ancestorOrigins[0]); } catch (_) { /* ignore */ }
    try { if (document.referrer) candidates.push(new URL(document.referrer).origin); } catch (_) { /* ignore */ }
    return candidates.find(allowed) || null;
  }

  /** A finished reply ({id, role, agent, text}), posted once per message id. */
  function notify(message) {
    if (!message || !message.id || bridge.notified.has(message.id)) return;
    bridge.notified.add(message.id);
    post({ type: 'message', message });
  }

  function startSession() {
    if (bridge.started) return;
    bridge.started = true;
    clearTimeout(initTimer);
    actions.connect();
  }

  function restartSession() {
    if (!bridge.started) return;   // the first session.start will carry it
    actions.restartSession();
  }

  function setContext(context) {
    bridge.context = context;
    if (actions.ready()) actions.sendContext(context);   // else session.start carries it
  }

  function onParentMessage(event) {
    if (event.source !== window.parent || !framed) return;
    if (!allowed(event.origin)) return;
    const data = event.data;
    if (!data || typeof data !== 'object' || data.source !== 'superorch' || typeof data.type !== 'string') return;
    setParentOrigin(event.origin);
    switch (data.type) {
      case 'init': {
        const user = cleanUser(data.user);
        const context = cleanContext(data.context);
        if (!bridge.started) {
          bridge.user = user;
          bridge.context = context;
          startSession();
          return;
        }
        // Late (after the wait): treat it as identify + context.
        if (context) setContext(context);
        if (user && JSON.stringify(user) !== JSON.stringify(bridge.user)) { bridge.user = user; restartSession(); }
        return;
      }
      case 'identify': {
        const user = cleanUser(data.user);
        if (!user) return;
        bridge.user = user;
        restartSession();
        return;
      }
      case 'context': {
        const context = cleanContext(data.context);
        if (context) setContext(context);
        return;
      }
      case 'reset':
        bridge.user = null;
        bridge.context = null;
        bridge.notified.clear();
        actions.reset(bridge.started);
        return;
      case 'open':
        bridge.open = true;
        root.dataset.open = 'true';
        actions.opened();
        return;
      case 'close':
        bridge.open = false;
        root.dataset.open = 'false';
        return;
      default:
        return;
    }
  }

  /** Apply the site's look, listen to the parent, say `loaded`, and connect on init (or after the wait). */
  function start() {
    const cfg = {
      accent: root.dataset.accent || '',
      position: root.dataset.position === 'left' ? 'left' : 'right',
      theme: ['light', 'dark', 'auto'].includes(root.dataset.theme) ? root.dataset.theme : 'auto',
      siteName: root.dataset.siteName || '',
      // The loader's own words (launcher, frame title, unread count), in the frame's language.
      lang: document.documentElement.lang || '',
      dir: document.documentElement.dir === 'rtl' ? 'rtl' : 'ltr',
      strings: { open: t('open_chat'), title: t('chat_title'), unread: t('unread') },
    };
    applyAccent(cfg.accent);
    root.dataset.open = 'false';

    if (closeButton) closeButton.addEventListener('click', () => post({ type: 'close' }));
    document.addEventListener('keydown', (e) => {
      // Focus is in this frame while it is open, so the host page never sees this Escape.
      if (e.key === 'Escape' && !e.isComposing && !e.defaultPrevented) post({ type: 'close' });
    });

    if (!framed) { startSession(); return; }   // opened on its own: nobody will send init
    const guessed = guessParentOrigin();
    if (guessed) setParentOrigin(guessed, true);
    window.addEventListener('message', onParentMessage);
    try { window.parent.postMessage({ source: 'superorch', type: 'loaded', config: cfg }, '*'); } catch (_) { /* ignore */ }
    initTimer = setTimeout(startSession, INIT_WAIT_MS);
  }

  return bridge;
}
