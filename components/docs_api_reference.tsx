import type { JSX } from "preact";
import {
  HTTP_METHODS,
  type JsonSchema,
  type MediaType,
  type OpenApiDocument,
  type Operation,
  type PathItem,
} from "../lib/docs/openapi.ts";

/**
 * The API reference, rendered from the generated OpenAPI document itself
 * (never written by hand), so the page says exactly what /openapi.json says.
 */
export function ApiReference(props: { spec: OpenApiDocument; specHref: string }) {
  const { spec } = props;
  const ops = operations(spec.paths);
  const hooks = operations(spec.webhooks);
  return (
    <div class="prose api-ref">
      <h1>API reference</h1>
      <p>
        <Inline text={spec.info.description} />
      </p>
      <p>
        Base URL <code>{spec.servers[0]?.url}</code>. The same reference as a machine-readable OpenAPI {spec.openapi}
        {" "}
        document: <a href={props.specHref}>{props.specHref}</a> (API version {spec.info.version}).
      </p>

      <h2 id="authentication">Authentication</h2>
      {Object.entries(spec.components.securitySchemes).map(([name, s]) => (
        <p key={name}>
          HTTP <code>{s.scheme}</code> ({s.bearerFormat}): <Inline text={s.description} />
        </p>
      ))}

      <h2 id="endpoints">Endpoints</h2>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Method</th>
              <th scope="col">Path</th>
              <th scope="col">What</th>
              <th scope="col">Called by</th>
            </tr>
          </thead>
          <tbody>
            {ops.map((o) => (
              <tr key={o.op.operationId}>
                <td>
                  <Method method={o.method} />
                </td>
                <td>
                  <a href={`#op-${o.op.operationId}`}>
                    <code>{o.path}</code>
                  </a>
                </td>
                <td>{o.op.summary}</td>
                <td>{o.op["x-audience"]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      {spec.tags.map((tag) => {
        const inTag = ops.filter((o) => o.op.tags.includes(tag.name));
        if (inTag.length === 0) return null;
        return (
          <section key={tag.name}>
            <h2 id={`tag-${anchor(tag.name)}`}>{tag.name}</h2>
            <p>
              <Inline text={tag.description} />
            </p>
            {inTag.map((o) => <OperationView key={o.op.operationId} {...o} schemas={spec.components.schemas} />)}
          </section>
        );
      })}

      <h2 id="webhooks">Webhooks we send</h2>
      <p>Requests we make to your server. They are OpenAPI 3.1 webhooks: the name is not a path on our side.</p>
      {hooks.map((o) => <OperationView key={o.op.operationId} {...o} schemas={spec.components.schemas} webhook />)}

      <h2 id="schemas">Schemas</h2>
      {Object.entries(spec.components.schemas).map(([name, schema]) => (
        <section key={name} class="api-schema">
          <h3 id={`schema-${name}`}>{name}</h3>
          <SchemaView schema={schema} />
        </section>
      ))}
    </div>
  );
}

interface Op {
  path: string;
  method: string;
  op: Operation;
}

function operations(paths: Record<string, PathItem>): Op[] {
  const out: Op[] = [];
  for (const [path, item] of Object.entries(paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (op) out.push({ path, method, op });
    }
  }
  return out;
}

function OperationView(props: Op & { schemas: Record<string, JsonSchema>; webhook?: boolean }) {
  const { op, path, method } = props;
  const body = op.requestBody;
  return (
    <section class="api-op" id={`op-${op.operationId}`}>
      <h3>
        <Method method={method} /> <code>{path}</code>
      </h3>
      <p class="api-summary">{op.summary}</p>
      {op.description && (
        <p>
          <Inline text={op.description} />
        </p>
      )}
      {!props.webhook && (
        <p>
          <strong>Authentication:</strong> {op.security.length > 0
            ? (
              <>
                <code>Authorization: Bearer apay_sk_...</code> (<a href="#authentication">bearer key</a>)
              </>
            )
            : "none"}
        </p>
      )}

      {op.parameters && op.parameters.length > 0 && (
        <>
          <h4>{props.webhook ? "Headers" : "Parameters"}</h4>
          <div class="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">In</th>
                  <th scope="col">Type</th>
                  <th scope="col">Notes</th>
                </tr>
              </thead>
              <tbody>
                {op.parameters.map((p) => (
                  <tr key={`${p.in}:${p.name}`}>
                    <td>
                      <code>{p.name}</code>
                      {p.required ? <span class="req">required</span> : <span class="opt">optional</span>}
                    </td>
                    <td>{p.in}</td>
                    <td>
                      <TypeOf schema={p.schema} />
                    </td>
                    <td>
                      <Inline text={p.description} />
                      <Constraints schema={p.schema} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}

      {body && (
        <>
          <h4>Request body</h4>
          {body.description && (
            <p>
              <Inline text={body.description} />
            </p>
          )}
          {Object.entries(body.content).map(([type, media]) => (
            <Media key={type} type={type} media={media} schemas={props.schemas} />
          ))}
        </>
      )}

      <h4>Responses</h4>
      <dl class="api-responses">
        {Object.entries(op.responses).map(([status, r]) => (
          <div key={status} class="api-response">
            <dt>
              <code>{status}</code>
            </dt>
            <dd>
              <Inline text={r.description} />
              {r.headers && (
                <p>
                  Headers: {Object.keys(r.headers).map((h, i) => (
                    <span key={h}>
                      {i > 0 && ", "}
                      <code>{h}</code>
                    </span>
                  ))}
                </p>
              )}
              {r.content &&
                Object.entries(r.content).map(([type, media]) => (
                  <Media
                    key={type}
                    type={type}
                    media={media}
                    schemas={props.schemas}
                    compact
                  />
                ))}
            </dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

/** A body: its type, its schema (a reference is linked, and shown in full unless compact) and its examples. */
function Media(props: { type: string; media: MediaType; schemas: Record<string, JsonSchema>; compact?: boolean }) {
  const { media } = props;
  const name = refName(media.schema);
  const schema = name ? props.schemas[name] : media.schema;
  const examples = media.example !== undefined
    ? [{ key: "example", label: "Example", value: media.example }]
    : Object.entries(media.examples ?? {}).map(([key, e]) => ({ key, label: `Example: ${key}`, value: e.value }));
  return (
    <div class="api-media">
      <p>
        <code>{props.type}</code>
        {refName(media.schema) && (
          <>
            {" "}
            <a href={`#schema-${refName(media.schema)}`}>{refName(media.schema)}</a>
          </>
        )}
      </p>
      {!props.compact && schema && <SchemaView schema={schema} />}
      {examples.map((e) => (
        <details key={e.key} class="api-example">
          <summary>{e.label}</summary>
          <pre><code class="language-json">{JSON.stringify(e.value, null, 2)}</code></pre>
        </details>
      ))}
    </div>
  );
}

/** A schema as a table of its fields (objects) or one line (everything else). */
function SchemaView(props: { schema: JsonSchema }) {
  const { schema } = props;
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties) {
    return (
      <p>
        <TypeOf schema={schema} />
        {typeof schema.description === "string" && (
          <>
            {": "}
            <Inline text={schema.description} />
          </>
        )}
      </p>
    );
  }
  const rows = flatten(schema, "");
  const oneOfRequired = (schema.oneOf as JsonSchema[] | undefined)
    ?.map((s) => (s.required as string[] | undefined)?.join(" and "))
    .filter(Boolean);
  return (
    <>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Type</th>
              <th scope="col">Notes</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.name}>
                <td>
                  <code>{r.name}</code>
                  {r.required ? <span class="req">required</span> : <span class="opt">optional</span>}
                </td>
                <td>
                  <TypeOf schema={r.schema} />
                </td>
                <td>
                  {typeof r.schema.description === "string" && <Inline text={r.schema.description} />}
                  <Constraints schema={r.schema} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {oneOfRequired && oneOfRequired.length > 0 && (
        <p>
          Exactly one of {oneOfRequired.map((f, i) => (
            <span key={f}>
              {i > 0 && (i === oneOfRequired.length - 1 ? " or " : ", ")}
              <code>{f}</code>
            </span>
          ))} is required.
        </p>
      )}
      {schema.additionalProperties === false && <p class="muted">No other fields.</p>}
    </>
  );
}

interface Row {
  name: string;
  schema: JsonSchema;
  required: boolean;
}

/** Object fields, with nested objects (not references) flattened to dotted names. */
function flatten(schema: JsonSchema, prefix: string): Row[] {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const rows: Row[] = [];
  for (const [key, child] of Object.entries(properties)) {
    const name = prefix + key;
    rows.push({ name, schema: child, required: required.has(key) });
    if (child.properties) rows.push(...flatten(child, `${name}.`));
  }
  return rows;
}

function refName(schema: JsonSchema): string | null {
  const ref = schema.$ref;
  return typeof ref === "string" ? ref.split("/").pop()! : null;
}

function TypeOf(props: { schema: JsonSchema }): JSX.Element {
  const s = props.schema;
  const name = refName(s);
  if (name) return <a href={`#schema-${name}`}>{name}</a>;
  if (Array.isArray(s.anyOf)) {
    return (
      <>
        {(s.anyOf as JsonSchema[]).map((alt, i) => (
          <span key={i}>
            {i > 0 && " or "}
            <TypeOf schema={alt} />
          </span>
        ))}
      </>
    );
  }
  if (s.const !== undefined) return <code>{JSON.stringify(s.const)}</code>;
  const types = Array.isArray(s.type) ? s.type as string[] : s.type ? [String(s.type)] : ["any"];
  const format = typeof s.format === "string" ? ` (${s.format})` : "";
  if (Array.isArray(s.enum)) {
    return (
      <>
        {types.join(" or ")}: {(s.enum as unknown[]).map((v, i) => (
          <span key={String(v)}>
            {i > 0 && ", "}
            <code>{JSON.stringify(v)}</code>
          </span>
        ))}
      </>
    );
  }
  if (types.includes("object") && s.additionalProperties && typeof s.additionalProperties === "object") {
    return <>object of {String((s.additionalProperties as JsonSchema).type ?? "any")}</>;
  }
  return <>{types.join(" or ") + format}</>;
}

function Constraints(props: { schema: JsonSchema }) {
  const s = props.schema;
  const parts: string[] = [];
  const min = typeof s.minLength === "number" ? s.minLength : null;
  const max = typeof s.maxLength === "number" ? s.maxLength : null;
  if (min !== null && min === max) parts.push(`exactly ${min} characters`);
  else if (min !== null && max !== null) parts.push(`${min}–${max} characters`);
  else if (max !== null) parts.push(`at most ${max} characters`);
  else if (min !== null) parts.push(`at least ${min} characters`);
  if (typeof s.exclusiveMinimum === "number") parts.push(`> ${s.exclusiveMinimum}`);
  if (typeof s.minimum === "number") parts.push(`≥ ${s.minimum}`);
  if (typeof s.maximum === "number" && s.maximum < Number.MAX_SAFE_INTEGER) parts.push(`≤ ${s.maximum}`);
  if (typeof s.pattern === "string" && typeof s.format !== "string") parts.push(`pattern ${s.pattern}`);
  if (s.default !== undefined) parts.push(`default ${JSON.stringify(s.default)}`);
  if (parts.length === 0) return null;
  return <span class="constraints">{parts.join("; ")}</span>;
}

function Method(props: { method: string }) {
  return <span class={`method method-${props.method}`}>{props.method.toUpperCase()}</span>;
}

/** Text with `code` spans, as the spec's descriptions write them; everything else is plain text. */
function Inline(props: { text: string }) {
  const parts = props.text.split("`");
  return <>{parts.map((p, i) => (i % 2 === 1 ? <code key={i}>{p}</code> : p))}</>;
}

function anchor(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}
