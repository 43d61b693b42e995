// What the pages compute from the API's answers: status words, the decision's text, the log's
// stages, thresholds and the chart's series.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appStatus, awaitingPause, backgroundText, chartData, decisionText, logLines, remaining, stepsText, thresholdOf, trafficText, valuesText } from '../model.js';
import { agoText, duration, num, short, word } from '../format.js';

test('the server\'s status word wins; without it the same rules apply here, first that holds', () => {
    assert.equal(appStatus({ status: 'SYNCED', error: 'x' }), 'SYNCED');
    assert.equal(appStatus({ latest: { status: 'RUNNING' }, error: 'bad' }), 'DEPLOYING');
    assert.equal(appStatus({ error: 'a.yaml:1: bad', drift: 'x' }), 'INVALID');
    assert.equal(appStatus({ orphaned: true, drift: 'x' }), 'ORPHANED');
    assert.equal(appStatus({ drift: 'x', rolled_back_from: 'abc' }), 'OUT_OF_SYNC');
    assert.equal(appStatus({ rolled_back_from: 'abc', last_good: 'def', latest: { status: 'FAILURE' } }), 'ROLLED_BACK');
    assert.equal(appStatus({ last_good: 'def', latest: { status: 'SUCCESS' } }), 'SYNCED');
    assert.equal(appStatus({ last_good: '', latest: null }), 'NEW');
});

test('a bound\'s threshold: the API\'s when given, else read from "max N" or "min N"', () => {
    assert.deepEqual(thresholdOf({ bound: 'max 0.05' }), { max: 0.05, min: null });
    assert.deepEqual(thresholdOf({ bound: 'min 10, max 2e3' }), { max: 2000, min: 10 });
    assert.deepEqual(thresholdOf({ bound: 'x', threshold: { max: null, min: 3 } }), { max: null, min: 3 });
    assert.equal(thresholdOf({ bound: 'U 48.0, p 0.002774, alpha 0.05, effect 1.215 (100.0%)' }), null);
});

test('samples without times are spread evenly over the interval before the evaluation', () => {
    const evals = [
        { at: 10000, values: { canary: [1, 2], primary: [5, 5, 5, 5] } },
        { at: 14000, values: { canary: [3, 4] } },
    ];
    const { keys, data } = chartData(evals, { interval_ms: 4000 });
    assert.deepEqual(keys, ['canary', 'primary']);
    assert.deepEqual(data[0], [7, 8, 9, 10, 12, 14]);
    assert.deepEqual(data[1], [null, 1, null, 2, 3, 4]);
    assert.deepEqual(data[2], [5, 5, 5, 5, null, null]);
});

test('sample times from the API place the samples; series come canary first', () => {
    const { keys, data } = chartData([{
        at: 9000, values: { baseline: [1], canary: [2] }, times: { baseline: [8000], canary: [8500] },
    }], null);
    assert.deepEqual(keys, ['canary', 'baseline']);
    assert.deepEqual(data, [[8, 8.5], [null, 2], [1, null]]);
});

test('the decision: the reason when final, else what the running stage waits for', () => {
    const base = { status: 'RUNNING', reason: '', summary: 's' };
    assert.equal(decisionText({ ...base, status: 'FAILURE', reason: 'stage ANALYSIS failed: x' }, 0),
        'stage ANALYSIS failed: x');
    assert.match(decisionText({ ...base, status: 'SUCCESS' }, 0), /^Succeeded/);
    const waiting = {
        ...base,
        pipeline: [{ index: 3, kind: 'WAIT_APPROVAL', timeout_ms: 600000, approvers: ['alice'], min_approvals: 1 }],
        stages: [{ index: 3, name: 'WAIT_APPROVAL', status: 'RUNNING', started_at: 1000, approvals: [] }],
    };
    assert.equal(decisionText(waiting, 1000), 'Waiting for approval: 0 of 1 (alice); times out in 10m 00s');
    const analysing = {
        ...base,
        pipeline: [{ index: 2, kind: 'ANALYSIS', duration_ms: 15000 }],
        stages: [{ index: 2, name: 'ANALYSIS', status: 'RUNNING', started_at: 1000, approvals: [] }],
    };
    assert.equal(decisionText(analysing, 4000), 'Analysis: 12s left');
    assert.equal(decisionText({ ...analysing, pipeline: null }, 4000), 'Analysis: running for 3s');
    assert.equal(remaining(analysing.stages[0], analysing.pipeline[0], 20000), 0);
});

test('log lines carry the stage that was running when they were written', () => {
    const lines = logLines({ events: [
        { id: 1, type: 'STAGE_STARTED', message: 'stage 0 CANARY_ROLLOUT: RUNNING' },
        { id: 2, type: 'STAGE_LOG', message: 'starting abc as the canary' },
        { id: 3, type: 'STAGE_STARTED', message: 'stage 7 ROLLBACK: RUNNING' },
        { id: 4, type: 'STAGE_LOG', message: 'traffic back to the primary' },
    ] });
    assert.deepEqual(lines.map(l => [l.e.id, l.stage.index, l.stage.name]), [[2, 0, 'CANARY_ROLLOUT'], [4, 7, 'ROLLBACK']]);
});

test('words, numbers, durations and commits as the pages print them', () => {
    assert.equal(trafficText({ primary: 70, canary: 30, baseline: 0 }), 'primary 70% · canary 30%');
    assert.equal(valuesText([0, 0, 0]), '0 ×3');
    assert.equal(valuesText([0.20117608083485172, 1]), '0.2012, 1');
    assert.equal(num(0.3611111111111111), '0.3611');
    assert.equal(valuesText([0.5, null]), '0.5, no value');
    assert.equal(duration(8121), '8.1s');
    assert.equal(duration(65000), '1m 05s');
    assert.equal(duration(7380000), '2h 03m');
    assert.equal(agoText(0, 90000), '1m ago');
    assert.equal(short('27ee6e0776c4f0286b16a4b1e80592715ef3564d'), '27ee6e0');
    assert.equal(word('ROLLING_BACK'), 'Rolling back');
});

test('a CANARY_STEPS stage shows its steps, and the step it is on while it runs', () => {
    const spec = { index: 1, kind: 'CANARY_STEPS', steps: [10, 20, 50] };
    assert.equal(stepsText({ status: 'SUCCESS', step: 3 }, spec), '10% → 20% → 50%');
    assert.equal(stepsText({ status: 'RUNNING', step: 2 }, spec), 'step 2 of 3: canary 20% (10% → 20% → 50%)');
    assert.equal(stepsText({ status: 'RUNNING' }, spec), '10% → 20% → 50%');
    assert.equal(stepsText({ status: 'RUNNING', step: 2 }, { kind: 'CANARY_STEPS' }), null);
    const d = {
        status: 'RUNNING',
        pipeline: [{ index: 0, kind: 'CANARY_ROLLOUT' }, spec],
        stages: [{ index: 0, name: 'CANARY_ROLLOUT', status: 'SUCCESS' },
                 { index: 1, name: 'CANARY_STEPS', status: 'RUNNING', step: 1, started_at: 1000 }],
    };
    assert.equal(decisionText(d, 2000), 'Canary steps: step 1 of 3: canary 10% (10% → 20% → 50%)');
});

test('a CANARY_STEPS paused until approved says who may approve, and how many have', () => {
    const spec = { index: 1, kind: 'CANARY_STEPS', steps: [10, 20],
                   pauses: [{ step: 1, until_approved: true, approvers: ['alice'], min_approvals: 1 },
                            { step: 2, duration_ms: 60000 }] };
    const s = { index: 1, name: 'CANARY_STEPS', status: 'RUNNING', step: 1, awaiting_approval: true, started_at: 1000 };
    assert.deepEqual(awaitingPause(s, spec), spec.pauses[0]);
    assert.equal(awaitingPause({ ...s, awaiting_approval: undefined }, spec), null);
    assert.equal(awaitingPause({ ...s, step: 2 }, spec), null);
    const d = { status: 'RUNNING', pipeline: [spec], stages: [s] };
    assert.equal(decisionText(d, 2000),
        'Canary steps: step 1 of 2: canary 10% (10% → 20%); paused until approved. Waiting for approval: 0 of 1 (alice)');
});

test('a background analysis names the stages it runs between', () => {
    const pipeline = [
        { index: 0, kind: 'CANARY_ROLLOUT' },
        { index: 1, kind: 'TRAFFIC_ROUTING', id: 'testers' },
        { index: 2, kind: 'PRIMARY_ROLLOUT' },
        { index: 4, kind: 'ANALYSIS', background: true, starting_stage: 1, until: 2 },
    ];
    assert.equal(backgroundText(pipeline[3], pipeline),
        'background analysis, from 1 TRAFFIC_ROUTING (testers) until 2 PRIMARY_ROLLOUT');
    assert.equal(backgroundText({ background: true, starting_stage: 0, until: 3 }, pipeline.slice(0, 3)),
        'background analysis, from 0 CANARY_ROLLOUT until the end');
    assert.equal(backgroundText(pipeline[1], pipeline), null);
});
