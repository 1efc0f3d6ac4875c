// Drives Herald with fhir-kit-client, a widely used FHIR client nobody here
// wrote. Run by internal/api's TestFHIRKitClient, which starts Herald and
// passes its base URL, a token and what it configured in the environment.
// Any failed check or client error exits non-zero.
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const client = new Client({ baseUrl: env('HERALD_BASE'), bearerToken: env('HERALD_TOKEN') });
let passed = 0;
const step = async (name, fn) => {
  try {
    await fn();
    passed++;
    console.log(`ok ${name}`);
  } catch (err) {
    console.error(`FAIL ${name}: ${err.message}`);
    if (err.response) console.error(`  status ${err.response.status}: ${JSON.stringify(err.response.data)}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
};
const ids = (bundle) => (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').map((e) => e.resource.id);
const status = async (promise) => {
  try {
    await promise;
    return 200;
  } catch (err) {
    return err.response?.status ?? 0;
  }
};

const mrn = { system: 'urn:herald:e2e', value: `mrn-${Date.now()}` };
let patient;

await step('smartAuthMetadata finds the token endpoint', async () => {
  const auth = await client.smartAuthMetadata();
  assert.equal(String(auth.tokenUrl), env('HERALD_TOKEN_URL'));
});

await step('capabilityStatement', async () => {
  const cs = await client.capabilityStatement();
  assert.equal(cs.fhirVersion, '4.0.1');
});

await step('create, read, vread', async () => {
  patient = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [mrn], active: true } });
  assert.ok(patient.id);
  const read = await client.read({ resourceType: 'Patient', id: patient.id });
  assert.equal(read.meta.versionId, '1');
  const v1 = await client.vread({ resourceType: 'Patient', id: patient.id, version: '1' });
  assert.deepEqual(v1.identifier, [mrn]);
});

await step('update and patch', async () => {
  const updated = await client.update({ resourceType: 'Patient', id: patient.id, body: { ...patient, active: false } });
  assert.equal(updated.meta.versionId, '2');
  const patched = await client.patch({ resourceType: 'Patient', id: patient.id, jsonPatch: [{ op: 'add', path: '/gender', value: 'female' }] });
  assert.equal(patched.meta.versionId, '3');
  assert.equal(patched.gender, 'female');
  assert.equal(patched.active, false);
});

await step('conditional create returns the existing resource', async () => {
  const again = await client.create({
    resourceType: 'Patient',
    body: { resourceType: 'Patient', identifier: [mrn] },
    options: { headers: { 'If-None-Exist': `identifier=${mrn.system}|${mrn.value}` } },
  });
  assert.equal(again.id, patient.id);
  const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${mrn.system}|${mrn.value}` } });
  assert.deepEqual(ids(found), [patient.id]);
});

const observations = [];
await step('search with paging both ways and _include', async () => {
  for (let i = 0; i < 5; i++) {
    const o = await client.create({
      resourceType: 'Observation',
      body: { resourceType: 'Observation', status: 'final', code: { text: `o${i}` }, subject: { reference: `Patient/${patient.id}` } },
    });
    observations.push(o.id);
  }
  const page1 = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patient.id}`, _count: 2 } });
  const page2 = await client.nextPage({ bundle: page1 });
  const page3 = await client.nextPage({ bundle: page2 });
  assert.equal(await client.nextPage({ bundle: page3 }), undefined);
  assert.deepEqual([...ids(page1), ...ids(page2), ...ids(page3)], [...observations].sort());
  const back = await client.prevPage({ bundle: page3 });
  assert.deepEqual(ids(back), ids(page2));
  assert.deepEqual(ids(await client.prevPage({ bundle: back })), ids(page1));

  const withPatient = await client.search({ resourceType: 'Observation', searchParams: { _id: observations[0], _include: 'Observation:subject' } });
  assert.deepEqual(withPatient.entry.map((e) => `${e.search.mode} ${e.resource.resourceType}`), ['match Observation', 'include Patient']);

  const sorted = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patient.id}`, _sort: '-_lastUpdated', _total: 'accurate' } });
  assert.equal(sorted.total, 5);
  const inCompartment = await client.search({ resourceType: 'Observation', compartment: { resourceType: 'Patient', id: patient.id } });
  assert.equal(inCompartment.total, 5);
});

await step('history: instance, type and system', async () => {
  const own = await client.history({ resourceType: 'Patient', id: patient.id });
  assert.deepEqual(own.entry.map((e) => e.resource.meta.versionId), ['3', '2', '1']);
  const type = await client.typeHistory({ resourceType: 'Observation' });
  assert.ok(type.entry.length >= 5);
  const all = await client.systemHistory();
  assert.equal(all.type, 'history');
});

await step('batch and transaction', async () => {
  const batch = await client.batch({
    body: {
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${patient.id}` } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
      ],
    },
  });
  assert.deepEqual(batch.entry.map((e) => e.response.status.split(' ')[0]), ['200', '404']);
  const urn = 'urn:uuid:2b5d0f8e-7c4a-4f7e-9a51-0d3c6f1b2e41';
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: urn, resource: { resourceType: 'Patient', identifier: [mrn] }, request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${mrn.system}|${mrn.value}` } },
        { resource: { resourceType: 'Encounter', status: 'planned', class: { code: 'AMB' }, subject: { reference: urn } }, request: { method: 'POST', url: 'Encounter' } },
      ],
    },
  });
  assert.deepEqual(tx.entry.map((e) => e.response.status.split(' ')[0]), ['200', '201']);
  assert.equal(tx.entry[1].resource.subject.reference, `Patient/${patient.id}`);
});

await step('delete, then read is 410', async () => {
  await client.delete({ resourceType: 'Observation', id: observations[0] });
  assert.equal(await status(client.read({ resourceType: 'Observation', id: observations[0] })), 410);
});

await step('Subscription $status and $events', async () => {
  const sub = await client.create({ resourceType: 'Subscription', body: JSON.parse(env('HERALD_SUBSCRIPTION')) });
  const st = await client.operation({ name: '$status', resourceType: 'Subscription', id: sub.id, method: 'GET' });
  assert.equal(st.resourceType, 'Bundle');
  assert.equal(st.entry[0].resource.resourceType, 'Parameters');
  const events = await client.operation({ name: '$events', resourceType: 'Subscription', id: sub.id, method: 'GET' });
  assert.equal(events.resourceType, 'Bundle');
});

console.log(`${passed} passed, 0 failed`);
