// The Analysis region: per check, a uPlot chart of the canary's samples against the primary's
// (or the baseline's) with the threshold line, a table of every evaluation as the chart's text
// equivalent, and the query as sent. The chart's colours come from CSS variables and it is
// drawn again when the colour scheme changes.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { num, tone } from '../format.js';
import { chartData, checkSpec, keysOf, thresholdOf, valuesText } from '../model.js';
import { scheme } from '../store.js';
import { Clock } from './time.js';

function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function Chart({ evals, spec, threshold, name }) {
    const box = useRef(null);
    const dark = scheme.value;
    /* redrawn only when what it shows changes, not on every render of the page */
    const sig = JSON.stringify([evals.map(e => [e.id, e.values, e.times || null]), spec, threshold]);
    useEffect(() => {
        const el = box.current;
        if (!el) {
            return undefined;
        }
        const { keys, data } = chartData(evals, spec);
        if (data[0].length === 0) {
            return undefined;
        }
        const colours = { canary: css('--chart-canary'), primary: css('--chart-primary'), baseline: css('--chart-baseline') };
        const fg = css('--fg-muted');
        const grid = css('--chart-grid');
        const series = [{}];
        keys.forEach((k, i) => {
            series.push({
                label: k, stroke: colours[k] || css('--chart-primary'), width: 2, spanGaps: true,
                dash: i === 0 ? undefined : [6, 3], points: { show: true, size: 5 },
            });
        });
        for (const which of ['max', 'min']) {
            if (threshold && threshold[which] != null) {
                series.push({ label: `${which} ${threshold[which]}`, stroke: css('--chart-threshold'), width: 1.5, dash: [2, 4], points: { show: false } });
                data.push(data[0].map(() => threshold[which]));
            }
        }
        const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
        const opts = {
            width: Math.max(240, el.clientWidth || 600),
            height: 220,
            title: '',
            legend: { show: false },
            cursor: { show: false },
            series,
            axes: [Object.assign({ space: 80 }, axis), Object.assign({ size: 60, values: (u, vals) => vals.map(v => num(v)) }, axis)],
            scales: {
                x: { time: true },
                /* from 0 when no sample is negative; a flat series of zeros gets a height */
                y: { range: (u, lo, hi) => [Math.min(0, lo), hi > Math.min(0, lo) ? hi * 1.1 : 1] },
            },
        };
        const u = new uPlot(opts, data, el);
        let ro = null;
        if (window.ResizeObserver) {
            ro = new ResizeObserver(() => {
                const w = Math.max(240, el.clientWidth);
                if (w !== u.width) {
                    u.setSize({ width: w, height: 220 });
                }
            });
            ro.observe(el);
        }
        return () => {
            if (ro) {
                ro.disconnect();
            }
            u.destroy();
        };
    }, [sig, dark, name]);
    return html`<div class="chart" ref=${box} aria-hidden="true"></div>`;
}

function Check({ d, name, evals }) {
    const last = evals[evals.length - 1];
    const spec = checkSpec(d, name);
    const threshold = thresholdOf(last) ||
        (spec && (spec.max != null || spec.min != null) ? { max: spec.max ?? null, min: spec.min ?? null } : null);
    const keys = keysOf(evals);
    return html`
        <figure data-testid="check" data-check=${name} class="check">
            <figcaption>
                <strong>${name}</strong>: <span class="badge ${tone(last.verdict)}">${last.verdict}</span>
                ${' '}<span class="bound">${last.bound}</span>
                <span class="muted"> (${evals.length} evaluation${evals.length === 1 ? '' : 's'}${spec && spec.strategy ? `, ${spec.strategy}` : ''})</span>
            </figcaption>
            <ul class="legend" aria-label=${`Series of ${name}`}>
                ${keys.map((k, i) => html`<li key=${k}><span class=${`swatch s-${k} ${i ? 'dashed' : ''}`}></span>${k}</li>`)}
                ${threshold ? html`<li><span class="swatch s-threshold dotted"></span>${threshold.max != null ? `max ${threshold.max}` : ''}${threshold.max != null && threshold.min != null ? ', ' : ''}${threshold.min != null ? `min ${threshold.min}` : ''}</li>` : null}
            </ul>
            <${Chart} evals=${evals} spec=${spec} threshold=${threshold} name=${name} />
            <div class="scroll" tabindex="0" role="region" aria-label=${`Evaluations of ${name}`}>
                <table>
                    <caption class="sr-only">Evaluations of ${name}</caption>
                    <thead><tr><th scope="col">Time</th><th scope="col">Verdict</th><th scope="col">Bound</th><th scope="col">Values</th></tr></thead>
                    <tbody>${evals.map(e => html`
                        <tr key=${e.id}>
                            <td><${Clock} t=${e.at} /></td>
                            <td><span class="badge ${tone(e.verdict)}">${e.verdict}</span></td>
                            <td>${e.bound}</td>
                            <td>${Object.keys(e.values || {}).map(k => html`<div key=${k}>${k}: ${valuesText(e.values[k])}</div>`)}</td>
                        </tr>`)}
                    </tbody>
                </table>
            </div>
            <details>
                <summary>Query</summary>
                <pre>${last.query}</pre>
            </details>
        </figure>`;
}

export function Analysis({ d }) {
    const byCheck = new Map();
    for (const s of d.stages || []) {
        for (const e of s.analysis || []) {
            if (!byCheck.has(e.check)) {
                byCheck.set(e.check, []);
            }
            byCheck.get(e.check).push(e);
        }
    }
    for (const list of byCheck.values()) {
        list.sort((a, b) => a.at - b.at || a.id - b.id);
    }
    const hasStage = (d.stages || []).some(s => s.name === 'ANALYSIS');
    if (!hasStage && byCheck.size === 0) {
        return null;
    }
    return html`
        <section data-testid="analysis" aria-labelledby="analysis-h">
            <h2 id="analysis-h">Analysis</h2>
            ${byCheck.size === 0 ? html`<p class="muted">No evaluation yet.</p>` : [...byCheck.entries()].map(([name, evals]) => html`
                <${Check} key=${name} d=${d} name=${name} evals=${evals} />`)}
        </section>`;
}
