/* Light / dark: chosen by the person (app page, remembered) or by the site (widget), else the system's. */

import { t } from './i18n.js';
import { store } from './storage.js';

const darkScheme = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;

/**
 * widgetTheme: the site's setting in the widget ('light' | 'dark' | 'auto'), or null on the app page.
 * toggle: the app page's theme button, if any.
 */
export function setUpTheme({ widgetTheme, storageKey, toggle }) {
  const chosen = () => {
    const saved = widgetTheme != null ? widgetTheme : store.get(storageKey);
    return saved === 'light' || saved === 'dark' ? saved : null;
  };
  const effective = () => chosen() || (darkScheme && darkScheme.matches ? 'dark' : 'light');

  function apply() {
    const saved = chosen();
    const html = document.documentElement;
    if (saved) html.dataset.theme = saved;
    else delete html.dataset.theme;   // follow prefers-color-scheme
    const current = effective();
    html.dataset.effectiveTheme = current;
    if (toggle) toggle.setAttribute('aria-label', t(current === 'dark' ? 'theme_to_light' : 'theme_to_dark'));
  }

  if (toggle) {
    toggle.addEventListener('click', () => {
      store.set(storageKey, effective() === 'dark' ? 'light' : 'dark');
      apply();
    });
  }
  if (darkScheme && darkScheme.addEventListener) darkScheme.addEventListener('change', apply);
  apply();
}
