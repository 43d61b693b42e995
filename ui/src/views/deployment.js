// #/deployments/ID: the decision first, in the engine's words; then the pipeline's stages with
// live status and time, the traffic now, approvals, the analysis, the log and the plan.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, appPath } from '../api.js';
import { deploymentDuration, duration, tone, word } from '../format.js';
import { approvedCount, awaitingPause, backgroundText, decisionText, logLines, remaining, specOf, stepsText, trafficText } from '../model.js';
import { appHref } from '../router.js';
import { deployment, now, refreshSoon, roleAtLeast, session } from '../store.js';
import { Analysis } from './analysis.js';
import { Commit, ErrorLine, Loading } from './common.js';
import { Dialog } from './dialog.js';
import { Ago, Clock } from './time.js';
import { Traffic } from './traffic.js';

function Decision({ d }) {
    const text = decisionText(d, now.value);
    return html`
        <section class="decision ${tone(d.status)}" data-testid="decision" aria-labelledby="decision-h">
            <h2 id="decision-h">Decision</h2>
            <p><span class="badge ${tone(d.status)}">${word(d.status)}</span> <span class="why">${text}</span></p>
        </section>`;
}

function mayApprove(spec) {
    if (!roleAtLeast('approver')) {
        return false;
    }
    const list = spec && Array.isArray(spec.approvers) ? spec.approvers : [];
    const user = session.value && session.value.user;
    return list.length === 0 || (user != null && list.includes(user));
}

function Stage({ d, s, spec, lines, onDecide }) {
    const at = now.value;
    const elapsed = s.started_at ? (s.finished_at || at) - s.started_at : null;
    const left = remaining(s, spec, at);
    const kind = s.name;
    const approveBtn = useRef(null);
    const rejectBtn = useRef(null);
    let weights = null;
    if (kind === 'TRAFFIC_ROUTING') {
        if (spec && spec.weights) {
            weights = trafficText(spec.weights);
        } else {
            const l = lines.find(x => /^routing traffic: /.test(x.e.message));
            weights = l ? l.e.message.replace(/^routing traffic: /, '').replace(/, /g, ' · ') : null;
        }
    }
    if (kind === 'CANARY_STEPS') {
        weights = stepsText(s, spec);
    }
    const span = backgroundText(spec, d.pipeline);
    // who decides: a WAIT_APPROVAL's list, or that of the CANARY_STEPS pause it holds at
    const pause = kind === 'CANARY_STEPS' ? awaitingPause(s, spec) : null;
    const decides = kind === 'WAIT_APPROVAL' ? spec : pause;
    const approvals = s.approvals || [];
    const running = s.status === 'RUNNING';
    return html`
        <li data-testid="stage" data-index=${s.index} data-status=${s.status} class="stage ${tone(s.status)}">
            <h3><span class="index">${s.index}</span> ${kind}${spec && spec.id ? html` <span class="muted">${spec.id}</span>` : null}</h3>
            <p><span class="badge ${tone(s.status)}">${word(s.status)}</span></p>
            ${elapsed != null ? html`<p class="small">${running ? 'running for' : 'took'} ${duration(elapsed)}</p>` : null}
            ${left != null ? html`<p class="small">${duration(left)} left</p>` : null}
            ${weights ? html`<p class="small">${weights}</p>` : null}
            ${span ? html`<p class="small">${span}</p>` : null}
            ${kind === 'WAIT_APPROVAL' ? html`
                <p class="small">${approvedCount(s)} of ${spec && spec.min_approvals ? spec.min_approvals : 1}${spec && spec.approvers && spec.approvers.length ? ` (${spec.approvers.join(', ')})` : ''}</p>` : null}
            ${approvals.length ? html`<ul class="approvals small">${approvals.map(a => html`
                <li key=${`${a.who}-${a.at}`}>${a.decision === 'REJECT' ? 'rejected' : 'approved'} by ${a.who}${a.reason ? `: ${a.reason}` : ''}</li>`)}</ul>` : null}
            ${s.reason ? html`<p class="small reason">${s.reason}</p>` : null}
            ${pause ? html`<p class="small">paused until approved: ${approvedCount(s)} of ${pause.min_approvals || 1}${pause.approvers && pause.approvers.length ? ` (${pause.approvers.join(', ')})` : ''}</p>` : null}
            ${decides && running && mayApprove(decides) ? html`
                <div class="buttons">
                    <button type="button" class="primary" ref=${approveBtn} onClick=${() => onDecide('approve', s, approveBtn)}>Approve</button>
                    <button type="button" ref=${rejectBtn} onClick=${() => onDecide('reject', s, rejectBtn)}>Reject</button>
                </div>` : null}
        </li>`;
}

function Log({ lines, events }) {
    return html`
        <section data-testid="log" aria-labelledby="log-h">
            <h2 id="log-h">Log</h2>
            ${lines.length ? html`
                <ol class="log">${lines.map(({ e, stage }) => html`
                    <li key=${e.id}><${Clock} t=${e.at} /> ${stage ? html`<span class="muted">[${stage.index} ${stage.name}]</span> ` : null}${e.message}</li>`)}
                </ol>` : html`<p class="muted">No log lines yet.</p>`}
            <details>
                <summary>Every event (${events.length})</summary>
                <ol class="log">${events.map(e => html`
                    <li key=${e.id}><${Clock} t=${e.at} /> ${e.type} <span class="muted">by ${e.actor}</span>${e.message ? `: ${e.message}` : ''}</li>`)}
                </ol>
            </details>
        </section>`;
}

function Plan({ plan }) {
    const diff = plan && Array.isArray(plan.diff) ? plan.diff : [];
    return html`
        <section data-testid="plan" aria-labelledby="plan-h">
            <h2 id="plan-h">Plan</h2>
            ${plan && plan.summary ? html`<p>${plan.summary}</p>` : null}
            ${diff.length === 0 ? html`<p class="muted">No structural changes recorded.</p>` : diff.map((r, i) => html`
                <div class="diff" key=${i}>
                    <h3>${r.kind} ${r.name} <span class="muted">(${r.op})</span></h3>
                    ${Array.isArray(r.fields) && r.fields.length ? html`
                        <ul>${r.fields.map((f, j) => html`
                            <li key=${j}><code>${f.path}</code>: ${f.old == null ? '(none)' : String(f.old)} → ${f.new == null ? '(none)' : String(f.new)}</li>`)}
                        </ul>` : null}
                </div>`)}
        </section>`;
}

function Took({ d }) {
    return duration(deploymentDuration(d, now.value)) || 'not started';
}

export function Deployment({ id }) {
    const { key, data: d, error, app } = deployment.value;
    const [decide, setDecide] = useState(null);
    useEffect(() => {
        document.title = `Deployment #${id} · kanaria`;
    }, [id]);
    if (key !== id || !d) {
        return html`<h1>Deployment #${id}</h1><${ErrorLine} text=${key === id ? error : ''} />${key === id && error ? null : html`<${Loading} />`}`;
    }
    const lines = logLines(d);
    const stages = d.stages || [];
    const onDecide = (kind, s, opener) => setDecide({ kind, s, opener });
    return html`
        <h1>Deployment #${d.id} of ${d.app}</h1>
        <${ErrorLine} text=${error} />
        <${Decision} d=${d} />
        <dl class="facts">
            <div><dt>App</dt><dd><a href=${appHref(d.repo, d.app)}>${d.app}</a> <span class="muted">in ${d.repo}</span></dd></div>
            <div><dt>Commit</dt><dd><${Commit} sha=${d.commit} /> <span class="message">${d.message}</span></dd></div>
            <div><dt>Author</dt><dd>${d.author}</dd></div>
            <div><dt>Strategy</dt><dd>${word(d.strategy)} <span class="muted">(${d.trigger})</span></dd></div>
            <div><dt>Started</dt><dd><${Ago} t=${d.started_at || d.created_at} /></dd></div>
            <div><dt>Duration</dt><dd><${Took} d=${d} /></dd></div>
            <div><dt>Traffic now</dt><dd><${Traffic} app=${app} /></dd></div>
        </dl>
        <section aria-labelledby="pipeline-h">
            <h2 id="pipeline-h">Pipeline</h2>
            ${d.summary ? html`<p>${d.summary}</p>` : null}
            <ol aria-label="Pipeline" class="pipeline">
                ${stages.map(s => html`<${Stage} key=${s.index} d=${d} s=${s} spec=${specOf(d, s.index)}
                    lines=${lines.filter(l => l.stage && l.stage.index === s.index)} onDecide=${onDecide} />`)}
            </ol>
        </section>
        <${Analysis} d=${d} />
        <${Log} lines=${lines} events=${d.events || []} />
        <${Plan} plan=${d.plan} />
        ${decide ? html`
            <${Dialog} title=${`${decide.kind === 'approve' ? 'Approve' : 'Reject'} stage ${decide.s.index} ${decide.s.name}`}
                opener=${decide.opener} onClose=${() => setDecide(null)}
                onConfirm=${async f => {
                    const reason = (f.get('reason') || '').trim();
                    await api(appPath(d.repo, d.app, decide.kind), { method: 'POST', body: reason ? { reason } : {} });
                    refreshSoon();
                }}>
                <label for="decide-reason">${decide.kind === 'approve' ? 'Reason (optional)' : 'Reason'}</label>
                <textarea id="decide-reason" name="reason" rows="3" required=${decide.kind === 'reject'}></textarea>
            <//>` : null}`;
}
