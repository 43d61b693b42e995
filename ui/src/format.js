// Times, durations, commits and status words as the pages show them (no DOM: tested by node).

export function short(commit) {
    return commit ? String(commit).slice(0, 7) : '';
}

// "1.2s", "45s", "3m 05s", "2h 03m", "4d 02h"
export function duration(ms) {
    if (ms == null || !isFinite(ms) || ms < 0) {
        return '';
    }
    const s = ms / 1000;
    if (s < 10) {
        return `${Math.round(s * 10) / 10}s`;
    }
    if (s < 60) {
        return `${Math.floor(s)}s`;
    }
    const m = Math.floor(s / 60);
    if (m < 60) {
        return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
    }
    const h = Math.floor(m / 60);
    if (h < 24) {
        return `${h}h ${String(m % 60).padStart(2, '0')}m`;
    }
    return `${Math.floor(h / 24)}d ${String(h % 24).padStart(2, '0')}h`;
}

export function absolute(ms) {
    return new Date(ms).toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric',
        hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
    });
}

export function clock(ms) {
    return new Date(ms).toLocaleTimeString(undefined, { hour12: false });
}

export function agoText(ms, at) {
    const d = at - ms;
    if (d < 5000) {
        return 'just now';
    }
    return `${duration(d).split(' ')[0]} ago`;
}

// A number with at most 4 significant digits, as text.
export function num(v) {
    if (v == null) {
        return 'no value'; /* a NaN sample: JSON has no NaN */
    }
    if (typeof v !== 'number' || !isFinite(v)) {
        return String(v);
    }
    if (v === 0 || Number.isInteger(v)) {
        return String(v);
    }
    return String(Number(v.toPrecision(4)));
}

export const APP_STATUS = {
    SYNCED: 'Synced',
    DEPLOYING: 'Deploying',
    OUT_OF_SYNC: 'Out of sync',
    ROLLED_BACK: 'Rolled back',
    INVALID: 'Invalid config',
    ORPHANED: 'Orphaned',
    NEW: 'New',
};

// Colour class of a status word (the word is always shown beside the colour).
export function tone(status) {
    switch (status) {
    case 'SYNCED': case 'SUCCESS': case 'PASS': case 'APPROVE':
        return 'good';
    case 'INVALID': case 'FAILURE': case 'FAIL': case 'ROLLED_BACK': case 'REJECT':
        return 'bad';
    case 'DEPLOYING': case 'RUNNING': case 'PENDING': case 'PLANNED': case 'ROLLING_BACK':
        return 'busy';
    case 'OUT_OF_SYNC': case 'ORPHANED': case 'INCONCLUSIVE': case 'CANCELLED': case 'BLOCKED':
    case 'FROZEN':
        return 'warn';
    default:
        return 'none';
    }
}

// A deployment or stage status as a word: "Rolling back", "Not started".
export function word(status) {
    if (!status) {
        return '';
    }
    const s = String(status).toLowerCase().replace(/_/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
}

export const FINAL = new Set(['SUCCESS', 'FAILURE', 'CANCELLED', 'SUPERSEDED']);

export function deploymentDuration(d, at) {
    if (!d || !d.started_at) {
        return null;
    }
    return (d.finished_at || at) - d.started_at;
}
