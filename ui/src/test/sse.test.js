// The event-stream parser: events split across chunks, CRLF, comments, several data lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parser } from '../sse.js';

function parse(chunks) {
    const got = [];
    const feed = parser(e => got.push(e));
    for (const c of chunks) {
        feed(c);
    }
    return got;
}

test('an event whole in one chunk, after the comment and retry kanaria sends first', () => {
    const got = parse([': kanaria events\nretry: 2000\n\nid: 7\ndata: {"id":7}\n\n']);
    assert.deepEqual(got, [{ id: '7', event: 'message', data: '{"id":7}' }]);
});

test('an event cut anywhere, even between \\r and \\n, is read once it is whole', () => {
    const text = 'id: 41\r\ndata: {"type":"STAGE_LOG"}\r\n\r\nid: 42\r\ndata: x\r\n\r\n';
    for (let i = 1; i < text.length; i++) {
        const got = parse([text.slice(0, i), text.slice(i)]);
        assert.deepEqual(got.map(e => [e.id, e.data]), [['41', '{"type":"STAGE_LOG"}'], ['42', 'x']], `cut at ${i}`);
    }
});

test('a CRLF cut between \\r and \\n is one line end, not two (an event type is kept)', () => {
    const got = parse(['event: app\r', '\ndata: x\r\n\r\n']);
    assert.deepEqual(got, [{ id: null, event: 'app', data: 'x' }]);
});

test('several data lines join with a newline; keep-alive comments and empty events are skipped', () => {
    const got = parse([': keep-alive\n\n', 'event: app\ndata: a\ndata:b\n\n', '\n\n']);
    assert.deepEqual(got, [{ id: null, event: 'app', data: 'a\nb' }]);
});

test('nothing is dispatched before the blank line that ends an event', () => {
    assert.deepEqual(parse(['id: 1\ndata: half']), []);
});
