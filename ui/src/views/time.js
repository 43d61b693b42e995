// <time> elements: the absolute time in datetime and title; "x ago" ticks with `now`.
import { html } from 'htm/preact';
import { absolute, agoText, clock } from '../format.js';
import { now } from '../store.js';

export function Ago({ t }) {
    if (!t) {
        return html`<span class="muted">never</span>`;
    }
    return html`<time datetime=${new Date(t).toISOString()} title=${absolute(t)}>${agoText(t, now.value)}</time>`;
}

export function Clock({ t }) {
    return html`<time datetime=${new Date(t).toISOString()} title=${absolute(t)}>${clock(t)}</time>`;
}

