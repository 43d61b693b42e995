// Shared by the browser tests (tests/ui/ui.test.mjs): the browser, pages that fail the test on
// a page error, a console error or a JavaScript dialog, a loopback proxy in front of kanaria
// that can cut the event stream or stand for a stopped kanaria, the API as the tests read it,
// axe-core and screenshots.
//
// Set by tests/ui/ui.sh: UI_URL (kanaria's API listener), UI_ALICE_TOKEN (approver),
// UI_VICTOR_TOKEN (viewer), UI_PUSH (push.sh MESSAGE VERSION ERROR_RATE), UI_SHOTS (folder of
// the screenshots), UI_CHROMIUM (the browser binary), UI_APP and UI_REPO (the app under test).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import AxeBuilderModule from '@axe-core/playwright';

const AxeBuilder = AxeBuilderModule.default ?? AxeBuilderModule;

export const env = (name) => {
    const v = process.env[name];
    assert.ok(v, `${name} is not set (tests/ui/ui.sh sets it)`);
    return v;
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor(DESCRIPTION, FN, TIMEOUT_MS): FN until it returns a truthy value (returned); a
// timeout fails with DESCRIPTION and FN's last value or error.
export async function waitFor(what, fn, timeout = 30000, every = 250) {
    const end = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            last = await fn();
            if (last) {
                return last;
            }
        } catch (e) {
            last = e;
        }
        if (Date.now() > end) {
            const got = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`waited ${timeout / 1000}s for ${what}; last: ${got}`);
        }
        await sleep(every);
    }
}

// ---- the API, as the tests read it (never through the page) --------------------------------

export async function api(method, p, token = env('UI_ALICE_TOKEN'), body) {
    const res = await fetch(env('UI_URL') + p, {
        method,
        headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        json = null;
    }
    return { status: res.status, json, text };
}

export async function getJSON(p, token) {
    const r = await api('GET', p, token);
    assert.equal(r.status, 200, `GET ${p}: ${r.status} ${r.text}`);
    return r.json;
}

// push(MESSAGE, VERSION, ERROR_RATE): a commit to the app's Git remote; its hash
export async function push(message, version, errorRate) {
    const { stdout } = await promisify(execFile)(env('UI_PUSH'), [message, version, errorRate], {
        timeout: 30000,
    });
    return stdout.trim();
}

export const app = () => env('UI_APP');
export const repo = () => env('UI_REPO');

// the app's deployment of COMMIT, once kanaria recorded it
export async function deploymentOf(commit, timeout = 60000) {
    return waitFor(`a deployment of ${commit.slice(0, 7)}`, async () => {
        const a = await getJSON(`/api/v1/apps/${app()}?repo=${repo()}`);
        const d = (a.deployments || []).concat(a.latest ? [a.latest] : []);
        return d.find((x) => x.commit === commit);
    }, timeout);
}

export const deployment = (id) => getJSON(`/api/v1/deployments/${id}`);

export const FINAL = ['SUCCESS', 'FAILURE', 'CANCELLED'];

// the index of the first stage of KIND in deployment D (its pipeline as the API lists it), or -1
export function stageIndex(d, kind) {
    const s = (d.pipeline || []).find((x) => x.kind === kind) ||
        (d.stages || []).find((x) => x.name === kind);
    return s ? s.index : -1;
}

// the same once deployment ID has started (its pipeline is recorded when it starts)
export async function stageIndexOf(id, kind) {
    return (await waitFor(`the stage ${kind} in deployment #${id}'s pipeline`, async () => {
        const i = stageIndex(await deployment(id), kind);
        return i >= 0 && { i };
    }, 30000)).i;
}

// ---- a proxy on loopback in front of kanaria: the browser talks to kanaria through it ------

// What a reverse proxy answers for a server that is not running (nginx's and HAProxy's pages
// say as little).
const BAD_GATEWAY_PAGE = '<html><head><title>502 Bad Gateway</title></head>' +
    '<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>\n';
const BAD_GATEWAY = 'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n' +
    `Content-Length: ${BAD_GATEWAY_PAGE.length}\r\nConnection: close\r\n\r\n${BAD_GATEWAY_PAGE}`;

// Every request is recorded in requests ({at, method, path, down}), and every one for
// /api/v1/events in streams with its Last-Event-ID; cut() ends the streams open now;
// hold(true) refuses new ones (the connection is closed at once) until hold(false).
// down(true) is kanaria stopped behind a reverse proxy: the connections open now are closed
// and every request is answered 502 Bad Gateway with a page of the proxy's, until down(false).
export async function startProxy(target) {
    const u = new URL(target);
    const conns = new Set();
    const streams = [];
    const requests = [];
    let held = false;
    let down = false;
    const destroy = (c) => {
        c.client.destroy();
        c.upstream?.destroy();
        conns.delete(c);
    };
    const server = net.createServer((client) => {
        // kanaria is connected to at the first request, so that a connection the browser
        // opened while kanaria was down reaches it once it is back
        const c = { client, upstream: null, events: false, answered: false };
        conns.add(c);
        const end = () => destroy(c);
        client.on('data', (buf) => {
            if (c.answered) {
                return;
            }
            const s = buf.toString('latin1');
            const line = /^([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/.exec(s);
            if (line) {
                requests.push({ at: Date.now(), method: line[1], path: line[2], down });
            }
            const m = /^GET \/api\/v1\/events[^\r\n]*\r\n([\s\S]*?)(\r\n\r\n|$)/.exec(s);
            if (m) {
                const h = /^last-event-id:[ \t]*([^\r\n]*)/im.exec(m[1]);
                streams.push({ at: Date.now(), lastEventId: h ? h[1].trim() : null,
                    refused: held || down });
                c.events = true;
                if (held && !down) {
                    end();
                    return;
                }
            }
            if (down) {
                c.answered = true;
                client.end(BAD_GATEWAY);
                return;
            }
            if (!c.upstream) {
                c.upstream = net.connect(Number(u.port), u.hostname);
                c.upstream.on('data', (b) => client.write(b));
                c.upstream.on('error', end);
                c.upstream.on('close', end);
            }
            c.upstream.write(buf);
        });
        client.on('error', end);
        client.on('close', end);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return {
        url: `http://127.0.0.1:${server.address().port}`,
        streams,
        requests,
        hold(on) {
            held = on;
        },
        down(on) {
            down = on;
            if (on) {
                for (const c of [...conns]) {
                    destroy(c);
                }
            }
        },
        cut() {
            let n = 0;
            for (const c of [...conns]) {
                if (c.events) {
                    destroy(c);
                    n++;
                }
            }
            return n;
        },
        async close() {
            for (const c of [...conns]) {
                destroy(c);
            }
            await new Promise((r) => server.close(r));
        },
    };
}

// ---- the browser and its pages -------------------------------------------------------------

export async function launch() {
    return chromium.launch({
        executablePath: env('UI_CHROMIUM'),
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
}

// A page in a context of its own (AxeBuilder needs browser.newContext()). What goes wrong in it
// is kept in page.problems: page errors, console errors (but those matching one of
// page.allowConsole, set by a test that expects them: the 401 before a login, a cut stream)
// and any JavaScript dialog (alert, confirm, prompt: the UI has none, so it is an injection).
export async function newPage(browser, { width = 1280, height = 900 } = {}) {
    const context = await browser.newContext({ viewport: { width, height } });
    const page = await context.newPage();
    page.problems = [];
    page.allowConsole = [];
    page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
        if (m.type() !== 'error') {
            return;
        }
        const text = `${m.text()} (${m.location().url || 'no url'})`;
        // the browser asks for /favicon.ico by itself; kanaria answers 404 for any path that
        // is not the UI's or the API's
        if (/status of 404 .*\/favicon\.ico\)$/.test(text)) {
            return;
        }
        if (!page.allowConsole.some((re) => re.test(text))) {
            page.problems.push(`console error: ${text}`);
        }
    });
    page.on('dialog', (d) => {
        page.problems.push(`a JavaScript ${d.type()} opened: ${d.message()}`);
        d.dismiss().catch(() => {});
    });
    return page;
}

export function noProblems(page) {
    assert.deepEqual(page.problems, [], 'page errors, console errors or dialogs');
}

// The 401 a page's first call gets before its login is logged by Chromium as a console error.
export const ALLOW_401 = /Failed to load resource: the server responded with a status of 401/;

// login(PAGE, BASE, TOKEN): the login form filled in; waits until the header names the user
export async function login(page, base, token, who) {
    page.allowConsole.push(ALLOW_401);
    await page.goto(`${base}/#/apps`);
    const field = page.getByLabel('API token');
    await field.waitFor({ timeout: 15000 });
    await field.fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const want = typeof who === 'string' ? (t) => t === who : (t) => who.test(t);
    await waitFor(`the header to say ${who}`, async () =>
        want((await page.getByTestId('whoami').textContent({ timeout: 1000 })) || ''), 15000);
    page.allowConsole.splice(page.allowConsole.indexOf(ALLOW_401), 1); // signed in: no more 401
}

// axe-core on the page as it is now, in both colour schemes, with a full-page screenshot of
// each in UI_SHOTS as NAME-light.png and NAME-dark.png; fails on any WCAG 2.0/2.1 A or AA
// violation, naming the rule and the elements.
export async function axeBothThemes(page, name) {
    const found = [];
    for (const scheme of ['light', 'dark']) {
        await page.emulateMedia({ colorScheme: scheme });
        await sleep(400); // the charts are redrawn on a scheme change
        const file = path.join(env('UI_SHOTS'), `${name}-${scheme}.png`);
        await page.screenshot({ path: file, fullPage: true });
        const r = await new AxeBuilder({ page })
            .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
            .analyze();
        for (const v of r.violations) {
            found.push(`${scheme}: ${v.id} (${v.help}): ` +
                v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} ${n.failureSummary || ''}`
                    .replace(/\s+/g, ' ')).join(' | '));
        }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    assert.deepEqual(found, [], `axe violations on the ${name} page`);
}

// the stage boxes as the page shows them now: [{index, status, text}]
export async function stageBoxes(page) {
    return page.locator('[data-testid="stage"]').evaluateAll((els) => els.map((e) => ({
        index: Number(e.getAttribute('data-index')),
        status: e.getAttribute('data-status'),
        text: e.textContent,
    })));
}

// a marker on window: gone when the page is loaded again
export async function setMarker(page) {
    const m = `m${Math.random()}`;
    await page.evaluate((v) => {
        window.__kanariaMarker = v;
    }, m);
    return m;
}

export async function markerKept(page, m) {
    return (await page.evaluate(() => window.__kanariaMarker)) === m;
}

// Records every change of a stage box's data-status while the page stays loaded:
// window.__stageChanges = [{index, from, to}]; window.__stagesAtStart, the boxes first seen.
export async function watchStages(page) {
    await page.evaluate(() => {
        window.__stageChanges = [];
        const seen = new Map();
        const scan = () => {
            for (const e of document.querySelectorAll('[data-testid="stage"]')) {
                const i = e.getAttribute('data-index');
                const s = e.getAttribute('data-status');
                if (seen.has(i) && seen.get(i) !== s) {
                    window.__stageChanges.push({ index: Number(i), from: seen.get(i), to: s });
                }
                seen.set(i, s);
            }
        };
        scan();
        window.__stagesAtStart = new Map(seen);
        new MutationObserver(scan).observe(document.body, {
            subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'],
        });
    });
}
