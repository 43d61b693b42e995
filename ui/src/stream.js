// One server-sent event stream per tab, read with fetch (so it can carry the bearer token) and
// parsed here. Resumed with Last-Event-ID; closed while the tab is hidden; backoff 1 s → 5 s
// with jitter on errors, cut short when another call finds kanaria answering again; a 401 stops
// it and shows the login.
import { gatewayReason, headers, NO_CONNECTION } from './api.js';
import { parser } from './sse.js';
import { onEvent, reach, refreshShown, retryingAt, streamRefused, streamStatus } from './store.js';

const URL_EVENTS = '/api/v1/events';

let lastId = null;
let running = false;
let controller = null;
let generation = 0;
let attempt = 0;
let wake = null;

function sleep(ms) {
    return new Promise(resolve => {
        const done = () => {
            clearTimeout(t);
            wake = null;
            resolve();
        };
        const t = setTimeout(done, ms);
        wake = done;
    });
}

// Short enough that a restarted kanaria is seen within seconds (it asks for `retry: 2000`); an
// attempt against a stopped one costs it nothing, and a hidden tab makes none.
function backoff() {
    const base = Math.min(5000, 1000 * 2 ** Math.min(attempt, 3));
    attempt++;
    return base / 2 + Math.random() * base / 2;
}

async function connect(gen) {
    controller = new AbortController();
    const signal = controller.signal;
    const h = headers({ Accept: 'text/event-stream' });
    if (lastId != null) {
        h['Last-Event-ID'] = String(lastId);
    }
    let res;
    try {
        res = await fetch(URL_EVENTS, { headers: h, signal, cache: 'no-store' });
    } catch (e) {
        if (!signal.aborted) {
            reach(NO_CONNECTION);
        }
        throw e;
    }
    if (res.status === 401) {
        let why = 'HTTP 401';
        try {
            why = (await res.json()).error || why;
        } catch (e) {
            /* not JSON: the status says enough */
        }
        return { refused: why };
    }
    if (!res.ok || !res.body) {
        let body = null;
        try {
            body = await res.json();
        } catch (e) {
            /* a gateway's page, not the API's JSON */
        }
        const away = gatewayReason(res.status, body);
        if (away && !signal.aborted) {
            reach(away);
        }
        throw new Error(away || `HTTP ${res.status}`);
    }
    streamStatus.value = 'Live';
    reach('');
    if (attempt > 0 || gen > 1) {
        /* events may have been missed while away */
        refreshShown();
    }
    attempt = 0;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const feed = parser(ev => {
        if (ev.id) {
            const n = Number(ev.id);
            if (Number.isFinite(n)) {
                lastId = n;
            }
        }
        let data;
        try {
            data = JSON.parse(ev.data);
        } catch (e) {
            return;
        }
        onEvent(data);
    });
    for (;;) {
        const { value, done } = await reader.read();
        if (done) {
            return 'closed';
        }
        feed(value);
    }
}

async function loop(gen) {
    while (running && gen === generation) {
        if (document.hidden) {
            streamStatus.value = 'Paused';
            return;
        }
        streamStatus.value = attempt === 0 && lastConnects === 0 ? 'Connecting…' : 'Reconnecting…';
        lastConnects++;
        let outcome;
        try {
            outcome = await connect(lastConnects);
        } catch (e) {
            outcome = 'error';
        }
        if (!running || gen !== generation) {
            return;
        }
        if (outcome && outcome.refused) {
            running = false;
            streamRefused(outcome.refused);
            return;
        }
        if (document.hidden) {
            streamStatus.value = 'Paused';
            return;
        }
        streamStatus.value = 'Reconnecting…';
        const wait = backoff();
        retryingAt(Date.now() + wait);
        await sleep(wait);
    }
}

let lastConnects = 0;

export function startStream(fromId) {
    stopStream();
    running = true;
    lastConnects = 0;
    attempt = 0;
    if (fromId != null && lastId == null) {
        lastId = fromId;
    }
    generation++;
    loop(generation);
}

// Ends the wait before the next attempt, if the stream is waiting: whether it was.
export function wakeStream() {
    if (!running || !wake) {
        return false;
    }
    wake();
    return true;
}

export function stopStream() {
    running = false;
    generation++;
    if (controller) {
        controller.abort();
        controller = null;
    }
    if (wake) {
        wake();
    }
}

document.addEventListener('visibilitychange', () => {
    if (!running) {
        return;
    }
    if (document.hidden) {
        generation++;
        if (controller) {
            controller.abort();
            controller = null;
        }
        if (wake) {
            wake();
        }
        streamStatus.value = 'Paused';
    } else {
        generation++;
        attempt = 0;
        loop(generation);
    }
});
