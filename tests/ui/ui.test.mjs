// kanaria's web UI in headless Chromium against a real `kanaria serve` (set up by
// tests/ui/ui.sh): log in, the app list, a canary followed live from push to approval and
// promotion, a rollback explained, what a viewer may not do, a commit message that holds HTML,
// the keyboard, kanaria out of reach behind a proxy and back, the event stream cut and resumed,
// and axe-core on every page in both colour schemes. The scenarios run in order on one kanaria; each first makes sure, through the API,
// that kanaria is where it needs to be, so that one failing does not hide the others.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
    ALLOW_401, FINAL, api, app, axeBothThemes, deployment, deploymentOf, env, getJSON, launch,
    login, markerKept, newPage, noProblems, push, repo, setMarker, sleep, stageBoxes, stageIndexOf,
    startProxy, waitFor, watchStages,
} from './lib.mjs';

const ALICE = () => env('UI_ALICE_TOKEN');
const VICTOR = () => env('UI_VICTOR_TOKEN');
const XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>';

let browser;
let proxy;
let base;
const pages = [];
const ids = {}; // the deployments the scenarios make: good (v2), bad (v3)

// v2 (healthy, its message holding HTML) and v3 (30% errors) are pushed by the scenarios that
// watch them arrive; a later scenario pushes them itself when that one could not
async function ensureGood() {
    if (!ids.good) {
        ids.good = (await deploymentOf(await push(`hello v2 ${XSS}`, 'v2', '0'))).id;
    }
    return ids.good;
}

async function ensureBad() {
    if (!ids.bad) {
        const d = await deployment(await ensureGood());
        if (!FINAL.includes(d.status)) { // v3 must not queue behind v2
            await apiStageRunning(d.id, 'WAIT_APPROVAL');
            await api('POST', `/api/v1/apps/${app()}/approve?repo=${repo()}`, ALICE(), {});
            await apiFinal(d.id);
        }
        ids.bad = (await deploymentOf(await push('hello v3 (30% errors)', 'v3', '0.3'))).id;
    }
    return ids.bad;
}

async function page(opts) {
    const p = await newPage(browser, opts);
    pages.push(p);
    return p;
}

async function aliceOn(hash) {
    const p = await page();
    await login(p, base, ALICE(), 'alice (approver)');
    if (hash) {
        await p.evaluate((h) => {
            location.hash = h;
        }, hash);
    }
    return p;
}

// the deployment page of ID, its pipeline drawn
async function pipelineShown(p, id) {
    await p.getByRole('heading', { name: `Deployment #${id} of ${app()}` }).waitFor({ timeout: 15000 });
    await p.getByRole('list', { name: 'Pipeline' }).waitFor({ timeout: 15000 });
}

const stageOf = (p, i) => p.locator(`[data-testid="stage"][data-index="${i}"]`);

const streamStatus = (p) => p.getByTestId('stream-status').textContent();

async function streamLive(p, timeout = 15000) {
    await waitFor('the stream to be Live', async () => (await streamStatus(p)) === 'Live', timeout);
}

// a request of the proxy's for the app (its page's, or a deployment page's reread of it)
const appGet = (r) => r.method === 'GET' && r.path.startsWith(`/api/v1/apps/${app()}?`);

// What Chromium logs for a call that a proxy answered 502, or whose connection was closed
const ALLOW_DOWN = /Failed to load resource: (the server responded with a status of 502|net::ERR_)/;

// waits until the API says deployment ID has a running stage of KIND (or is final)
async function apiStageRunning(id, kind, timeout = 90000) {
    return waitFor(`deployment #${id} running ${kind}`, async () => {
        const d = await deployment(id);
        const s = d.stages.find((x) => x.name === kind && x.status === 'RUNNING');
        return s || (FINAL.includes(d.status) ? Promise.reject(new Error(
            `deployment #${id} ended ${d.status}: ${d.reason}`)) : null);
    }, timeout);
}

async function apiFinal(id, timeout = 90000) {
    return waitFor(`deployment #${id} to end`, async () => {
        const d = await deployment(id);
        return FINAL.includes(d.status) && d;
    }, timeout);
}

// each scenario's pages are closed after it: their streams are not the next one's
async function closePages() {
    for (const p of pages.splice(0)) {
        await p.context().close().catch(() => {});
    }
}

// it(), with a screenshot of each page open when the scenario fails: failed-NAME-N.png
function scenario(name, fn) {
    it(name, async () => {
        try {
            await fn();
        } catch (e) {
            const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40).replace(/-$/, '');
            for (const [i, p] of pages.entries()) {
                await p.screenshot({ path: `${env('UI_SHOTS')}/failed-${slug}-${i}.png`, fullPage: true })
                    .catch(() => {});
            }
            throw e;
        }
    });
}

// While the proxy answers 502 for kanaria: PA (the app's page, showing SHOWN) and PD (the page of
// ids.good, waiting in its stage WAIT) say so, an approval fails plainly, a page not read yet
// shows why, and the pages' rereads meet the 502 too.
async function whileDown(pa, pd, wait, shown) {
    for (const p of [pa, pd]) {
        const banner = p.getByTestId('offline');
        await banner.waitFor({ timeout: 10000 });
        const said = (await banner.getByRole('alert').textContent()).replace(/\s+/g, ' ');
        assert.match(said, /kanaria cannot be reached: .*502 Bad Gateway/, `the banner says "${said}"`);
        assert.match(said, /may be out of date/, `the banner says "${said}"`);
        assert.notEqual(await streamStatus(p), 'Live', 'the stream says Live while kanaria is down');
    }
    // what the app page read before stays, said to be as of then, with no second alert
    assert.equal(await pa.getByTestId('app-status').getAttribute('data-status'), shown);
    assert.equal(await pa.getByRole('alert').count(), 1, 'more than the banner alerts');

    // an approval that cannot reach kanaria: the dialog says so and stays open; nothing
    // on the page claims the approval
    await pd.getByRole('button', { name: 'Approve', exact: true }).click();
    const dialog = pd.getByRole('dialog');
    await dialog.waitFor({ timeout: 5000 });
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    const refusal = dialog.getByRole('alert');
    await refusal.waitFor({ timeout: 10000 });
    assert.match(await refusal.textContent(), /kanaria cannot be reached/);
    assert.ok(await dialog.getByRole('button', { name: 'Confirm' }).isEnabled(),
        'Confirm stays disabled after the failure');
    assert.doesNotMatch(await stageOf(pd, wait).textContent(), /approved by/);
    const still = await deployment(ids.good); // kanaria's own listener, not the proxy
    assert.equal(still.status, 'RUNNING');
    assert.deepEqual(still.stages[wait].approvals || [], [], 'an approval was recorded');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden', timeout: 5000 });

    // to a page not read yet (the app's oldest deployment): the reason, not a spinner; and back
    // to what was read
    const oldest = pa.getByTestId('history').getByRole('link').last();
    const id = (await oldest.textContent()).replace('#', '');
    await oldest.click();
    await pa.getByRole('heading', { name: `Deployment #${id}` }).waitFor({ timeout: 5000 });
    await waitFor('the deployment page to say why it is empty', async () =>
        (await pa.getByRole('alert').count()) === 2, 10000);
    assert.match(await pa.getByRole('alert').last().textContent(), /kanaria cannot be reached/);
    assert.equal(await pa.getByText('Loading…').count(), 0, 'a spinner for a page that cannot load');
    const back = Date.now();
    await pa.goBack();
    await pa.getByTestId('history').waitFor({ timeout: 5000 });
    await waitFor('the app page to ask for the app again', () =>
        proxy.requests.some((r) => r.down && r.at >= back && appGet(r)), 5000);
    const acted = Date.now();

    // the app's page as it is while kanaria is down, in both themes (while the rereads come)
    await axeBothThemes(pa, 'app-unreachable');
    // the pages' rereads of the traffic (every 10 s) meet the proxy's 502 too
    await waitFor('a reread of the app while kanaria is down', () =>
        proxy.requests.some((r) => r.down && r.at > acted && appGet(r)), 15000);
    await sleep(300); // the page has the answer
    for (const p of [pa, pd]) {
        assert.ok(await p.getByTestId('offline').isVisible(), 'the banner went away');
        assert.notEqual(await streamStatus(p), 'Live', 'the stream says Live while kanaria is down');
    }
    assert.equal(await pa.getByRole('alert').count(), 1, 'more than the banner alerts');
    assert.equal(await pa.getByTestId('app-status').getAttribute('data-status'), shown);
}

describe('kanaria web UI', () => {
    before(async () => {
        browser = await launch();
        proxy = await startProxy(env('UI_URL'));
        base = proxy.url;
    });

    afterEach(closePages);

    after(async () => {
        await closePages();
        await browser?.close();
        await proxy?.close();
    });

    scenario('serves the page with its security headers', async () => {
        const r = await fetch(`${env('UI_URL')}/`, { signal: AbortSignal.timeout(10000) });
        assert.equal(r.status, 200, `GET / answered ${r.status}: ${(await r.text()).slice(0, 200)}`);
        assert.match(r.headers.get('content-type') || '', /^text\/html/);
        assert.match(r.headers.get('content-security-policy') || '', /script-src 'self'/);
        assert.match(r.headers.get('content-security-policy') || '', /frame-ancestors 'none'/);
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    });

    scenario('logs in with a token; a wrong token shows the API\'s refusal', async () => {
        const p = await page();
        p.allowConsole.push(ALLOW_401);
        await p.goto(`${base}/`);
        const field = p.getByLabel('API token');
        await field.waitFor({ timeout: 15000 });
        assert.equal(await field.getAttribute('type'), 'password');
        await axeBothThemes(p, 'login');

        const refused = await api('GET', '/api/v1/apps', 'kn-not-a-token');
        assert.equal(refused.status, 401);
        await field.fill('kn-not-a-token');
        await p.getByRole('button', { name: 'Sign in' }).click();
        const alert = p.getByRole('alert');
        await alert.waitFor({ timeout: 10000 });
        assert.ok((await alert.textContent()).includes(refused.json.error),
            `the alert says "${await alert.textContent()}", the API said "${refused.json.error}"`);

        await field.fill(ALICE());
        await p.getByRole('button', { name: 'Sign in' }).click();
        await waitFor('the header to say alice (approver)', async () =>
            (await p.getByTestId('whoami').textContent({ timeout: 1000 })) === 'alice (approver)');
        await p.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: 5000 });
        assert.ok(!p.url().includes(ALICE()), 'the token is in the URL');
        const stored = await p.evaluate(() => [JSON.stringify(sessionStorage),
            JSON.stringify(localStorage)]);
        assert.ok(stored[0].includes(ALICE()), 'the token is not in sessionStorage');
        assert.ok(!stored[1].includes(ALICE()), 'the token is in localStorage');
        await waitFor('the stream to be Live', async () =>
            (await p.getByTestId('stream-status').textContent()) === 'Live', 15000);
        noProblems(p);
    });

    scenario('lists the app with its status', async () => {
        const p = await aliceOn();
        await p.getByRole('heading', { name: 'Applications' }).waitFor({ timeout: 10000 });
        const row = p.locator(`[data-testid="app-row"][data-app="${app()}"]`);
        await row.waitFor({ timeout: 10000 });
        const a = await getJSON(`/api/v1/apps/${app()}?repo=${repo()}`);
        assert.equal(a.status, 'SYNCED');
        const status = row.locator('[data-status]').first();
        assert.equal(await status.getAttribute('data-status'), 'SYNCED');
        assert.match(await status.textContent(), /Synced/);
        assert.ok((await row.textContent()).includes(a.last_good.slice(0, 7)),
            `the row does not show the running commit ${a.last_good.slice(0, 7)}`);
        assert.ok((await row.textContent()).includes(repo()), 'the row does not name the repository');
        const link = row.getByRole('link', { name: app(), exact: true });
        assert.equal(await link.getAttribute('href'), `#/apps/${repo()}/${app()}`);
        await axeBothThemes(p, 'apps');

        await p.getByLabel('Filter apps').fill('no-such-app');
        await row.waitFor({ state: 'detached', timeout: 5000 });
        await p.getByLabel('Filter apps').fill(app());
        await row.waitFor({ timeout: 5000 });

        await link.click();
        await p.getByRole('heading', { name: app(), exact: true }).waitFor({ timeout: 10000 });
        await p.getByTestId('history').waitFor({ timeout: 10000 });
        await axeBothThemes(p, 'app');
        noProblems(p);
    });

    scenario('follows a pushed canary live, without a reload, up to the approval', async () => {
        const p = await aliceOn(`#/apps/${repo()}/${app()}`);
        await p.getByTestId('history').waitFor({ timeout: 10000 });
        const marker = await setMarker(p);
        const d = await deployment(await ensureGood());
        // the app page learns of the new deployment from the stream, and links to it
        const link = p.getByTestId('history').getByRole('link', { name: `#${d.id}`, exact: true });
        await link.waitFor({ timeout: 20000 });
        await link.click();
        await pipelineShown(p, d.id);
        await watchStages(p);
        const wait = await stageIndexOf(d.id, 'WAIT_APPROVAL');
        assert.ok(wait > 0, 'the pipeline has no WAIT_APPROVAL stage');
        await waitFor('the WAIT_APPROVAL stage box to be RUNNING', async () =>
            (await stageOf(p, wait).getAttribute('data-status')) === 'RUNNING', 90000);
        const [changes, first] = await p.evaluate(() => [window.__stageChanges,
            Object.fromEntries(window.__stagesAtStart)]);
        const seen = `changes ${JSON.stringify(changes)}; first seen ${JSON.stringify(first)}`;
        // the page as it waits, in both themes: shot and checked before the live checks below,
        // whose failure is reported first
        let axeError = null;
        await axeBothThemes(p, 'deployment-running').catch((e) => {
            axeError = e;
        });
        assert.ok(String(wait) in first, `the WAIT_APPROVAL box (${wait}) was not on the page ` +
            `before it ran (every stage of the pipeline has a box, NOT_STARTED until it runs): ${seen}`);
        assert.ok(changes.length >= 2, `the stage boxes changed ${changes.length} times: ${seen}`);
        assert.ok(changes.some((c) => c.index === wait && c.to === 'RUNNING'), seen);
        assert.ok(await markerKept(p, marker), 'the page was loaded again');
        const boxes = await stageBoxes(p);
        for (const b of boxes.filter((x) => x.index < wait)) {
            assert.equal(b.status, 'SUCCESS', `stage ${b.index}: ${b.text}`);
        }
        assert.match(await p.getByTestId('decision').textContent(), /approval/i);
        assert.match(await p.getByTestId('traffic').textContent(), /canary 30%/);
        await p.getByTestId('analysis').locator('[data-testid="check"]').first().waitFor({ timeout: 5000 });
        if (axeError) {
            throw axeError;
        }
        noProblems(p);
    });

    scenario('shows a commit message holding HTML as text', async () => {
        await ensureGood();
        const p = await aliceOn(`#/deployments/${ids.good}`);
        await pipelineShown(p, ids.good);
        await waitFor('the commit message shown as text', () => p.getByText(XSS).count(), 10000);
        assert.equal(await p.locator('img[src="x"]').count(), 0, 'an <img> from the message');
        assert.equal(await p.evaluate(() => [...document.scripts]
            .filter((s) => s.textContent.includes('alert(')).length), 0, 'a <script> from the message');
        await sleep(500);
        noProblems(p); // no alert() ran
    });

    scenario('shows a viewer no action buttons', async () => {
        await ensureGood();
        await apiStageRunning(ids.good, 'WAIT_APPROVAL');
        const p = await page();
        await login(p, base, VICTOR(), /victor|Read-only/);
        await p.evaluate((h) => {
            location.hash = h;
        }, `#/deployments/${ids.good}`);
        await pipelineShown(p, ids.good);
        const wait = await stageIndexOf(ids.good, 'WAIT_APPROVAL');
        await waitFor('the WAIT_APPROVAL box RUNNING', async () =>
            (await stageOf(p, wait).getAttribute('data-status')) === 'RUNNING', 10000);
        for (const name of ['Approve', 'Reject', 'Sync']) {
            assert.equal(await p.getByRole('button', { name }).count(), 0, `a viewer sees ${name}`);
        }
        await p.evaluate((h) => {
            location.hash = h;
        }, `#/apps/${repo()}/${app()}`);
        await p.getByTestId('history').waitFor({ timeout: 10000 });
        for (const name of ['Approve', 'Reject', 'Sync', 'Roll back', 'Cancel deployment']) {
            assert.equal(await p.getByRole('button', { name }).count(), 0, `a viewer sees ${name}`);
        }
        noProblems(p);
    });

    scenario('works from the keyboard: Tab to Approve, Enter opens the dialog, Escape closes it', async () => {
        await ensureGood();
        await apiStageRunning(ids.good, 'WAIT_APPROVAL');
        const p = await aliceOn(`#/deployments/${ids.good}`);
        await pipelineShown(p, ids.good);
        const approve = p.getByRole('button', { name: 'Approve', exact: true });
        await approve.waitFor({ timeout: 10000 });
        await p.evaluate(() => document.activeElement?.blur());
        await waitFor('Tab to reach Approve', async () => {
            await p.keyboard.press('Tab');
            return approve.evaluate((e) => e === document.activeElement);
        }, 30000, 0);
        await p.keyboard.press('Enter');
        const dialog = p.getByRole('dialog');
        await dialog.waitFor({ timeout: 5000 });
        const wait = await stageIndexOf(ids.good, 'WAIT_APPROVAL');
        await dialog.getByRole('heading', { name: `Approve stage ${wait} WAIT_APPROVAL` }).waitFor({ timeout: 2000 });
        assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)),
            'the focus is not in the dialog');
        await p.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden', timeout: 5000 });
        assert.ok(await approve.evaluate((e) => e === document.activeElement),
            'the focus did not return to Approve');
        assert.equal((await deployment(ids.good)).status, 'RUNNING', 'Escape approved the stage');
        noProblems(p);
    });

    scenario('says when kanaria cannot be reached, fails an action plainly, and recovers by itself', async () => {
        await ensureGood();
        await apiStageRunning(ids.good, 'WAIT_APPROVAL');
        const wait = await stageIndexOf(ids.good, 'WAIT_APPROVAL');
        const appPage = `#/apps/${repo()}/${app()}`;
        const [pa, pd] = await Promise.all([aliceOn(appPage), aliceOn(`#/deployments/${ids.good}`)]);
        await pa.getByTestId('history').waitFor({ timeout: 10000 });
        await pipelineShown(pd, ids.good);
        await Promise.all([streamLive(pa), streamLive(pd)]);
        const markers = [await setMarker(pa), await setMarker(pd)];
        const shownStatus = await pa.getByTestId('app-status').getAttribute('data-status');
        for (const p of [pa, pd]) {
            p.allowConsole.push(ALLOW_DOWN);
        }

        // kanaria stops behind its proxy: its streams end, every call is answered 502 (and
        // comes back whatever happens, for the scenarios that follow)
        let upAt = 0;
        proxy.down(true);
        try {
            await whileDown(pa, pd, wait, shownStatus);
        } finally {
            upAt = Date.now();
            proxy.down(false);
        }

        // back: the streams are Live again, the pages read anew, nothing reloaded
        await Promise.all([streamLive(pa, 20000), streamLive(pd, 20000)]);
        for (const p of [pa, pd]) {
            await p.getByTestId('offline').waitFor({ state: 'detached', timeout: 5000 });
        }
        await waitFor('both pages read again', () =>
            proxy.requests.some((r) => r.at > upAt && !r.down && appGet(r)) &&
            proxy.requests.some((r) => r.at > upAt && !r.down && r.path === `/api/v1/deployments/${ids.good}`), 5000);
        await pd.getByRole('button', { name: 'Approve', exact: true }).waitFor({ timeout: 5000 });
        assert.equal(await stageOf(pd, wait).getAttribute('data-status'), 'RUNNING');
        assert.equal(await pa.getByRole('alert').count(), 0);
        assert.equal(await pd.getByRole('alert').count(), 0);
        assert.ok(await markerKept(pa, markers[0]), 'the app page was loaded again');
        assert.ok(await markerKept(pd, markers[1]), 'the deployment page was loaded again');
        noProblems(pa);
        noProblems(pd);
    });

    scenario('approves from the UI and shows the promotion', async () => {
        await ensureGood();
        await apiStageRunning(ids.good, 'WAIT_APPROVAL');
        const p = await aliceOn(`#/deployments/${ids.good}`);
        await pipelineShown(p, ids.good);
        const marker = await setMarker(p);
        const wait = await stageIndexOf(ids.good, 'WAIT_APPROVAL');
        await p.getByRole('button', { name: 'Approve', exact: true }).click();
        const dialog = p.getByRole('dialog');
        await dialog.waitFor({ timeout: 5000 });
        await dialog.getByLabel('Reason (optional)').fill('looks good in the browser test');
        await dialog.getByRole('button', { name: 'Confirm' }).click();
        await dialog.waitFor({ state: 'hidden', timeout: 10000 });
        await waitFor('every stage box SUCCESS', async () => {
            const b = await stageBoxes(p);
            return b.length > wait && b.every((x) => x.status === 'SUCCESS');
        }, 60000);
        assert.match(await stageOf(p, wait).textContent(), /approved by alice/);
        assert.ok(await markerKept(p, marker), 'the page was loaded again');
        const d = await deployment(ids.good);
        assert.equal(d.status, 'SUCCESS', d.reason);
        assert.deepEqual(d.stages[wait].approvals.map((x) => [x.who, x.decision]), [['alice', 'APPROVE']]);
        assert.equal(await p.getByRole('button', { name: 'Approve', exact: true }).count(), 0);
        noProblems(p);
    });

    scenario('catches up after the event stream is cut, resuming with Last-Event-ID', async () => {
        const good = await deployment(await ensureGood());
        if (!FINAL.includes(good.status)) { // the bad version must not queue behind the good one
            await apiStageRunning(good.id, 'WAIT_APPROVAL');
            await api('POST', `/api/v1/apps/${app()}/approve?repo=${repo()}`, ALICE(), {});
            await apiFinal(good.id);
        }
        const first = proxy.streams.length;
        const p = await aliceOn(`#/apps/${repo()}/${app()}`);
        await waitFor('the stream to be Live', async () =>
            (await p.getByTestId('stream-status').textContent()) === 'Live', 15000);
        const marker = await setMarker(p);
        const d = await deployment(await ensureBad());
        const analysis = await stageIndexOf(d.id, 'ANALYSIS');
        await p.evaluate((h) => {
            location.hash = h;
        }, `#/deployments/${d.id}`);
        await pipelineShown(p, d.id);
        // cut before the analysis has failed: the page must catch up on that and the rollback
        const early = await stageOf(p, analysis).getAttribute('data-status', { timeout: 10000 });
        assert.ok(['NOT_STARTED', 'RUNNING'].includes(early), `the ANALYSIS box is ${early} already`);
        const before = proxy.streams.slice(first);

        p.allowConsole.push(/net::ERR_|Failed to load resource|network/i);
        proxy.hold(true);
        const cut = proxy.cut();
        assert.ok(cut >= 1, 'no event stream was open');
        const shown = new Set();
        await waitFor('the rollback while the stream is cut', async () => {
            shown.add(await p.getByTestId('stream-status').textContent());
            return FINAL.includes((await deployment(d.id)).status);
        }, 60000, 300);
        const during = await stageOf(p, analysis).getAttribute('data-status');
        proxy.hold(false);
        await waitFor('the stream to be Live again', async () =>
            (await p.getByTestId('stream-status').textContent()) === 'Live', 45000);
        await waitFor('the ANALYSIS box FAILURE', async () =>
            (await stageOf(p, analysis).getAttribute('data-status')) === 'FAILURE', 15000);
        assert.ok(await markerKept(p, marker), 'the page was loaded again');

        const all = proxy.streams.slice(first);
        const resumed = all.filter((s) => !s.refused).at(-1);
        const initial = before.at(-1);
        assert.ok(initial, 'no stream before the cut');
        assert.ok(resumed && resumed !== initial, `no stream after the cut: ${JSON.stringify(all)}`);
        assert.match(resumed.lastEventId || '', /^[1-9][0-9]*$/,
            `the stream resumed without Last-Event-ID: ${JSON.stringify(all)}`);
        assert.ok(Number(resumed.lastEventId) > Number(initial.lastEventId || 0),
            `Last-Event-ID ${resumed.lastEventId} is not past the first stream's ` +
            `${initial.lastEventId}: the events seen before the cut were not counted`);
        assert.ok(shown.has('Reconnecting…'), `the stream status while cut: ${[...shown].join(', ')}`);
        // else the catch-up was not put to the test (a refetch on a timer of 10 s or more
        // would rarely come within the few seconds the stream is cut)
        assert.notEqual(during, 'FAILURE', 'the page saw the failure while the stream was cut');
        noProblems(p);
    });

    scenario('explains the rollback: the reason, the failing check\'s chart and its FAIL verdict', async () => {
        await ensureBad();
        const d = await apiFinal(ids.bad);
        assert.equal(d.status, 'FAILURE', `v3 ended ${d.status}: ${d.reason}`);
        const p = await aliceOn(`#/deployments/${ids.bad}`);
        await pipelineShown(p, ids.bad);
        const decision = p.getByRole('region', { name: 'Decision' });
        await decision.waitFor({ timeout: 10000 });
        await waitFor('the reason in the Decision region', async () =>
            (await decision.textContent()).includes(d.reason), 10000);
        const failed = new Set(d.stages.flatMap((s) => s.analysis || [])
            .filter((r) => r.verdict === 'FAIL').map((r) => r.check));
        assert.ok(failed.size > 0, 'the API lists no FAIL verdict');
        for (const check of failed) {
            const fig = p.locator(`figure[data-testid="check"][data-check="${check}"]`);
            await fig.waitFor({ timeout: 10000 });
            assert.ok(await fig.locator('canvas').count() > 0, `no chart (canvas) for ${check}`);
            assert.match(await fig.locator('figcaption').textContent(), new RegExp(check));
            assert.match(await fig.locator('table').textContent(), /FAIL/);
        }
        // the split now: everything back on the primary (kanaria reads it every driftInterval,
        // the page rereads it every 10 s)
        await waitFor('the traffic now on the primary', async () =>
            /primary 100%/.test(await p.getByTestId('traffic').textContent()), 30000)
            .catch(async (e) => {
                const a = await getJSON(`/api/v1/apps/${app()}?repo=${repo()}`);
                throw new Error(`${e.message}; the page says "${await p.getByTestId('traffic')
                    .textContent()}", the API ${JSON.stringify(a.traffic)}`);
            });
        await axeBothThemes(p, 'deployment-rolled-back');
        await p.evaluate(() => {
            location.hash = '#/apps';
        });
        const row = p.locator(`[data-testid="app-row"][data-app="${app()}"]`);
        await waitFor('the app row Rolled back', async () =>
            (await row.locator('[data-status]').first().getAttribute('data-status')) === 'ROLLED_BACK', 10000);
        assert.match(await row.textContent(), /Rolled back/);
        noProblems(p);
    });

    scenario('is readable on a phone', async () => {
        const p = await page({ width: 375, height: 800 });
        await login(p, base, ALICE(), 'alice (approver)');
        await p.evaluate((h) => {
            location.hash = h;
        }, `#/deployments/${ids.bad || ids.good || 1}`);
        await p.getByRole('list', { name: 'Pipeline' }).waitFor({ timeout: 10000 });
        const { scroll, client } = await p.evaluate(() => ({
            scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
        }));
        await p.screenshot({ path: `${env('UI_SHOTS')}/deployment-phone-light.png`, fullPage: true });
        assert.ok(scroll <= client + 1, `the page is ${scroll}px wide at 375px`);
        noProblems(p);
    });
});
