/*
 * Which origins may talk to the widget's frame: the site's allowed origins (so-parent-origins,
 * the same list chat/origins.py turns into frame-ancestors). Pure: no DOM, runs in Node.
 */

/** A port as URL.port gives it: '' for the scheme's default. */
export function normalPort(protocol, port) {
  if ((protocol === 'http:' && port === '80') || (protocol === 'https:' && port === '443')) return '';
  return port || '';
}

/**
 * Does origin match pattern? Exact origin ("https://shop.example.com"), or a wildcard host
 * ("https://*.example.com"): any subdomain of example.com, same scheme and port. A bare "*"
 * never matches; neither does an opaque origin ("null").
 */
export function originMatches(origin, pattern) {
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

/** The app's own origin is always allowed: a same-origin parent can reach the frame anyway. */
export function parentAllowed(origin, ownOrigin, patterns) {
  if (origin && origin === ownOrigin) return true;
  return patterns.some((p) => originMatches(origin, p));
}

/** The list from so-parent-origins: trimmed non-blank strings. */
export function cleanOrigins(list) {
  return Array.isArray(list) ? list.filter((s) => typeof s === 'string' && s.trim()).map((s) => s.trim()) : [];
}
