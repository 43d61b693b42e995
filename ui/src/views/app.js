// #/apps/REPO/APP: the app's status, drift, history and the operator's actions.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, appPath } from '../api.js';
import { deploymentDuration, duration, FINAL, tone, word } from '../format.js';
import { appStatus } from '../model.js';
import { deploymentHref } from '../router.js';
import { app, now, refreshSoon, roleAtLeast } from '../store.js';
import { AppBadge, Commit, ErrorLine, Loading } from './common.js';
import { Ago } from './time.js';
import { Dialog } from './dialog.js';
import { Traffic } from './traffic.js';

function History({ a }) {
    const list = a.deployments || [];
    if (!list.length) {
        return html`<p class="muted">No deployments yet.</p>`;
    }
    return html`
        <div class="scroll">
            <table data-testid="history">
                <caption class="sr-only">Deployments of ${a.name}, newest first</caption>
                <thead><tr>
                    <th scope="col">Deployment</th><th scope="col">Status</th><th scope="col">Strategy</th>
                    <th scope="col">Commit</th><th scope="col">Author</th><th scope="col">Summary</th>
                    <th scope="col">Started</th><th scope="col">Duration</th>
                </tr></thead>
                <tbody>${list.map(d => html`
                    <tr key=${d.id}>
                        <th scope="row"><a href=${deploymentHref(d.id)}>#${d.id}</a></th>
                        <td><span class="badge ${tone(d.status)}">${word(d.status)}</span></td>
                        <td>${word(d.strategy)}</td>
                        <td><${Commit} sha=${d.commit} /> <span class="message">${d.message}</span></td>
                        <td>${d.author}</td>
                        <td>${d.summary}${d.reason ? html`<div class="reason">${d.reason}</div>` : null}</td>
                        <td><${Ago} t=${d.started_at || d.created_at} /></td>
                        <td>${duration(deploymentDuration(d, now.value))}</td>
                    </tr>`)}
                </tbody>
            </table>
        </div>`;
}

function Actions({ a }) {
    const [open, setOpen] = useState('');
    const [note, setNote] = useState({ text: '', error: false });
    const rollbackBtn = useRef(null);
    const cancelBtn = useRef(null);
    const syncBtn = useRef(null);
    if (!roleAtLeast('operator')) {
        return null;
    }
    const deploying = !!a.current || (a.latest && !FINAL.has(a.latest.status));
    const post = async (action, body) => {
        const r = await api(appPath(a.repo, a.name, action), { method: 'POST', body: body || {} });
        refreshSoon();
        return r;
    };
    const sync = async () => {
        setNote({ text: '', error: false });
        try {
            const r = await post('sync');
            setNote({ text: r && r.deployment ? `Sync started: deployment #${r.deployment}.` : 'Sync requested.', error: false });
        } catch (e) {
            setNote({ text: e.message, error: true });
        }
    };
    const good = [];
    const seen = new Set();
    for (const d of a.deployments || []) {
        if (d.status === 'SUCCESS' && !seen.has(d.commit)) {
            seen.add(d.commit);
            good.push(d);
        }
    }
    return html`
        <div class="actions">
            <button type="button" ref=${syncBtn} onClick=${sync}>Sync</button>
            <button type="button" ref=${rollbackBtn} onClick=${() => setOpen('rollback')}>Roll back</button>
            ${deploying ? html`<button type="button" ref=${cancelBtn} onClick=${() => setOpen('cancel')}>Cancel deployment</button>` : null}
        </div>
        ${note.text ? html`<p role=${note.error ? 'alert' : 'status'} class=${note.error ? 'error' : 'note'}>${note.text}</p>` : null}
        ${open === 'rollback' ? html`
            <${Dialog} title=${`Roll back ${a.name}`} opener=${rollbackBtn} onClose=${() => setOpen('')}
                onConfirm=${async f => {
                    const to = f.get('to');
                    const r = await post('rollback', to ? { to } : {});
                    setNote({ text: r && r.deployment ? `Rollback started: deployment #${r.deployment}.` : 'Rollback requested.', error: false });
                }}>
                <p>A quick sync to an earlier commit: no canary, no analysis.</p>
                <label for="rollback-to">Commit</label>
                <select id="rollback-to" name="to">
                    ${good.length === 0 ? html`<option value="">the last good commit</option>` : null}
                    ${good.map(d => html`<option value=${d.commit}>${d.commit.slice(0, 7)} ${d.message} (#${d.id})</option>`)}
                </select>
            <//>` : null}
        ${open === 'cancel' ? html`
            <${Dialog} title=${`Cancel the deployment of ${a.name}`} opener=${cancelBtn} onClose=${() => setOpen('')}
                onConfirm=${async f => {
                    const reason = f.get('reason');
                    await post('cancel', reason ? { reason } : {});
                    setNote({ text: 'Cancel requested.', error: false });
                }}>
                <p>The deployment stops and the app goes back to its last good commit.</p>
                <label for="cancel-reason">Reason (optional)</label>
                <textarea id="cancel-reason" name="reason" rows="3"></textarea>
            <//>` : null}`;
}

export function App({ repo, name }) {
    const { key, data: a, error } = app.value;
    useEffect(() => {
        document.title = `${name} · kanaria`;
    }, [name]);
    if (key !== `${repo}/${name}` || !a) {
        return html`<h1>${name}</h1><${ErrorLine} text=${key === `${repo}/${name}` ? error : ''} />${error ? null : html`<${Loading} />`}`;
    }
    const st = appStatus(a);
    const cur = a.current;
    return html`
        <h1>${a.name}</h1>
        <${ErrorLine} text=${error} />
        <dl class="facts">
            <div><dt>Status</dt><dd><${AppBadge} status=${st} testid="app-status" /></dd></div>
            <div><dt>Repository</dt><dd>${a.repo}</dd></div>
            <div><dt>Path</dt><dd><code>${a.path}</code></dd></div>
            <div><dt>Platform</dt><dd>${a.platform || 'unknown'}</dd></div>
            <div><dt>Last good</dt><dd><${Commit} sha=${a.last_good} /></dd></div>
            <div><dt>Last seen</dt><dd><${Commit} sha=${a.last_seen} /></dd></div>
            ${a.rolled_back_from ? html`<div><dt>Rolled back from</dt><dd><${Commit} sha=${a.rolled_back_from} /></dd></div>` : null}
            ${'traffic' in a ? html`<div><dt>Traffic now</dt><dd><${Traffic} app=${a} /></dd></div>` : null}
        </dl>
        ${cur ? html`<p class="current">Deploying <${Commit} sha=${cur.commit} />:
            <a href=${deploymentHref(cur.id)}>deployment #${cur.id}</a>
            ${cur.running_stage ? ` (stage ${cur.running_stage.index} ${cur.running_stage.name})` : ''}</p>` : null}
        <${Actions} a=${a} />
        ${a.error ? html`<section aria-labelledby="errors-h"><h2 id="errors-h">Configuration errors</h2><pre class="errors">${a.error}</pre></section>` : null}
        ${a.storage_error ? html`<p role="alert" class="error">${a.storage_error}</p>` : null}
        ${a.drift ? html`
            <section aria-labelledby="drift-h">
                <h2 id="drift-h">Out of sync</h2>
                <p>What runs differs from Git${a.drift_since ? html` since <${Ago} t=${a.drift_since} />` : ''}${a.self_heal ? '; self-heal puts it back' : ''}:</p>
                <pre class="drift" data-testid="drift">${a.drift}</pre>
            </section>` : null}
        <section aria-labelledby="history-h">
            <h2 id="history-h">History</h2>
            <${History} a=${a} />
        </section>`;
}
