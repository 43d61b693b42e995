// The traffic split as the platform reports it now.
import { html } from 'htm/preact';
import { trafficText } from '../model.js';

export function Traffic({ app }) {
    if (!app || !('traffic' in app)) {
        return html`<span data-testid="traffic" class="muted">not reported by this kanaria</span>`;
    }
    if (!app.traffic) {
        return html`<span data-testid="traffic" class="muted">unknown${app.traffic_error ? `: ${app.traffic_error}` : ''}</span>`;
    }
    return html`<span data-testid="traffic">${trafficText(app.traffic)}</span>`;
}
