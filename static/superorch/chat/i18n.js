/*
 * The page's words in its language. The server puts them in the page (json_script
 * "so-strings", from chat/i18n.py PAGE_STRINGS, translated by Django's gettext); the
 * scripts ask for them by key: t('retry'), t('typing', {name}). A key the page lacks
 * shows as itself (tests/chat/test_i18n.py checks every key used here exists).
 */

let strings = {};

/** Use `catalog` ({key: text}); anything not a string is ignored. */
export function setStrings(catalog) {
  strings = {};
  if (!catalog || typeof catalog !== 'object') return;
  for (const [key, text] of Object.entries(catalog)) if (typeof text === 'string') strings[key] = text;
}

/** The text for `key`, with {name} placeholders filled from `params`. */
export function t(key, params) {
  const text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole));
}

/** The page's language (<html lang>), for numbers and dates. */
export function pageLocale() {
  return (typeof document !== 'undefined' && document.documentElement.lang) || undefined;
}
