/* localStorage, which can be unavailable or throw: falls back to memory for this page's life. */

const memory = new Map();

export const store = {
  get(key) {
    try { return window.localStorage.getItem(key); } catch (_) { return memory.has(key) ? memory.get(key) : null; }
  },
  set(key, value) {
    try { window.localStorage.setItem(key, value); } catch (_) { memory.set(key, value); }
  },
  remove(key) {
    try { window.localStorage.removeItem(key); } catch (_) { /* ignore */ }
    memory.delete(key);
  },
  getJSON(key, fallback) {
    try { const v = JSON.parse(this.get(key)); return v == null ? fallback : v; } catch (_) { return fallback; }
  },
  setJSON(key, value) { this.set(key, JSON.stringify(value)); },
};

/** The keys of one site's chat (the theme is the app's, for every site). */
export function storageKeys(site) {
  return {
    token: 'superorch:token:' + site,
    outbox: 'superorch:outbox:' + site,
    feedback: 'superorch:feedback:' + site,
    theme: 'superorch:theme',
  };
}

/** Write what changed between two states: the token, the outbox, the feedback choices. */
export function persist(keys, prev, next) {
  if (prev.token !== next.token) {
    if (next.token) store.set(keys.token, next.token); else store.remove(keys.token);
  }
  if (prev.outbox !== next.outbox && JSON.stringify(prev.outbox) !== JSON.stringify(next.outbox)) {
    if (next.outbox.length) store.setJSON(keys.outbox, next.outbox); else store.remove(keys.outbox);
  }
  if (prev.feedback !== next.feedback && JSON.stringify(prev.feedback) !== JSON.stringify(next.feedback)) {
    store.setJSON(keys.feedback, next.feedback);
  }
}
