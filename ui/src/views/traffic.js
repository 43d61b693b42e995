// The traffic split as the platform reports it now.
import { html } from 'htm/preact';

export function trafficText(t) {
    const parts = [];
    for (const k of ['primary', 'canary', 'baseline']) {
        if (t && typeof t[k] === 'number' && t[k] > 0) {
            parts.push(`${k} ${t[k]}%`);
        }
    }
    return parts.length ? parts.join(' · ') : 'no traffic';
}

export function Traffic({ app }) {
    if (!app || !('traffic' in app)) {
        return html`<span data-testid="traffic" class="muted">not reported by this kanaria</span>`;
    }
    if (!app.traffic) {
        return html`<span data-testid="traffic" class="muted">unknown${app.traffic_error ? `: ${app.traffic_error}` : ''}</span>`;
    }
    return html`<span data-testid="traffic">${trafficText(app.traffic)}</span>`;
}
