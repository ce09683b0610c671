/*
 * Super Orchestrator – embeddable chat widget loader.
 *
 *   <script src="https://APP/static/superorch/widget.js" data-site="KEY" async></script>
 *
 * Optional data-locale="de": the chat's language (else the site's setting, else the
 * visitor's browser: navigator.language, then Accept-Language). The loader's own words
 * (launcher label, frame title, unread count) come from the frame, in its language.
 *
 * Adds one element (#superorch-widget) with a closed shadow root: a launcher button
 * and the chat frame (APP/widget/KEY/, kept alive while hidden). Touches no page
 * styles. Talks to the frame by postMessage, only with APP's origin.
 * Page API: window.SuperOrch.{open, close, toggle, identify, setContext, reset, isOpen, unread}.
 * Events on window: superorch:ready {conversation}, superorch:message {id, role, agent, text}.
 */
(function () {
  'use strict';

  if (window.SuperOrch && window.SuperOrch.__superorch) return;   // included twice

  const script = document.currentScript ||
    document.querySelector('script[src*="/static/superorch/widget.js"][data-site]');
  if (!script || !script.dataset.site) return;
  const APP = new URL(script.src, location.href).origin;
  const KEY = script.dataset.site;
  // A language tag: letters, digits and hyphens (the server checks it again).
  const tag = (v) => (typeof v === 'string' && /^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/.test(v) && v.length <= 35 ? v : '');
  const LOCALE = tag(script.dataset.locale);
  const BROWSER = tag(navigator.language);
  let words = { open: '', title: '', unread: '' };   // the frame's, once loaded

  const STYLE = `
:host{all:initial}
.w{--a:#4f46e5;--c:#fff;font:14px/1.4 system-ui,sans-serif}
.l{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border:0;border-radius:50%;
padding:0;display:grid;place-items:center;background:var(--a);color:var(--c);cursor:pointer;
box-shadow:0 4px 14px rgb(0 0 0/.25);transition:transform .15s}
.l:hover{transform:scale(1.06)}.l:focus-visible{outline:3px solid var(--a);outline-offset:3px}
.l svg{width:26px;height:26px}.l .x,.open .l .o{display:none}.open .l .x{display:block}
.b{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;padding:0 5px;box-sizing:border-box;
border-radius:10px;background:#dc2626;color:#fff;font:600 12px/20px system-ui,sans-serif;text-align:center}
.p{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:min(380px,calc(100vw - 40px));
height:min(600px,calc(100dvh - 108px));border-radius:16px;overflow:hidden;background:#fff;
box-shadow:0 12px 48px rgb(0 0 0/.28);visibility:hidden;opacity:0;transform:translateY(12px);
transition:opacity .18s,transform .18s,visibility 0s .18s}
.open .p{visibility:visible;opacity:1;transform:none;transition:opacity .18s,transform .18s}
.left .l,.left .p{right:auto;left:20px}.dark .p{background:#0f1115}
@media (prefers-color-scheme:dark){.auto .p{background:#0f1115}}
iframe{display:block;width:100%;height:100%;border:0;color-scheme:normal}
[hidden]{display:none!important}
.s{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:639px){.p,.left .p{inset:0;width:100%;height:100vh;height:100dvh;border-radius:0}.open .l{display:none}}
@media (prefers-reduced-motion:reduce){.l,.p,.open .p{transition:none}}`;

  // Built with DOM calls, not innerHTML: host pages may enforce Trusted Types.
  function make(tag, attrs, ns) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    return node;
  }
  function svg(d, cls) {
    const ns = 'http://www.w3.org/2000/svg';
    const node = make('svg', { class: cls, viewBox: '0 0 24 24', fill: 'none', stroke: 'currentColor', 'stroke-width': '2',
      'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false' }, ns);
    node.append(make('path', { d }, ns));
    return node;
  }

  let host, shadow, wrap, launcher, badge, unreadText, panel, iframe;
  let loaded = false;       // the frame said `loaded`: it is ours and framing was allowed
  let isOpen = false;
  let wantOpen = false;     // open() before the frame loaded
  let unread = 0;
  let user = null;
  let context = null;

  function build() {
    host = document.createElement('div');
    host.id = 'superorch-widget';
    host.style.setProperty('all', 'initial', 'important');   // our element only: page rules like div{...} miss it
    shadow = host.attachShadow({ mode: 'closed' });
    let sheetDone = false;
    try {
      // Constructable stylesheets are not subject to the host page's style-src.
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      shadow.adoptedStyleSheets = [sheet];
      sheetDone = true;
    } catch (_) { /* older browsers: a <style> in the shadow root */ }
    if (!sheetDone) {
      const style = document.createElement('style');
      style.textContent = STYLE;
      shadow.append(style);
    }
    wrap = document.createElement('div');
    wrap.className = 'w';
    launcher = make('button', { type: 'button', class: 'l', part: 'launcher',
      'aria-expanded': 'false', 'aria-describedby': 'so-unread' });
    launcher.hidden = true;   // until the frame says `loaded`
    badge = make('span', { part: 'badge', class: 'b', 'aria-hidden': 'true' });
    unreadText = make('span', { id: 'so-unread', class: 's' });
    launcher.append(svg('M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z', 'o'), svg('M6 9l6 6 6-6', 'x'), badge);
    launcher.addEventListener('click', toggle);
    panel = make('div', { class: 'p', part: 'panel' });
    iframe = make('iframe', { allow: 'clipboard-write' });
    const query = new URLSearchParams();
    if (LOCALE) query.set('locale', LOCALE);
    if (BROWSER) query.set('browser', BROWSER);
    iframe.src = APP + '/widget/' + encodeURIComponent(KEY) + '/' + (query.toString() ? '?' + query : '');
    panel.append(iframe);
    wrap.append(panel, launcher, unreadText);
    shadow.append(wrap);
    document.body.append(host);
  }

  function post(msg) {
    // Only once the frame runs our page: anything else (about:blank, an error page) has another origin.
    if (!loaded || !iframe.contentWindow) return;
    try { iframe.contentWindow.postMessage(Object.assign({ source: 'superorch' }, msg), APP); } catch (_) { /* not cloneable */ }
  }

  function setUnread(n) {
    unread = n;
    if (!badge) return;
    badge.hidden = n === 0;
    badge.textContent = n > 99 ? '99+' : String(n);
    unreadText.textContent = n && words.unread ? words.unread.replace('{count}', String(n)) : '';
  }

  function open() {
    wantOpen = true;
    if (!loaded || isOpen) return;
    isOpen = true;
    wrap.classList.add('open');
    launcher.setAttribute('aria-expanded', 'true');
    setUnread(0);
    iframe.focus();
    post({ type: 'open' });
  }

  function close() {
    wantOpen = false;
    if (!isOpen) return;
    const hadFocus = document.activeElement === host;
    isOpen = false;
    wrap.classList.remove('open');
    launcher.setAttribute('aria-expanded', 'false');
    post({ type: 'close' });
    if (hadFocus) launcher.focus();
  }

  function toggle() { if (isOpen) close(); else open(); }

  function plain(obj) {
    return obj && typeof obj === 'object' && !Array.isArray(obj) ? obj : null;
  }

  function onMessage(event) {
    if (event.origin !== APP || !iframe || event.source !== iframe.contentWindow) return;
    const data = event.data;
    if (!data || data.source !== 'superorch' || typeof data.type !== 'string') return;
    switch (data.type) {
      case 'loaded': {
        loaded = true;
        const cfg = plain(data.config) || {};
        if (typeof cfg.accent === 'string' && window.CSS && window.CSS.supports('color', cfg.accent)) {
          wrap.style.setProperty('--a', cfg.accent);
          const hex = /^#([0-9a-f]{6})$/i.exec(cfg.accent);
          const n = hex ? parseInt(hex[1], 16) : 0;
          if (hex && 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255) > 170) wrap.style.setProperty('--c', '#111827');
        }
        wrap.classList.toggle('left', cfg.position === 'left');
        wrap.classList.toggle('dark', cfg.theme === 'dark');
        wrap.classList.toggle('auto', cfg.theme === 'auto');
        const given = plain(cfg.strings) || {};
        for (const k of Object.keys(words)) if (typeof given[k] === 'string') words[k] = given[k].slice(0, 200);
        if (words.open) launcher.setAttribute('aria-label', words.open);
        if (words.title) iframe.title = words.title;
        if (typeof cfg.lang === 'string' && tag(cfg.lang)) { launcher.lang = cfg.lang; iframe.lang = cfg.lang; }
        setUnread(unread);
        const init = { type: 'init' };
        if (user) init.user = user;
        if (context) init.context = context;
        post(init);
        launcher.hidden = false;
        if (isOpen) post({ type: 'open' });   // the frame reloaded while open
        else if (wantOpen) open();
        break;
      }
      case 'ready':
        window.dispatchEvent(new CustomEvent('superorch:ready', { detail: { conversation: data.conversation } }));
        break;
      case 'message': {
        const m = plain(data.message);
        if (!m) return;
        if (!isOpen) setUnread(unread + 1);
        window.dispatchEvent(new CustomEvent('superorch:message', { detail: m }));
        break;
      }
      case 'close':
        close();
        break;
      default:
    }
  }

  const api = {
    open,
    close,
    toggle,
    identify(u) {
      if (!plain(u)) return;
      user = { id: u.id, name: u.name, email: u.email, hash: u.hash };
      post({ type: 'identify', user });
    },
    setContext(obj) {
      if (!plain(obj)) return;
      try { context = JSON.parse(JSON.stringify(obj)); } catch (_) { return; }
      post({ type: 'context', context });
    },
    reset() {
      user = null;
      context = null;
      setUnread(0);
      post({ type: 'reset' });
    },
    isOpen: () => isOpen,
    unread: () => unread,
  };
  Object.defineProperty(api, '__superorch', { value: true });
  window.SuperOrch = api;

  window.addEventListener('message', onMessage);
  window.addEventListener('keydown', (e) => { if (e.key === 'Escape' && isOpen) close(); });

  function start() {
    build();
    setUnread(0);
  }
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();
