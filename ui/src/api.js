// Calls to kanaria's API: the bearer token from the tab's sessionStorage, errors as the API
// words them. A 401 anywhere signs the tab out (the login view shows). Whether kanaria answers
// at all is reported to the store (the page says so while it does not).
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

// `unreachable`: the request never reached kanaria (no connection, or a gateway in front of it
// answered for it).
export class ApiError extends Error {
    constructor(status, message, unreachable = false) {
        super(message);
        this.status = status;
        this.unreachable = unreachable;
    }
}

const GATEWAY = { 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

// Why an answer of STATUS with BODY (parsed JSON or null) means that kanaria cannot be reached,
// or '' when kanaria itself answered. A proxy in front of a stopped kanaria answers 502, 503 or
// 504 with a page of its own; kanaria's own 503s carry the API's JSON `error`.
export function gatewayReason(status, body) {
    if (!GATEWAY[status] || (body && typeof body.error === 'string')) {
        return '';
    }
    return `kanaria cannot be reached: the server in front of it answered ${status} ${GATEWAY[status]}`;
}

export const NO_CONNECTION = 'kanaria cannot be reached: the connection failed';

let onUnauthorized = () => {};
let onReach = () => {};

export function setUnauthorizedHandler(f) {
    onUnauthorized = f;
}

// f(reason): called after every call, with '' when kanaria answered, else why it did not
export function setReachHandler(f) {
    onReach = f;
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
// message is the API's own `error` text (or says that kanaria cannot be reached).
export async function api(path, opts = {}) {
    const init = { method: opts.method || 'GET', headers: headers(), cache: 'no-store' };
    if (opts.body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(opts.body);
    }
    let res;
    let text;
    try {
        res = await fetch(path, init);
        text = await res.text();
    } catch (e) {
        /* no answer, or the connection dropped in the middle of one */
        onReach(NO_CONNECTION);
        throw new ApiError(0, NO_CONNECTION, true);
    }
    let body = null;
    if (text) {
        try {
            body = JSON.parse(text);
        } catch (e) {
            body = null;
        }
    }
    const away = gatewayReason(res.status, body);
    onReach(away);
    if (away) {
        throw new ApiError(res.status, away, true);
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
