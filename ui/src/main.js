// kanaria's web UI: the entry point esbuild bundles into /app.js. The header (stream status,
// who is signed in), the banner while kanaria cannot be reached, the hash router and the views.
import { render } from 'preact';
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { token } from './api.js';
import { route } from './router.js';
import { auth, bootstrap, fatal, now, offline, retryNow, session, setStreamHooks, show, showLogin, signOut, streamStatus } from './store.js';
import { startStream, stopStream, wakeStream } from './stream.js';
import { App } from './views/app.js';
import { Apps } from './views/apps.js';
import { Deployment } from './views/deployment.js';
import { Login } from './views/login.js';
import { Clock } from './views/time.js';

setStreamHooks({ start: startStream, stop: stopStream, wake: wakeStream });

function Who() {
    const s = session.value;
    if (auth.value !== 'ok' || !s) {
        return null;
    }
    const signedIn = !!token();
    return html`
        <span class="who" data-testid="whoami">${s.user ? `${s.user} (${s.role})` : 'Read-only'}</span>
        ${signedIn ? html`<button type="button" onClick=${signOut}>Sign out</button>`
            : html`<button type="button" onClick=${showLogin}>Sign in</button>`}`;
}

function Header() {
    const st = streamStatus.value;
    const cls = st === 'Live' ? 'good' : st === 'Signed out' ? 'bad' : st === 'Paused' ? 'none' : 'busy';
    return html`
        <header class="top">
            <nav aria-label="Main"><a class="brand" href="#/apps">kanaria</a></nav>
            <div class="session">
                <span role="status" data-testid="stream-status" class="stream ${cls}">${st}</span>
                <${Who} />
            </div>
        </header>`;
}

// While kanaria cannot be reached: why, since when, that the page is what was read before, and
// when the stream tries again. Only the first line is the alert: the countdown is not announced.
function Offline() {
    const o = offline.value;
    if (!o || auth.value !== 'ok') {
        return null;
    }
    const left = Math.ceil((o.retryAt - now.value) / 1000);
    return html`
        <div class="offline" data-testid="offline">
            <p role="alert">${o.reason}. What this page shows was read before <${Clock} t=${o.since} /> and may be out of date; it updates by itself when kanaria answers again.</p>
            <p class="small">${left > 0 ? `Next try in ${left} s.` : 'Trying again…'}
                ${' '}<button type="button" onClick=${retryNow}>Retry now</button></p>
        </div>`;
}

function NotFound({ path }) {
    useEffect(() => {
        document.title = 'Not found · kanaria';
    }, []);
    return html`<h1>Not found</h1><p>Nothing is at <code>#${path}</code>. <a href="#/apps">See the applications</a>.</p>`;
}

function View() {
    const r = route.value;
    if (auth.value === 'login') {
        return html`<${Login} />`;
    }
    if (auth.value === 'boot') {
        return html`<h1>kanaria</h1><p class="muted">Loading…</p>`;
    }
    switch (r.name) {
    case 'apps':
        return html`<${Apps} />`;
    case 'app':
        return html`<${App} key=${`${r.repo}/${r.app}`} repo=${r.repo} name=${r.app} />`;
    case 'deployment':
        return html`<${Deployment} key=${r.id} id=${r.id} />`;
    default:
        return html`<${NotFound} path=${r.path} />`;
    }
}

function Root() {
    /* load what the route shows whenever it or the session changes */
    const r = route.value;
    const a = auth.value;
    useEffect(() => {
        show(r);
    }, [r, a]);
    return html`
        <${Header} />
        <main id="main">
            <${Offline} />
            ${fatal.value ? html`<p role="alert" class="error">${fatal.value}</p>` : null}
            <${View} />
        </main>`;
}

render(html`<${Root} />`, document.getElementById('root'));
bootstrap();
