// The API calls' errors: kanaria's own refusal as it words it, and a call that never reached
// kanaria (no connection, or a gateway's 502/503/504 page) told apart and reported.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { api, gatewayReason, NO_CONNECTION, setReachHandler } from '../api.js';

const realFetch = globalThis.fetch;
afterEach(() => {
    globalThis.fetch = realFetch;
    setReachHandler(() => {});
});

// api(PATH) with fetch answering STATUS and BODY (or failing when status is null): what it
// resolved to or the error, and what it reported
async function call(status, body, type = 'application/json') {
    globalThis.fetch = async () => {
        if (status == null) {
            throw new TypeError('Failed to fetch');
        }
        return new Response(body, { status, headers: { 'content-type': type } });
    };
    const reached = [];
    setReachHandler((why) => reached.push(why));
    try {
        return { ok: await api('/api/v1/apps'), reached };
    } catch (e) {
        return { err: e, reached };
    }
}

test('a gateway\'s 502, 503 or 504 page means kanaria cannot be reached; kanaria\'s own 503 does not', () => {
    assert.equal(gatewayReason(502, null),
        'kanaria cannot be reached: the server in front of it answered 502 Bad Gateway');
    assert.match(gatewayReason(503, null), /503 Service Unavailable$/);
    assert.match(gatewayReason(504, { message: 'x' }), /504 Gateway Timeout$/);
    assert.equal(gatewayReason(503, { error: 'approvals are not available' }), '');
    assert.equal(gatewayReason(500, null), '');
    assert.equal(gatewayReason(200, null), '');
});

test('an answer from kanaria is reported as reached, its refusal thrown in its words', async () => {
    const ok = await call(200, '{"apps":[]}');
    assert.deepEqual(ok.ok, { apps: [] });
    assert.deepEqual(ok.reached, ['']);
    const no = await call(503, '{"error":"approvals are not available"}');
    assert.equal(no.err.message, 'approvals are not available');
    assert.equal(no.err.status, 503);
    assert.equal(no.err.unreachable, false);
    assert.deepEqual(no.reached, ['']);
});

test('no connection, or a proxy\'s page for a stopped kanaria: unreachable, said so and reported', async () => {
    const none = await call(null);
    assert.equal(none.err.message, NO_CONNECTION);
    assert.equal(none.err.unreachable, true);
    assert.deepEqual(none.reached, [NO_CONNECTION]);
    const page = await call(502, '<html><body><h1>502 Bad Gateway</h1></body></html>', 'text/html');
    assert.equal(page.err.status, 502);
    assert.equal(page.err.unreachable, true);
    assert.match(page.err.message, /^kanaria cannot be reached: .*502 Bad Gateway$/);
    assert.deepEqual(page.reached, [page.err.message]);
});
