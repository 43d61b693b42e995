// What the pages compute from the API's answers, without the DOM (tested by node: ui/src/test/).
import { duration, FINAL, num, word } from './format.js';

const ORDER = ['canary', 'primary', 'baseline'];

// The server's status word, or the same rules applied here when it does not send one.
export function appStatus(a) {
    if (a.status) {
        return a.status;
    }
    if ((a.current && a.current.status) || (a.latest && !FINAL.has(a.latest.status))) {
        return 'DEPLOYING';
    }
    if (a.error) {
        return 'INVALID';
    }
    if (a.orphaned) {
        return 'ORPHANED';
    }
    if (a.drift) {
        return 'OUT_OF_SYNC';
    }
    if (a.rolled_back_from) {
        return 'ROLLED_BACK';
    }
    if (a.last_good) {
        return 'SYNCED';
    }
    return 'NEW';
}

// The split as text, the variants with no traffic left out: "primary 70% · canary 30%".
export function trafficText(t) {
    const parts = [];
    for (const k of ['primary', 'canary', 'baseline']) {
        if (t && typeof t[k] === 'number' && t[k] > 0) {
            parts.push(`${k} ${t[k]}%`);
        }
    }
    return parts.length ? parts.join(' · ') : 'no traffic';
}

// The STAGE_LOG lines, each with the stage that was running when it was written.
export function logLines(d) {
    const out = [];
    let stage = null;
    for (const e of d.events || []) {
        const m = /^stage (\d+) ([A-Z_]+)/.exec(e.message || '');
        if (e.type === 'STAGE_STARTED' && m) {
            stage = { index: Number(m[1]), name: m[2] };
        }
        if (e.type === 'STAGE_LOG') {
            out.push({ e, stage });
        }
    }
    return out;
}

export function specOf(d, index) {
    return Array.isArray(d.pipeline) ? d.pipeline.find(p => p.index === index) || null : null;
}

// How long a running stage may still take: WAIT its duration, WAIT_APPROVAL its timeout,
// ANALYSIS its duration.
export function limitOf(kind, spec) {
    if (!spec) {
        return 0;
    }
    if (kind === 'WAIT_APPROVAL') {
        return spec.timeout_ms || 0;
    }
    if (kind === 'WAIT' || kind === 'ANALYSIS') {
        return spec.duration_ms || 0;
    }
    return 0;
}

// A CANARY_STEPS stage's steps ("10% → 20% → 50%"), and while it runs the step it is on.
export function stepsText(s, spec) {
    if (!spec || !Array.isArray(spec.steps) || !spec.steps.length) {
        return null;
    }
    const all = spec.steps.map(p => `${p}%`).join(' → ');
    if (s.status === 'RUNNING' && s.step >= 1 && s.step <= spec.steps.length) {
        return `step ${s.step} of ${spec.steps.length}: canary ${spec.steps[s.step - 1]}% (${all})`;
    }
    return all;
}

// The pause a running CANARY_STEPS holds at until approved ({step, approvers, min_approvals}
// of the pipeline entry), or null.
export function awaitingPause(s, spec) {
    if (!s || s.status !== 'RUNNING' || !s.awaiting_approval || !spec || !Array.isArray(spec.pauses)) {
        return null;
    }
    return spec.pauses.find(p => p.step === s.step && p.until_approved) || null;
}

// A background analysis' span, its stages named from the pipeline: "from 1 TRAFFIC_ROUTING
// until 3 PRIMARY_ROLLOUT" (until the end when no stage stops it).
export function backgroundText(spec, pipeline) {
    if (!spec || !spec.background) {
        return null;
    }
    const name = i => {
        const p = Array.isArray(pipeline) ? pipeline.find(x => x.index === i && !x.background) : null;
        return p ? `${i} ${p.kind}${p.id && p.id !== p.kind ? ` (${p.id})` : ''}` : null;
    };
    return `background analysis, from ${name(spec.starting_stage) || 'the start'} until ${name(spec.until) || 'the end'}`;
}

export function approvedCount(s) {
    return (s.approvals || []).filter(a => a.decision === 'APPROVE').length;
}

export function waitingText(s, spec) {
    const n = approvedCount(s);
    const min = spec && spec.min_approvals ? spec.min_approvals : 1;
    const who = spec && spec.approvers && spec.approvers.length ? spec.approvers.join(', ') : 'any approver';
    return `Waiting for approval: ${n} of ${min} (${who})`;
}

export function remaining(s, spec, at) {
    const limit = limitOf(s.name, spec);
    if (!limit || s.status !== 'RUNNING' || !s.started_at) {
        return null;
    }
    return Math.max(0, Math.ceil((s.started_at + limit - at) / 1000) * 1000);
}

export function decisionText(d, at) {
    if (FINAL.has(d.status)) {
        if (d.reason) {
            return d.reason;
        }
        if (d.status === 'SUCCESS') {
            return `Succeeded: every stage passed${d.summary ? ` (${d.summary})` : ''}.`;
        }
        return word(d.status);
    }
    if (d.status === 'ROLLING_BACK') {
        return d.reason ? `Rolling back: ${d.reason}` : 'Rolling back';
    }
    const s = (d.stages || []).find(x => x.status === 'RUNNING');
    if (!s) {
        return d.reason || `${word(d.status)}: ${d.summary || ''}`;
    }
    const spec = specOf(d, s.index);
    const left = remaining(s, spec, at);
    if (s.name === 'WAIT_APPROVAL') {
        return waitingText(s, spec) + (left != null ? `; times out in ${duration(left)}` : '');
    }
    if (s.name === 'ANALYSIS') {
        return left != null ? `Analysis: ${duration(left)} left` : `Analysis: running for ${duration(at - s.started_at)}`;
    }
    if (s.name === 'CANARY_STEPS') {
        const text = stepsText(s, spec);
        const pause = awaitingPause(s, spec);
        if (text && s.step && pause) {
            return `Canary steps: ${text}; paused until approved. ${waitingText(s, pause)}`;
        }
        return text && s.step ? `Canary steps: ${text}` : `Running stage ${s.index} CANARY_STEPS`;
    }
    if (s.name === 'WAIT') {
        return left != null ? `Waiting: ${duration(left)} left` : `Waiting for ${duration(at - s.started_at)}`;
    }
    return `Running stage ${s.index} ${s.name}`;
}

export function keysOf(evals) {
    const set = new Set();
    for (const e of evals) {
        for (const k of Object.keys(e.values || {})) {
            set.add(k);
        }
    }
    return [...set].sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
}

// The fixed bound of a check: the API's threshold, else "max N" / "min N" read from the bound.
export function thresholdOf(e) {
    if (e.threshold && (e.threshold.max != null || e.threshold.min != null)) {
        return { max: e.threshold.max ?? null, min: e.threshold.min ?? null };
    }
    const out = { max: null, min: null };
    const re = /\b(max|min) (-?[0-9][0-9.eE+-]*)/g;
    let m;
    while ((m = re.exec(e.bound || ''))) {
        const v = Number(m[2]);
        if (Number.isFinite(v)) {
            out[m[1]] = v;
        }
    }
    return out.max != null || out.min != null ? out : null;
}

export function checkSpec(d, name) {
    for (const p of Array.isArray(d.pipeline) ? d.pipeline : []) {
        for (const c of p.checks || []) {
            if (c.name === name) {
                return c;
            }
        }
    }
    return null;
}

// Every sample as (time in s, value) per series: the API's sample times when it sends them,
// else the samples spaced evenly over the window before the evaluation.
export function chartData(evals, spec) {
    const keys = keysOf(evals);
    const points = new Map(keys.map(k => [k, new Map()]));
    let prevAt = 0;
    for (const e of evals) {
        for (const k of keys) {
            const vals = (e.values && e.values[k]) || [];
            const times = e.times && Array.isArray(e.times[k]) && e.times[k].length === vals.length ? e.times[k] : null;
            const span = (spec && spec.interval_ms) || (prevAt ? e.at - prevAt : 0) || vals.length * 1000;
            vals.forEach((v, i) => {
                const t = times ? times[i] : e.at - span + ((i + 1) * span) / vals.length;
                points.get(k).set(Math.round(t) / 1000, typeof v === 'number' ? v : null);
            });
        }
        prevAt = e.at;
    }
    const xs = [...new Set([].concat(...[...points.values()].map(m => [...m.keys()])))].sort((a, b) => a - b);
    const data = [xs, ...keys.map(k => xs.map(x => (points.get(k).has(x) ? points.get(k).get(x) : null)))];
    return { keys, data };
}

export function valuesText(v) {
    if (!Array.isArray(v) || v.length === 0) {
        return 'no samples';
    }
    if (v.every(x => x === v[0])) {
        return v.length > 1 ? `${num(v[0])} ×${v.length}` : num(v[0]);
    }
    return v.map(num).join(', ');
}
