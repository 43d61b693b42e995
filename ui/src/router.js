// Hash routes: #/apps (?q=TEXT), #/apps/REPO/APP, #/deployments/ID.
import { signal } from '@preact/signals';

function parse(hash) {
    let h = (hash || '').replace(/^#/, '');
    let query = '';
    const qi = h.indexOf('?');
    if (qi >= 0) {
        query = h.slice(qi + 1);
        h = h.slice(0, qi);
    }
    const q = new URLSearchParams(query);
    const parts = h.split('/').filter(p => p !== '').map(p => {
        try {
            return decodeURIComponent(p);
        } catch (e) {
            return p;
        }
    });
    if (parts[0] === 'apps' && parts.length === 3) {
        return { name: 'app', repo: parts[1], app: parts[2], q };
    }
    if (parts[0] === 'deployments' && parts.length === 2 && /^[0-9]+$/.test(parts[1])) {
        return { name: 'deployment', id: Number(parts[1]), q };
    }
    if (parts.length === 0 || (parts[0] === 'apps' && parts.length === 1)) {
        return { name: 'apps', q };
    }
    return { name: 'notfound', path: h, q };
}

export const route = signal(parse(location.hash));

window.addEventListener('hashchange', () => {
    route.value = parse(location.hash);
});

export function appHref(repo, name) {
    return `#/apps/${encodeURIComponent(repo)}/${encodeURIComponent(name)}`;
}

export function deploymentHref(id) {
    return `#/deployments/${id}`;
}

// Keep the apps filter in the URL without a new history entry or a route change.
export function replaceQuery(q) {
    const base = '#/apps';
    const hash = q ? `${base}?q=${encodeURIComponent(q)}` : base;
    history.replaceState(null, '', hash);
}
