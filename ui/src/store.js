// The page's state as signals: the session, the stream's status, the data each view shows, and
// the refetches that events trigger (coalesced).
import { signal } from '@preact/signals';
import { api, ApiError, appPath, setReachHandler, setToken, setUnauthorizedHandler, token } from './api.js';

export const now = signal(Date.now());
setInterval(() => {
    now.value = Date.now();
}, 1000);

const darkQuery = window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null;
export const scheme = signal(darkQuery && darkQuery.matches ? 'dark' : 'light');
if (darkQuery) {
    darkQuery.addEventListener('change', e => {
        scheme.value = e.matches ? 'dark' : 'light';
    });
}

// 'boot' until the session is known, then 'ok', or 'login' when the API wants a token.
export const auth = signal('boot');
export const loginError = signal('');
export const session = signal(null);
export const streamStatus = signal('Connecting…');
export const fatal = signal('');
// While kanaria cannot be reached: { since, reason, retryAt } (retryAt: when the event stream
// tries again, 0 when it is not waiting); null once kanaria answers a call or the stream.
export const offline = signal(null);

const RANK = { viewer: 0, approver: 1, operator: 2, admin: 3 };

export function roleAtLeast(role) {
    const s = session.value;
    return !!s && (RANK[s.role] ?? -1) >= RANK[role];
}

// Each view's data: { data, error } keyed by what it shows.
export const apps = signal({ data: null, error: '' });
export const app = signal({ key: '', data: null, error: '' });
export const deployment = signal({ key: 0, data: null, error: '', app: null });

let streamHooks = { start() {}, stop() {}, wake: () => false };
export function setStreamHooks(h) {
    streamHooks = h;
}

let lastRefusal = '';

// Without a token: try to read anonymously; the API's refusal shows on the login view.
export async function continueReadOnly() {
    if (!(await bootstrap())) {
        loginError.value = lastRefusal || 'This kanaria needs a token to read.';
    }
}

function signedOut(err) {
    streamHooks.stop();
    session.value = null;
    streamStatus.value = 'Signed out';
    lastRefusal = err ? err.message : '';
    if (token() && err) {
        loginError.value = err.message;
    }
    setToken('');
    auth.value = 'login';
}
setUnauthorizedHandler(signedOut);

// REASON: why kanaria did not answer a call or the stream, or '' when it did.
export function reach(reason) {
    const o = offline.value;
    if (!reason) {
        if (o) {
            offline.value = null;
            /* back: the stream need not wait out its backoff */
            streamHooks.wake();
        }
        return;
    }
    if (!o || o.reason !== reason) {
        offline.value = { since: o ? o.since : Date.now(), reason, retryAt: o ? o.retryAt : 0 };
    }
}
setReachHandler(reach);

// The stream waits until T before its next attempt.
export function retryingAt(t) {
    if (offline.value) {
        offline.value = Object.assign({}, offline.value, { retryAt: t });
    }
}

// The offline banner's button: the stream's next attempt now, or (when it is not waiting) what
// is shown read again.
export function retryNow() {
    if (!streamHooks.wake()) {
        refreshShown();
    }
}

// Learn who we are; 404 (an older kanaria) reads as anonymous, read-only.
export async function bootstrap() {
    fatal.value = '';
    let s;
    try {
        s = await api('/api/v1/session', { noSignOut: true });
    } catch (e) {
        if (e.status === 401) {
            signedOut(e);
            return false;
        }
        if (e.status !== 404) {
            fatal.value = e.message;
        }
        s = { user: null, role: 'viewer', anonymous: true, last_event_id: null };
    }
    session.value = s;
    loginError.value = '';
    auth.value = 'ok';
    streamHooks.start(s.last_event_id);
    refreshShown();
    return true;
}

export async function signIn(t) {
    setToken(t);
    loginError.value = '';
    try {
        await api('/api/v1/session', { noSignOut: true });
    } catch (e) {
        if (e.status === 401 || e.status === 403) {
            setToken('');
            loginError.value = e.message;
            return;
        }
        if (e.status === 404) {
            /* no session route: check the token on the app list instead */
            try {
                await api('/api/v1/apps', { noSignOut: true });
            } catch (e2) {
                if (e2.status === 401 || e2.status === 403) {
                    setToken('');
                    loginError.value = e2.message;
                    return;
                }
            }
        }
    }
    await bootstrap();
}

export function signOut() {
    streamHooks.stop();
    setToken('');
    session.value = null;
    loginError.value = '';
    streamStatus.value = 'Signed out';
    auth.value = 'login';
}

// The stream was refused (the token was revoked or has expired): sign out, saying why.
export function streamRefused(message) {
    signedOut(new ApiError(401, message));
}

export function showLogin() {
    streamHooks.stop();
    streamStatus.value = 'Signed out';
    auth.value = 'login';
}

// ---- loaders ----------------------------------------------------------------------------------

// A view's error line for E: none when kanaria is out of reach and the view has what it read
// before (the offline banner says that it may be out of date).
function viewError(e, have) {
    return e.unreachable && have ? '' : e.message;
}

export async function loadApps() {
    try {
        const r = await api('/api/v1/apps');
        apps.value = { data: r.apps || [], error: r.storage_error || '' };
    } catch (e) {
        if (e.status !== 401) {
            apps.value = { data: apps.value.data, error: viewError(e, apps.value.data) };
        }
    }
}

export async function loadApp(repo, name) {
    const key = `${repo}/${name}`;
    try {
        const r = await api(appPath(repo, name));
        if (shown.key === `app:${key}`) {
            app.value = { key, data: r, error: '' };
        }
    } catch (e) {
        if (e.status !== 401 && shown.key === `app:${key}`) {
            const data = app.value.key === key ? app.value.data : null;
            app.value = { key, data, error: viewError(e, data) };
        }
    }
}

export async function loadDeployment(id) {
    try {
        const d = await api(`/api/v1/deployments/${id}`);
        if (shown.key !== `deployment:${id}`) {
            return;
        }
        const prev = deployment.value;
        deployment.value = { key: id, data: d, error: '', app: prev.key === id ? prev.app : null };
        if (!deployment.value.app) {
            loadDeploymentApp(id, d.repo, d.app);
        }
    } catch (e) {
        if (e.status !== 401 && shown.key === `deployment:${id}`) {
            const prev = deployment.value.key === id ? deployment.value : { key: id, data: null, app: null };
            deployment.value = Object.assign({}, prev, { error: viewError(e, prev.data) });
        }
    }
}

// The deployment's app: its traffic now and its platform.
export async function loadDeploymentApp(id, repo, name) {
    try {
        const a = await api(appPath(repo, name));
        if (deployment.value.key === id) {
            deployment.value = Object.assign({}, deployment.value, { app: a });
        }
    } catch (e) {
        /* the deployment page shows without it */
    }
}

// ---- what is shown, and refetching it when events say it changed ------------------------------

const shown = { key: '', route: null };

function throttled(fn, gap) {
    let last = 0;
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
        timer = null;
        if (running) {
            again = true;
            return;
        }
        running = true;
        last = Date.now();
        try {
            await fn();
        } finally {
            running = false;
            if (again) {
                again = false;
                schedule();
            }
        }
    };
    const schedule = () => {
        if (timer) {
            return;
        }
        if (running) {
            again = true;
            return;
        }
        timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
    };
    schedule.cancel = () => {
        clearTimeout(timer);
        timer = null;
        again = false;
    };
    return schedule;
}

const refetchApps = throttled(() => loadApps(), 1000);
const refetchApp = throttled(() => shown.route && shown.route.name === 'app' ? loadApp(shown.route.repo, shown.route.app) : null, 1000);
const refetchDeployment = throttled(() => shown.route && shown.route.name === 'deployment' ? loadDeployment(shown.route.id) : null, 300);
const refetchDeploymentApp = throttled(() => {
    const d = deployment.value;
    return d.data && shown.route && shown.route.name === 'deployment' && d.key === shown.route.id ? loadDeploymentApp(d.key, d.data.repo, d.data.app) : null;
}, 1000);

let listTimer = null;

export function show(r) {
    const key = r.name === 'app' ? `app:${r.repo}/${r.app}` : r.name === 'deployment' ? `deployment:${r.id}` : r.name;
    if (key === shown.key) {
        shown.route = r;
        return;
    }
    shown.key = key;
    shown.route = r;
    clearInterval(listTimer);
    listTimer = null;
    if (auth.value !== 'ok') {
        return;
    }
    load(r);
}

// The traffic split and the drift are what kanaria last read from the platform (every
// driftInterval, 10s by default), which no event announces: an app's page rereads them this often.
const PLATFORM_REREAD_MS = 10000;

function load(r) {
    if (r.name === 'apps') {
        loadApps();
        /* the stream says when something changes; this only keeps "x ago" and missed events honest */
        listTimer = setInterval(loadApps, 30000);
    } else if (r.name === 'app') {
        loadApp(r.repo, r.app);
        listTimer = setInterval(() => document.hidden || refetchApp(), PLATFORM_REREAD_MS);
    } else if (r.name === 'deployment') {
        loadDeployment(r.id);
        listTimer = setInterval(() => document.hidden || refetchDeploymentApp(), PLATFORM_REREAD_MS);
    }
}

// After sign-in or a reconnect (events may have been missed): refetch what is shown.
export function refreshShown() {
    if (!shown.route || auth.value !== 'ok') {
        return;
    }
    clearInterval(listTimer);
    listTimer = null;
    load(shown.route);
}

export function onEvent(e) {
    const r = shown.route;
    if (!r) {
        return;
    }
    if (r.name === 'apps' && e.app) {
        refetchApps();
    } else if (r.name === 'app' && e.app === r.app && (!e.repo || e.repo === r.repo)) {
        refetchApp();
    } else if (r.name === 'deployment') {
        const d = deployment.value.data;
        if (e.deployment && e.deployment === r.id) {
            refetchDeployment();
        }
        if (d && e.app === d.app && e.repo === d.repo) {
            refetchDeploymentApp();
        }
    }
}

// After an action: refetch at once (the stream will follow).
export function refreshSoon() {
    const r = shown.route;
    if (!r) {
        return;
    }
    if (r.name === 'app') {
        refetchApp();
    } else if (r.name === 'deployment') {
        refetchDeployment();
        refetchDeploymentApp();
    } else if (r.name === 'apps') {
        refetchApps();
    }
}
