// Pieces the views share: status badges, an app's status word, loading and error lines.
import { html } from 'htm/preact';
import { APP_STATUS, FINAL, tone, word } from '../format.js';

// The server's status word, or the same rules applied here when it does not send one.
export function appStatus(a) {
    if (a.status) {
        return a.status;
    }
    if ((a.current && a.current.status) || (a.latest && !FINAL.has(a.latest.status))) {
        return 'DEPLOYING';
    }
    if (a.error) {
        return 'INVALID';
    }
    if (a.orphaned) {
        return 'ORPHANED';
    }
    if (a.drift) {
        return 'OUT_OF_SYNC';
    }
    if (a.rolled_back_from) {
        return 'ROLLED_BACK';
    }
    if (a.last_good) {
        return 'SYNCED';
    }
    return 'NEW';
}

export function AppBadge({ status, testid }) {
    return html`<span class="badge ${tone(status)}" data-status=${status} data-testid=${testid}>${APP_STATUS[status] || word(status)}</span>`;
}

export function Badge({ status, label }) {
    return html`<span class="badge ${tone(status)}">${label || word(status)}</span>`;
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
