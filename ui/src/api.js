// Calls to kanaria's API: the bearer token from the tab's sessionStorage, errors as the API
// words them. A 401 anywhere signs the tab out (the login view shows).
const KEY = 'kanaria.token';

export function token() {
    try {
        return sessionStorage.getItem(KEY) || '';
    } catch (e) {
        return '';
    }
}

export function setToken(t) {
    try {
        if (t) {
            sessionStorage.setItem(KEY, t);
        } else {
            sessionStorage.removeItem(KEY);
        }
    } catch (e) {
        /* storage refused: the token lives as long as the page */
    }
}

export class ApiError extends Error {
    constructor(status, message) {
        super(message);
        this.status = status;
    }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(f) {
    onUnauthorized = f;
}

export function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    const t = token();
    if (t) {
        h.Authorization = `Bearer ${t}`;
    }
    return h;
}

// GET or POST a JSON API path; resolves to the parsed body, rejects with an ApiError whose
// message is the API's own `error` text.
export async function api(path, opts = {}) {
    const init = { method: opts.method || 'GET', headers: headers(), cache: 'no-store' };
    if (opts.body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.body);
    }
    let res;
    try {
        res = await fetch(path, init);
    } catch (e) {
        throw new ApiError(0, `kanaria did not answer (${e.message})`);
    }
    let body = null;
    const text = await res.text();
    if (text) {
        try {
            body = JSON.parse(text);
        } catch (e) {
            body = null;
        }
    }
    if (!res.ok) {
        const msg = body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
        const err = new ApiError(res.status, msg);
        if (res.status === 401 && !opts.noSignOut) {
            onUnauthorized(err);
        }
        throw err;
    }
    return body;
}

export function appPath(repo, name, action) {
    const q = `?repo=${encodeURIComponent(repo)}`;
    return `/api/v1/apps/${encodeURIComponent(name)}${action ? `/${action}` : ''}${q}`;
}
