/**
 * A local fake of the BigQuery REST endpoints the export uses (datasets.insert,
 * tables.insert/get/patch, tabledata.insertAll), driven by the real
 * `@google-cloud/bigquery` client through its `apiEndpoint` option.
 *
 * It behaves like BigQuery where the export depends on it: requests must carry
 * a JWT signed by the test service account; rows are checked against the
 * table's schema (unknown columns, missing REQUIRED values and wrong types are
 * `invalid` insertErrors, and then no row of the request is stored); rows are
 * kept by insertId, so a re-sent row replaces nothing. Faults can be queued
 * for the next insertAll calls.
 */
export interface ServiceAccount {
  /** BIGQUERY_CREDENTIALS: a service-account key file as JSON. */
  json: string;
  clientEmail: string;
  privateKeyPem: string;
  publicKey: CryptoKey;
}

/** A fresh RSA service account (nothing here ever reaches Google). */
export async function createServiceAccount(): Promise<ServiceAccount> {
  const pair = await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  );
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = btoa(String.fromCharCode(...pkcs8)).match(/.{1,64}/g)!.join("\n");
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
  const clientEmail = "exporter@test-project.iam.gserviceaccount.com";
  const json = JSON.stringify({
    type: "service_account",
    project_id: "test-project",
    private_key_id: "test-key-1",
    private_key: privateKeyPem,
    client_email: clientEmail,
    token_uri: "https://oauth2.googleapis.com/token",
  });
  return { json, clientEmail, privateKeyPem, publicKey: pair.publicKey };
}

export interface FakeField {
  name: string;
  type: string;
  mode?: string;
}

export interface FakeTable {
  id: string;
  body: Record<string, unknown> & { schema?: { fields: FakeField[] }; view?: { query: string } };
  /** Accepted rows by insertId: what a reader of the table sees after BigQuery's deduplication. */
  rows: Map<string, Record<string, unknown>>;
  /** Every accepted row in arrival order, re-sent copies included. */
  received: { insertId: string; json: Record<string, unknown> }[];
}

/** What the next insertAll call does instead of answering normally. */
export type Fault =
  | { kind: "500" }
  /** Stores the rows, then answers only after `holdMs` (past the client's timeout). */
  | { kind: "slow"; holdMs: number }
  /** Stores the first half of the rows and rejects the rest with a transient reason. */
  | { kind: "partial" }
  /** Never answers (used to kill the app mid-export), storing the rows first if `store`; `onHang` is told. */
  | { kind: "hang"; store: boolean };

export interface InsertCall {
  table: string;
  rows: number;
  at: number;
  status: number;
}

export interface BigQueryFake {
  url: string;
  /** Created datasets by "project.dataset", with the body they were created with. */
  datasets: Map<string, Record<string, unknown>>;
  tables: Map<string, FakeTable>;
  table(name: string): FakeTable;
  inserts: InsertCall[];
  /** Faults for the next insertAll calls, oldest first; `table` limits one to that table. */
  faults: (Fault & { table?: string })[];
  onHang?: () => void;
  /** Requests refused for a bad or missing bearer token. */
  unauthorized: number;
  close(): Promise<void>;
}

const SCOPE = "https://www.googleapis.com/auth/bigquery";

/** Starts the fake on a loopback port; only bearer JWTs signed by `account` are accepted. */
export function startBigQueryFake(account: ServiceAccount): BigQueryFake {
  const hanging = new Set<() => void>();
  const fake: BigQueryFake = {
    url: "",
    datasets: new Map(),
    tables: new Map(),
    table(name) {
      const t = [...fake.tables.values()].find((t) => t.id === name);
      if (!t) throw new Error(`no table ${name} in the fake`);
      return t;
    },
    inserts: [],
    faults: [],
    unauthorized: 0,
    async close() {
      for (const release of hanging) release();
      await server.shutdown();
    },
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" ? null : await req.json().catch(() => null);
    if (!(await authorized(req.headers.get("authorization"), account))) {
      fake.unauthorized++;
      return apiError(401, "Request had invalid authentication credentials.", "unauthorized");
    }
    const parts = url.pathname.replace(/^\/bigquery\/v2\//, "").split("/");
    // projects/:p/datasets[/:d/tables[/:t[/insertAll]]]
    const [, project, , dataset, , table, action] = parts;
    if (parts[0] !== "projects" || parts[2] !== "datasets") return apiError(404, "Not found", "notFound");

    if (parts.length === 3 && req.method === "POST") {
      const id = body?.datasetReference?.datasetId;
      if (fake.datasets.has(`${project}.${id}`)) {
        return apiError(409, `Already Exists: Dataset ${project}:${id}`, "duplicate");
      }
      fake.datasets.set(`${project}.${id}`, body);
      return Response.json({ kind: "bigquery#dataset", id: `${project}:${id}`, ...body });
    }
    if (!fake.datasets.has(`${project}.${dataset}`)) {
      return apiError(404, `Not found: Dataset ${project}:${dataset}`, "notFound");
    }
    const key = (t: string) => `${project}.${dataset}.${t}`;

    if (parts.length === 5 && req.method === "POST") {
      const id = body?.tableReference?.tableId;
      if (fake.tables.has(key(id))) {
        return apiError(409, `Already Exists: Table ${project}:${dataset}.${id}`, "duplicate");
      }
      fake.tables.set(key(id), { id, body, rows: new Map(), received: [] });
      return Response.json({ kind: "bigquery#table", id: `${project}:${dataset}.${id}`, ...body });
    }
    const t = fake.tables.get(key(table));
    if (!t) return apiError(404, `Not found: Table ${project}:${dataset}.${table}`, "notFound");
    if (parts.length === 6 && req.method === "GET") return Response.json({ kind: "bigquery#table", ...t.body });
    if (parts.length === 6 && req.method === "PATCH") {
      t.body = { ...t.body, ...body };
      return Response.json({ kind: "bigquery#table", ...t.body });
    }
    if (parts.length === 7 && action === "insertAll" && req.method === "POST") {
      const res = await insertAll(t, body?.rows ?? []);
      fake.inserts.push({ table: t.id, rows: body?.rows?.length ?? 0, at: Date.now(), status: res.status });
      return res;
    }
    return apiError(404, "Not found", "notFound");
  });
  fake.url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;

  async function insertAll(t: FakeTable, rows: { insertId?: string; json: Record<string, unknown> }[]) {
    const i = fake.faults.findIndex((f) => !f.table || f.table === t.id);
    const fault = i >= 0 ? fake.faults.splice(i, 1)[0] : undefined;
    if (fault?.kind === "500") return apiError(500, "An internal error occurred.", "backendError");

    const invalid = rows.map((r) => validateRow(t.body.schema?.fields ?? [], r.json));
    if (invalid.some((m) => m !== null)) {
      // BigQuery's default (skipInvalidRows=false): one bad row stops the whole request.
      return Response.json({
        kind: "bigquery#tableDataInsertAllResponse",
        insertErrors: invalid.map((m, index) => ({
          index,
          errors: [m ? { reason: "invalid", message: m } : { reason: "stopped", message: "" }],
        })),
      });
    }
    const store = (r: (typeof rows)[number]) => {
      const insertId = r.insertId ?? crypto.randomUUID();
      t.received.push({ insertId, json: r.json });
      if (!t.rows.has(insertId)) t.rows.set(insertId, r.json);
    };
    if (fault?.kind === "partial") {
      const kept = Math.ceil(rows.length / 2);
      rows.slice(0, kept).forEach(store);
      return Response.json({
        kind: "bigquery#tableDataInsertAllResponse",
        insertErrors: rows.slice(kept).map((_, j) => ({
          index: kept + j,
          errors: [{ reason: "backendError", message: "Transient failure, retry the row." }],
        })),
      });
    }
    if (fault?.kind !== "hang" || fault.store) rows.forEach(store);
    if (fault?.kind === "slow") await new Promise((r) => setTimeout(r, fault.holdMs));
    if (fault?.kind === "hang") {
      fake.onHang?.();
      await new Promise<void>((r) => hanging.add(r));
      return apiError(503, "Shutting down", "backendError");
    }
    return Response.json({ kind: "bigquery#tableDataInsertAllResponse" });
  }

  return fake;
}

function apiError(code: number, message: string, reason: string): Response {
  return Response.json({ error: { code, message, errors: [{ reason, message }] } }, { status: code });
}

/** Checks a streaming row against a table schema the way BigQuery does; the error message, or null. */
export function validateRow(fields: FakeField[], json: Record<string, unknown>): string | null {
  const byName = new Map(fields.map((f) => [f.name, f]));
  for (const name of Object.keys(json)) if (!byName.has(name)) return `no such field: ${name}.`;
  for (const f of fields) {
    const v = json[f.name];
    if (v === null || v === undefined) {
      if (f.mode === "REQUIRED") return `Missing required field: ${f.name}.`;
      continue;
    }
    const ok = (() => {
      switch (f.type) {
        case "STRING":
          return typeof v === "string";
        case "INTEGER":
        case "INT64":
          return Number.isSafeInteger(v) || (typeof v === "string" && /^-?\d+$/.test(v));
        case "TIMESTAMP":
          return (typeof v === "string" && !Number.isNaN(Date.parse(v))) || typeof v === "number";
        case "JSON":
          try {
            JSON.parse(v as string);
            return typeof v === "string";
          } catch {
            return false;
          }
        default:
          return false;
      }
    })();
    if (!ok) return `Cannot convert value to ${f.type.toLowerCase()}: ${f.name}.`;
  }
  return null;
}

/** Verifies a self-signed service-account JWT (RS256) with the BigQuery scope, as Google's front end would. */
async function authorized(header: string | null, account: ServiceAccount): Promise<boolean> {
  const token = header?.match(/^Bearer (.+)$/)?.[1];
  if (!token) return false;
  const [h, p, s] = token.split(".");
  if (!h || !p || !s) return false;
  const decode = (part: string) =>
    Uint8Array.from(atob(part.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  try {
    const valid = await crypto.subtle.verify(
      "RSASSA-PKCS1-v1_5",
      account.publicKey,
      decode(s),
      new TextEncoder().encode(`${h}.${p}`),
    );
    const claims = JSON.parse(new TextDecoder().decode(decode(p)));
    const now = Date.now() / 1000;
    return valid && claims.iss === account.clientEmail && String(claims.scope).split(" ").includes(SCOPE) &&
      claims.exp > now;
  } catch {
    return false;
  }
}
