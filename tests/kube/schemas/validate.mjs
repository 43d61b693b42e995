// Validate Kubernetes objects (JSON files, one object or a List each) against the API's schemas,
// offline: the ajv schemas of kubernetes-models (core and apps), @kubernetes-models/gateway-api
// (HTTPRoute) and @kubernetes-models/istio (VirtualService), pinned in package-lock.json.
//
//   node tests/kube/schemas/validate.mjs FILE...
//
// Prints "ok FILE" or "FAIL FILE: errors" for each file (a List: each item, as FILE#N), exits 1
// when one fails and 2 when the packages are not installed. The packages are looked up in
// $KANARIA_KUBE_SCHEMAS/node_modules, then beside this script, then in build/kube-schemas of the
// repository (where the kube_schemas test installs them with `npm ci`).
//
// Two rules the packages' schemas do not hold are checked too, from the APIs' documentation:
// an object must have a kind and apiVersion this script knows (so nothing passes unchecked),
// and a VirtualService's route destinations have a host and weights of 0-100 that add up to 100
// (istio.io reference, HTTPRouteDestination). Unknown fields are not rejected (the schemas allow
// them).
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [
  process.env.KANARIA_KUBE_SCHEMAS,
  here,
  resolve(here, "../../../build/kube-schemas"),
].filter(Boolean);
const base = candidates.find((d) => existsSync(join(d, "node_modules", "kubernetes-models")));
if (!base) {
  console.error(
    "validate.mjs: the schema packages are not installed: run `npm ci --no-audit --no-fund` " +
      `in a copy of ${here}/package*.json and point KANARIA_KUBE_SCHEMAS at it ` +
      `(looked in: ${candidates.join(", ")})`
  );
  process.exit(2);
}
const require = createRequire(join(base, "package.json"));

// The module holding the class for apiVersion + kind, or null.
function modulePath(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  let version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if (!/^[A-Za-z0-9]+$/.test(kind) || !/^[a-z0-9]+$/.test(version)) {
    return null;
  }
  if (group === "gateway.networking.k8s.io") {
    return `@kubernetes-models/gateway-api/${group}/${version}/${kind}`;
  }
  if (group.endsWith(".istio.io")) {
    // Istio's v1 is v1beta1 promoted unchanged; the pinned package predates it
    if (version === "v1") {
      version = "v1beta1";
    }
    return `@kubernetes-models/istio/${group}/${version}/${kind}`;
  }
  if (!/^[a-z0-9.]*$/.test(group)) {
    return null;
  }
  return `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`;
}

function classFor(apiVersion, kind) {
  const path = modulePath(apiVersion, kind);
  if (!path) {
    return null;
  }
  try {
    return require(path)[kind] ?? null;
  } catch {
    return null;
  }
}

// The documented VirtualService rules the package's schema leaves out.
function istioRules(o) {
  const errors = [];
  (o.spec?.http ?? []).forEach((h, i) => {
    const route = h.route ?? [];
    let sum = 0;
    route.forEach((r, j) => {
      const at = `data/spec/http/${i}/route/${j}`;
      if (typeof r.destination?.host !== "string" || r.destination.host === "") {
        errors.push(`${at}/destination must have required property host`);
      }
      const w = r.weight ?? (route.length === 1 ? 100 : 0);
      if (!Number.isInteger(w) || w < 0 || w > 100) {
        errors.push(`${at}/weight must be an integer between 0 and 100`);
      }
      sum += w;
    });
    if (route.length > 1 && sum !== 100) {
      errors.push(`data/spec/http/${i}/route weights must add up to 100, got ${sum}`);
    }
  });
  return errors;
}

function check(o) {
  if (o === null || typeof o !== "object" || Array.isArray(o)) {
    return ["not an object"];
  }
  if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") {
    return ["must have apiVersion and kind"];
  }
  const Model = classFor(o.apiVersion, o.kind);
  if (!Model) {
    return [`no schema for apiVersion ${o.apiVersion} kind ${o.kind}`];
  }
  const errors = [];
  try {
    // Istio's v1 is checked with the v1beta1 schema (see modulePath)
    const istioV1 = /\.istio\.io\/v1$/.test(o.apiVersion);
    new Model(istioV1 ? { ...o, apiVersion: o.apiVersion + "beta1" } : o).validate();
  } catch (e) {
    errors.push(e.message);
  }
  if (o.kind === "VirtualService") {
    errors.push(...istioRules(o));
  }
  return errors;
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.log(`FAIL ${file}: ${e.message}`);
    failed++;
    continue;
  }
  const items =
    doc && typeof doc.kind === "string" && doc.kind.endsWith("List") && Array.isArray(doc.items)
      ? doc.items.map((o, i) => [`${file}#${i}`, o])
      : [[file, doc]];
  for (const [name, o] of items) {
    const errors = check(o);
    if (errors.length) {
      console.log(`FAIL ${name}: ${errors.join(", ")}`);
      failed++;
    } else {
      console.log(`ok ${name}`);
    }
  }
}
process.exit(failed ? 1 : 0);
