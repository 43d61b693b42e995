// Pieces the views share: status badges, commits, loading and error lines.
import { html } from 'htm/preact';
import { APP_STATUS, tone, word } from '../format.js';

export function AppBadge({ status, testid }) {
    return html`<span class="badge ${tone(status)}" data-status=${status} data-testid=${testid}>${APP_STATUS[status] || word(status)}</span>`;
}

export function Loading() {
    return html`<p class="muted">Loading…</p>`;
}

export function ErrorLine({ text }) {
    return text ? html`<p role="alert" class="error">${text}</p>` : null;
}

export function Commit({ sha }) {
    return sha ? html`<code title=${sha}>${sha.slice(0, 7)}</code>` : html`<span class="muted">none</span>`;
}
