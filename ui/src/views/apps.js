// #/apps: every app with its repository, platform, status, running and last good commits and
// last deployment; a filter kept in the URL.
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { APP_STATUS, tone, word } from '../format.js';
import { appStatus } from '../model.js';
import { appHref, deploymentHref, replaceQuery, route } from '../router.js';
import { apps } from '../store.js';
import { AppBadge, Commit, ErrorLine, Loading } from './common.js';
import { Ago } from './time.js';

function matches(a, q) {
    if (!q) {
        return true;
    }
    const st = appStatus(a);
    const hay = [a.name, a.repo, a.platform || '', st, APP_STATUS[st] || '', a.latest ? a.latest.status : '']
        .join('\n').toLowerCase();
    return q.toLowerCase().split(/\s+/).filter(Boolean).every(w => hay.includes(w));
}

function running(a) {
    return a.current && a.current.commit ? a.current.commit : a.last_good;
}

function Row({ a }) {
    const st = appStatus(a);
    const l = a.latest;
    return html`
        <tr data-testid="app-row" data-app=${a.name} data-status=${st}>
            <th scope="row"><a href=${appHref(a.repo, a.name)}>${a.name}</a></th>
            <td>${a.repo}</td>
            <td>${a.platform || html`<span class="muted">unknown</span>`}</td>
            <td>
                <${AppBadge} status=${st} />
                ${a.current && a.current.running_stage ? html`<div class="small muted">stage ${a.current.running_stage.index} ${a.current.running_stage.name}</div>` : null}
                ${a.error ? html`<pre class="errors">${a.error}</pre>` : null}
            </td>
            <td><${Commit} sha=${running(a)} /></td>
            <td><${Commit} sha=${a.last_good} /></td>
            <td>${l ? html`<span class="badge ${tone(l.status)}">${word(l.status)}</span>
                ${' '}<a href=${deploymentHref(l.id)}>#${l.id}</a>
                ${' '}<span class="muted small"><${Ago} t=${l.created_at} /></span>`
                : html`<span class="muted">none</span>`}</td>
        </tr>`;
}

export function Apps() {
    const q = route.value.q.get('q') || '';
    const { data, error } = apps.value;
    useEffect(() => {
        document.title = 'Applications · kanaria';
    }, []);
    const onInput = e => {
        const v = e.target.value;
        replaceQuery(v);
        const params = new URLSearchParams(v ? { q: v } : {});
        route.value = Object.assign({}, route.value, { q: params });
    };
    const list = data ? data.filter(a => matches(a, q)) : [];
    return html`
        <h1>Applications</h1>
        <div class="filter">
            <label for="filter">Filter apps</label>
            <input id="filter" type="search" value=${q} onInput=${onInput} autocomplete="off"
                   placeholder="name, repository, platform or status" />
        </div>
        <${ErrorLine} text=${error} />
        ${data == null ? (error ? null : html`<${Loading} />`) : html`
        <div class="scroll">
            <table class="apps">
                <caption class="sr-only">Applications${q ? ` matching “${q}”` : ''}: ${list.length} of ${data.length}</caption>
                <thead><tr>
                    <th scope="col">App</th><th scope="col">Repository</th><th scope="col">Platform</th>
                    <th scope="col">Status</th><th scope="col">Running commit</th><th scope="col">Last good</th>
                    <th scope="col">Last deployment</th>
                </tr></thead>
                <tbody>${list.map(a => html`<${Row} key=${`${a.repo}/${a.name}`} a=${a} />`)}</tbody>
            </table>
        </div>
        ${list.length === 0 ? html`<p class="muted">${data.length ? 'No app matches the filter.' : 'No apps yet: kanaria has not read a repository with an app in it.'}</p>` : null}
        `}`;
}
